//! [`Cluster`]: a PostgreSQL cluster of a test process's own, in a temporary directory.
//!
//! Started from the machine's server binaries (Debian's `postgresql` package puts them in
//! `/usr/lib/postgresql/<N>/bin`), listening on 127.0.0.1 on a free port, with `fsync` on:
//! the tests are about durability, so the server keeps its production setting. Every test
//! binary starts its own, so binaries can run side by side.
//!
//! PostgreSQL's servers refuse to run as root. A test process running as root (a container,
//! CI) runs every server binary as the `postgres` system user, in a directory owned by it.

use std::ffi::OsStr;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

/// What [`Cluster::try_start`] says when it finds no server binaries.
const MISSING_BINARIES: &str = "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and $CIVICFLOW_PG_BIN): install them with `apt-get install postgresql` (Debian); the PostgreSQL tests never skip";

/// The environment variable naming a directory of server binaries to use instead.
const BIN_DIR_VARIABLE: &str = "CIVICFLOW_PG_BIN";

/// Where Debian installs each major version's binaries (`<N>/bin`).
const DEBIAN_VERSIONS_DIR: &str = "/usr/lib/postgresql";

/// The oldest major version the store is tested on.
const OLDEST_MAJOR: u32 = 15;

/// The system user that runs the servers when the test process is root.
const SERVER_USER: &str = "postgres";

/// How many ports to try when another process takes the free port first.
const PORT_ATTEMPTS: usize = 8;

/// How long `pg_ctl` may wait for a start or a stop, in seconds. Generous: a start on a
/// machine busy compiling can take a while, and a timeout here is a failed test.
const PG_CTL_WAIT_SECONDS: &str = "120";

/// A running PostgreSQL cluster in a temporary directory of its own, stopped and removed
/// when dropped (and, should the process end without dropping it, by a watchdog process).
///
/// Its superuser is `postgres`, trusted without a password, on `127.0.0.1:`[`Cluster::port`].
#[derive(Debug)]
pub struct Cluster {
    /// The temporary directory: the data directory and the server's log.
    dir: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    /// Whether the servers run as [`SERVER_USER`] (the test process is root).
    as_server_user: bool,
    /// Serializes stop, kill and start_again: `pg_ctl` on one data directory at a time.
    control: Mutex<()>,
    /// Stops the cluster and removes its directory once the test process is gone.
    watchdog: Mutex<Option<Child>>,
}

impl Cluster {
    /// Starts a fresh cluster: `initdb` in a new temporary directory, then the server on
    /// 127.0.0.1 on a free port (its Unix socket in the data directory), waiting until it
    /// accepts connections.
    ///
    /// # Panics
    /// With [`Cluster::try_start`]'s message when the cluster cannot be started.
    pub fn start() -> Cluster {
        match Self::try_start() {
            Ok(cluster) => cluster,
            Err(message) => panic!("{message}"),
        }
    }

    /// Starts a fresh cluster (see [`Cluster::start`]) from the binaries in
    /// `$CIVICFLOW_PG_BIN` when it is set, otherwise from the highest
    /// `/usr/lib/postgresql/<N>/bin` with N ≥ 15.
    ///
    /// # Errors
    /// What went wrong, for a test's failure message: no binaries (saying how to install
    /// them), or `initdb` or the server failing (with their output and the server's log).
    pub fn try_start() -> Result<Cluster, String> {
        let from_env = std::env::var_os(BIN_DIR_VARIABLE);
        Self::try_start_with_bin_dirs(&Self::bin_dir_candidates(from_env.as_deref()))
    }

