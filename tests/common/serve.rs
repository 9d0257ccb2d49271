//! The real `civicflow serve` in a child process, for the tests that must kill it, limit it or
//! stop it: started on a free port, ready when `/readyz` says so, its stderr collected by a
//! thread (so the pipe never fills), stopped with SIGTERM or SIGKILL.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::socket;

/// A free port on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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
}

/// A running `civicflow serve`.
pub struct ServeProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl ServeProcess {
    /// Starts `civicflow serve` on `data` as `launch` says (no `CIVICFLOW_MASTER_KEY`: the key
    /// file in the data directory).
    pub fn start(data: &Path, launch: Launch<'_>) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("an address");
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
            .args(["--addr", &addr.to_string(), "--data"])
            .arg(data)
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
            addr,
            stderr,
            reader: Some(reader),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
            let ready = socket::request(self.addr, "GET", "/readyz", &[], None)
                .await
                .is_ok_and(|r| r.status == 200);
            if ready {
                return;
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
