//! The real `civicflow serve` in a child process, for the tests that must kill it, limit it or
//! stop it: started on a port it picks itself, ready when `/readyz` says so, its stderr
//! collected by a thread (so the pipe never fills), stopped with SIGTERM or SIGKILL.
//!
//! The child listens on `127.0.0.1:0` (or the address a test gives) and its address is read from
//! the line it prints once it listens (`civicflow: serving DIR on http://ADDR`, or `https://`). A port picked here, freed and handed to
//! the child could be taken by a server of another test of the same binary (they run in
//! parallel threads of one process) before the child binds it; the test would then wait for,
//! and write to, the wrong server.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::socket;

/// What `civicflow serve` prints on stderr once it listens, before the address.
const SERVING: &str = "civicflow: serving ";
const ON: [&str; 2] = [" on http://", " on https://"];

/// The address in the last `civicflow: serving DIR on http://ADDR` (or `https://`) line of
/// `stderr`.
pub fn serving_addr(stderr: &str) -> Option<SocketAddr> {
    stderr
        .lines()
        .rev()
        .filter(|line| line.starts_with(SERVING))
        .find_map(|line| {
            ON.iter()
                .find_map(|on| line.rsplit_once(on))?
                .1
                .trim()
                .parse()
                .ok()
        })
}

/// How to start the server.
#[derive(Default)]
pub struct Launch<'a> {
    /// `--demo`: load the Tonghui demo into an empty store.
    pub demo: bool,
    /// Run it through this command and its arguments (`prlimit --fsize=N`).
    pub wrapper: Vec<String>,
    /// Environment variables to set.
    pub env: Vec<(&'a str, &'a str)>,
    /// More arguments of `serve`.
    pub args: Vec<&'a str>,
    /// `--addr`: where to listen instead of `127.0.0.1:0` (a port of `0`: it picks one).
    pub addr: Option<&'a str>,
}

/// A running `civicflow serve`.
pub struct ServeProcess {
    child: Child,
    /// Where it listens, once it said so.
    addr: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl ServeProcess {
    /// Starts `civicflow serve` on `data` as `launch` says (no `CIVICFLOW_MASTER_KEY`: the key
    /// file in the data directory), listening on a port of the loopback interface it picks
    /// (unless `launch.addr` says otherwise).
    pub fn start(data: &Path, launch: Launch<'_>) -> Self {
        let binary = env!("CARGO_BIN_EXE_civicflow");
        let mut command = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command.arg("serve");
        if launch.demo {
            command.arg("--demo");
        }
        command
            .args(["--addr", launch.addr.unwrap_or("127.0.0.1:0"), "--data"])
            .arg(data)
            .args(&launch.args)
            .env("CIVICFLOW_LOG", "warn")
            .env_remove("CIVICFLOW_MASTER_KEY");
        for (name, value) in &launch.env {
            command.env(name, value);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("civicflow serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Self {
            child,
            addr: None,
            stderr,
            reader: Some(reader),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where it listens. Known once it said so: after [`ServeProcess::wait_listening`] or
    /// [`ServeProcess::wait_ready`].
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .expect("the server's address is known once it listens (wait_listening, wait_ready)")
    }

    /// Waits until it listens (it prints where), and returns its address; panics with its
    /// stderr when it exits first or takes longer than `within`.
    pub fn wait_listening(&mut self, within: Duration) -> SocketAddr {
        let deadline = Instant::now() + within;
        loop {
            if let Some(addr) = self.listening() {
                return addr;
            }
            std::thread::sleep(Duration::from_millis(25));
            assert!(
                Instant::now() < deadline,
                "the server did not listen within {within:?}:\n{}",
                self.stderr()
            );
        }
    }

    /// Its address if it listens by now; panics with its stderr when it exited first.
    fn listening(&mut self) -> Option<SocketAddr> {
        if self.addr.is_none() {
            self.addr = serving_addr(&self.stderr());
        }
        if self.addr.is_none() {
            if let Some(status) = self.try_wait() {
                // It may have printed the line just before it exited.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                panic!(
                    "the server exited ({status}) before it listened:\n{}",
                    self.stderr()
                );
            }
        }
        self.addr
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits until `/readyz` answers 200; panics with its stderr when it exits first or takes
    /// longer than `within`.
    pub async fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(addr) = self.listening() {
                let ready = socket::request(addr, "GET", "/readyz", &[], None)
                    .await
                    .is_ok_and(|r| r.status == 200);
                if ready {
                    return;
                }
            }
            if let Some(status) = self.try_wait() {
                panic!(
                    "the server exited ({status}) before it was ready:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the server was not ready within {within:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits (up to `within`) for the process to exit by itself: its status and stderr.
    pub fn wait_exit(mut self, within: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.try_wait() {
                break status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the server did not exit within {within:?}:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.stderr())
    }

    /// Sends it a signal with `kill` (`"HUP"`, …), and goes on.
    pub fn signal(&self, name: &str) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args([format!("-{name}").as_str(), &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{name} {pid}");
    }

    /// SIGTERM, then waits for the graceful stop: its status and stderr.
    pub fn stop(self) -> (ExitStatus, String) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        self.wait_exit(Duration::from_secs(60))
    }

    /// SIGKILL: its stderr up to the kill.
    pub fn kill(&mut self) -> String {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.stderr()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // Only when a test failed half-way: never leave a server running.
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Panics when `stderr` shows a panic (`what`: whose output it is).
pub fn assert_no_panic(stderr: &str, what: &str) {
    assert!(
        !stderr.contains("panicked"),
        "{what}: the server panicked:\n{stderr}"
    );
}