    /// The directories [`Cluster::try_start`] looks in, best first, given the value of
    /// `$CIVICFLOW_PG_BIN`: only that directory when it is set (an explicit choice is never
    /// silently replaced by another version), otherwise every `/usr/lib/postgresql/<N>/bin`
    /// with N ≥ 15, highest N first.
    #[doc(hidden)]
    pub fn bin_dir_candidates(from_env: Option<&OsStr>) -> Vec<PathBuf> {
        if let Some(dir) = from_env.filter(|dir| !dir.is_empty()) {
            return vec![PathBuf::from(dir)];
        }
        let mut versions: Vec<u32> = std::fs::read_dir(DEBIAN_VERSIONS_DIR)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                    .filter(|major| *major >= OLDEST_MAJOR)
                    .collect()
            })
            .unwrap_or_default();
        versions.sort_unstable_by(|a, b| b.cmp(a));
        versions
            .into_iter()
            .map(|major| {
                Path::new(DEBIAN_VERSIONS_DIR)
                    .join(major.to_string())
                    .join("bin")
            })
            .collect()
    }

    /// [`Cluster::try_start`] with the binaries of the first of `bin_dirs` that has them
    /// (`initdb`, `pg_ctl` and `postgres`). The environment is not consulted.
    ///
    /// # Errors
    /// As [`Cluster::try_start`].
    #[doc(hidden)]
    pub fn try_start_with_bin_dirs(bin_dirs: &[PathBuf]) -> Result<Cluster, String> {
        let bin_dir = bin_dirs
            .iter()
            .find(|dir| {
                ["initdb", "pg_ctl", "postgres"]
                    .iter()
                    .all(|binary| dir.join(binary).is_file())
            })
            .ok_or_else(|| MISSING_BINARIES.to_owned())?
            .clone();
        let as_server_user = running_as_root()?;
        let dir = private_temp_dir()?;
        // From here on, a failure must not leave the directory behind.
        let mut cluster = Cluster {
            data_dir: dir.join("data"),
            log_file: dir.join("server.log"),
            dir,
            bin_dir,
            port: 0,
            as_server_user,
            control: Mutex::new(()),
            watchdog: Mutex::new(None),
        };
        // The watchdog first: whatever happens next, the directory goes with the process.
        let watchdog = cluster.spawn_watchdog()?;
        *cluster
            .watchdog
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = Some(watchdog);
        if cluster.as_server_user {
            hand_to_server_user(&cluster.dir)?;
        }
        cluster.init_db()?;
        cluster.start_on_a_free_port()?;
        Ok(cluster)
    }

    /// The cluster of this test process, started on first use and shared by all its tests.
    /// It is never dropped: its watchdog stops it and removes its directory when the
    /// process has exited.
    ///
    /// # Panics
    /// As [`Cluster::start`]. A later call tries again.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(Cluster::start)
    }

    /// The port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the superuser on the `postgres`
    /// database, no schema parameter.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A store URL on this cluster whose schema was never returned before, by this process
    /// or any other running at the same time: `t_<pid>_<counter>_<random>`. The schema is
    /// not created here; civicflow creates it when it connects.
    pub fn fresh_store_url(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let counter = NEXT.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}?schema=t_{}_{counter}_{:08x}",
            self.url(),
            std::process::id(),
            random_u64() & 0xFFFF_FFFF
        )
    }

    /// Drops the schema of `url` (one [`Cluster::fresh_store_url`] returned) with
    /// everything in it; a schema that does not exist is fine.
    ///
    /// # Panics
    /// When `url` names no schema civicflow could have made, or the server refuses.
    pub fn drop_store(&self, url: &str) {
        let schema = schema_of(url)
            .unwrap_or_else(|| panic!("{url} names no schema (?schema=NAME) to drop"));
        self.sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    }

    /// Runs `sql` (one or more statements) as the superuser on the `postgres` database with
    /// `psql`, and returns what it printed: the last statement's rows, one a line, columns
    /// separated by `|`, no header.
    ///
    /// # Panics
    /// With the server's message when a statement fails.
    pub fn sql(&self, sql: &str) -> String {
        let local = self.bin_dir.join("psql");
        let psql = if local.is_file() {
            local
        } else {
            PathBuf::from("/usr/bin/psql")
        };
        let port = self.port.to_string();
        let output = Command::new(&psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .arg("-c")
            .arg(sql)
            // Settings of the caller's environment must not change what the query does.
            .env_remove("PGOPTIONS")
            .env_remove("PGSERVICE")
            .env_remove("PGDATABASE")
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", psql.display()));
        if !output.status.success() {
            panic!(
                "SQL failed on the test cluster at port {}: {}\n{sql}",
                self.port,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Stops the server the clean way (`pg_ctl stop -m fast`), waiting until it is down.
    ///
    /// # Panics
    /// When `pg_ctl` fails.
    pub fn stop(&self) {
        let _control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        self.pg_ctl_stop("fast").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint, no
    /// clean shutdown; the next start recovers from the write-ahead log).
    ///
    /// # Panics
    /// When `pg_ctl` fails.
    pub fn kill(&self) {
        let _control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        self.pg_ctl_stop("immediate")
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the server again on the same data directory and port, waiting until it
    /// accepts connections.
    ///
    /// # Panics
    /// When it does not start (the message holds the server's log).
    pub fn start_again(&self) {
        let _control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = self.pg_ctl_start() {
            panic!("{e}");
        }
    }

    fn init_db(&self) -> Result<(), String> {
        let output = self
            .server_command("initdb")
            .arg("--username=postgres")
            .arg("--auth=trust")
            .args(["-E", "UTF8", "--locale=C"])
            .arg("-D")
            .arg(&self.data_dir)
            .output()
            .map_err(|e| format!("cannot run initdb in {}: {e}", self.bin_dir.display()))?;
        if !output.status.success() {
            return Err(format!("initdb failed: {}", describe_output(&output)));
        }
        // Settings go in a file of their own, included last, so they override initdb's.
        let postgresql_conf = self.data_dir.join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&postgresql_conf)
            .map_err(|e| format!("cannot read {}: {e}", postgresql_conf.display()))?;
        conf.push_str("\ninclude_if_exists = 'civicflow-test.conf'\n");
        std::fs::write(&postgresql_conf, conf)
            .map_err(|e| format!("cannot write {}: {e}", postgresql_conf.display()))
    }

    /// Picks a free port, writes it into the settings and starts the server; when another
    /// process took the port in between, tries another.
    fn start_on_a_free_port(&mut self) -> Result<(), String> {
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port()?;
            self.write_settings()?;
            let log_before = file_len(&self.log_file);
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let log = read_from(&self.log_file, log_before);
                    if !log.contains("could not bind") && !log.contains("already in use") {
                        return Err(e);
                    }
                    last_error = e;
                }
            }
        }
        Err(format!(
            "no free port after {PORT_ATTEMPTS} attempts; the last: {last_error}"
        ))
    }

    fn write_settings(&self) -> Result<(), String> {
        let settings = format!(
            "# Written by civicflow's test cluster.\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{socket_dir}'\n\
             max_connections = 200\n\
             shared_buffers = 128MB\n\
             fsync = on\n\
             synchronous_commit = on\n\
             full_page_writes = on\n",
            port = self.port,
            socket_dir = self.data_dir.display(),
        );
        let path = self.data_dir.join("civicflow-test.conf");
        std::fs::write(&path, settings)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if self.as_server_user {
            hand_to_server_user(&path)?;
        }
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let output = self
            .server_command("pg_ctl")
            .args(["start", "-w", "-t", PG_CTL_WAIT_SECONDS, "-D"])
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .output()
            .map_err(|e| format!("cannot run pg_ctl in {}: {e}", self.bin_dir.display()))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "the test cluster did not start on port {}: {}\nserver log {}:\n{}",
            self.port,
            describe_output(&output),
            self.log_file.display(),
            log_tail(&self.log_file)
        ))
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), String> {
        let output = self
            .server_command("pg_ctl")
            .args(["stop", "-w", "-t", PG_CTL_WAIT_SECONDS, "-m", mode, "-D"])
            .arg(&self.data_dir)
            .output()
            .map_err(|e| format!("cannot run pg_ctl in {}: {e}", self.bin_dir.display()))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "pg_ctl stop -m {mode} failed on the test cluster at port {}: {}",
            self.port,
            describe_output(&output)
        ))
    }

    /// A command for one of the server binaries, as the server user when the process is
    /// root, run in the cluster's directory (the server user may not enter the caller's).
    fn server_command(&self, binary: &str) -> Command {
        let program = self.bin_dir.join(binary);
        let mut command = if self.as_server_user {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVER_USER, "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.current_dir(&self.dir).stdin(Stdio::null());
        command
    }

    /// A shell that waits for this process to end, then stops the server as a crash would
    /// and removes the directory: a static cluster is never dropped, and a test process may
    /// end by a signal or `process::exit` without dropping anything.
    fn spawn_watchdog(&self) -> Result<Child, String> {
        const SCRIPT: &str = r#"
trap '' INT HUP TERM
pid=$1 pg_ctl=$2 data=$3 dir=$4 user=$5
while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
if [ -f "$data/postmaster.pid" ]; then
    if [ -n "$user" ]; then
        runuser -u "$user" -- "$pg_ctl" stop -D "$data" -m immediate
    else
        "$pg_ctl" stop -D "$data" -m immediate
    fi
fi >/dev/null 2>&1
rm -rf "$dir"
"#;
        Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("civicflow-test-cluster-watchdog")
            .arg(std::process::id().to_string())
            .arg(self.bin_dir.join("pg_ctl"))
            .arg(&self.data_dir)
            .arg(&self.dir)
            .arg(if self.as_server_user { SERVER_USER } else { "" })
            // It must hold none of the test harness's pipes open after the process ends.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the test cluster's watchdog (sh): {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self
            .watchdog
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if std::thread::panicking() {
            // A failing test: the server's view of it, before the log goes with the dir.
            eprintln!(
                "server log of the test cluster at port {}:\n{}",
                self.port,
                log_tail(&self.log_file)
            );
        }
        if self.data_dir.join("postmaster.pid").exists() {
            let _ = self.pg_ctl_stop("immediate");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether this process is root, from `id -u` (reading the effective uid directly needs
/// `unsafe` or a dependency this crate does without).
fn running_as_root() -> Result<bool, String> {
    static ROOT: OnceLock<Result<bool, String>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let output = Command::new("id")
            .arg("-u")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `id -u` to learn whether this is root: {e}"))?;
        if !output.status.success() {
            return Err(format!("`id -u` failed: {}", describe_output(&output)));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
    })
    .clone()
}

/// A new directory under the system's temporary directory, readable by its owner only.
fn private_temp_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "civicflow-pg-{}-{}-{:016x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        random_u64()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Gives `path` (and everything under it) to the server user.
fn hand_to_server_user(path: &Path) -> Result<(), String> {
    let output = Command::new("chown")
        .arg("-R")
        .arg(format!("{SERVER_USER}:{SERVER_USER}"))
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run chown: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cannot give {} to the {SERVER_USER} user (the servers refuse to run as root, so a \
             root test process runs them as {SERVER_USER}; `apt-get install postgresql` creates \
             the user): {}",
            path.display(),
            describe_output(&output)
        ));
    }
    Ok(())
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}

/// Bits that differ between processes and calls: std's hasher keys are random per process.
fn random_u64() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos(),
    );
    hasher.finish()
}

/// The `schema` parameter of a store URL, when it is a name civicflow could have made.
fn schema_of(url: &str) -> Option<&str> {
    let (_, query) = url.split_once('?')?;
    let schema = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("schema="))?;
    let valid = schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    valid.then_some(schema)
}

fn describe_output(output: &Output) -> String {
    format!(
        "{} {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim(),
        String::from_utf8_lossy(&output.stdout).trim()
    )
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

/// What was written to `path` after its first `from` bytes.
fn read_from(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        if file.seek(SeekFrom::Start(from)).is_ok() {
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    text
}

/// The server log's last lines, for failure messages.
fn log_tail(path: &Path) -> String {
    let text = read_from(path, 0);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_of_a_store_url_is_found_and_checked() {
        assert_eq!(
            schema_of("postgres://postgres@127.0.0.1:5/postgres?schema=t_1_2_ab"),
            Some("t_1_2_ab")
        );
        assert_eq!(
            schema_of("postgres://p@h:5/d?sslmode=disable&schema=abc"),
            Some("abc")
        );
        assert_eq!(schema_of("postgres://p@h:5/d"), None);
        assert_eq!(schema_of("postgres://p@h:5/d?schema=a\"b"), None);
        assert_eq!(schema_of("postgres://p@h:5/d?schema=1a"), None);
    }

    #[test]
    fn an_explicit_bin_dir_is_the_only_candidate() {
        assert_eq!(
            Cluster::bin_dir_candidates(Some(OsStr::new("/opt/pg/bin"))),
            vec![PathBuf::from("/opt/pg/bin")]
        );
        for dir in Cluster::bin_dir_candidates(None) {
            assert!(dir.starts_with(DEBIAN_VERSIONS_DIR), "{}", dir.display());
        }
    }
}
