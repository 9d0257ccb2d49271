//! The `civicflow` command: `serve` runs the service; the other commands work on a stopped
//! store (see `docs/service.md`).

mod commands;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use civicflow::{EventLog, StreamId};

#[derive(Parser)]
#[command(
    name = "civicflow",
    version,
    about = "Civic request handling as an event-sourced workflow engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: the JSON API, live events, audits. SIGTERM or Ctrl-C stops it
    /// gracefully.
    Serve {
        /// The store's directory (created if missing).
        #[arg(long, default_value = "./civicflow-data")]
        data: PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// On an empty store, load the Tonghui demo and write a token for every demo actor to
        /// DIR/demo-tokens.json.
        #[arg(long)]
        demo: bool,
        /// The master key file of the personal-data vault (created when missing), unless
        /// CIVICFLOW_MASTER_KEY is set. Default: DIR/master.key.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Recompute the hash chain of a stopped store; exit 0 when intact, 1 naming the first
    /// broken position.
    Verify {
        /// The store's directory.
        #[arg(long, default_value = "./civicflow-data")]
        data: PathBuf,
        /// Check one stream instead of the whole log.
        #[arg(long)]
        stream: Option<String>,
    },
    /// Print the chain head (position and hash) of a stopped store: the value to keep
    /// elsewhere to prove later that the log was not rewritten.
    Head {
        /// The store's directory.
        #[arg(long, default_value = "./civicflow-data")]
        data: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("civicflow: {message}");
            ExitCode::from(2)
        }
    }
}

/// The log of a stopped store: an engine's (`DIR/log`) or a bare log's (`DIR`).
fn open(data: &Path) -> Result<EventLog, String> {
    let path = if data.join("log").join("db").exists() {
        data.join("log")
    } else if data.join("db").exists() {
        data.to_owned()
    } else {
        return Err(format!(
            "no store at {} (pass --data DIR, the directory `civicflow serve` uses)",
            data.display()
        ));
    };
    EventLog::open(&path).map_err(|e| match e {
        civicflow::OpenError::Locked { .. } => format!(
            "the store at {} is in use (is `civicflow serve` running on it? stop it first)",
            data.display()
        ),
        other => other.to_string(),
    })
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Serve {
            data,
            addr,
            demo,
            key_file,
        } => commands::serve::run(data, addr, demo, key_file),
        Command::Verify { data, stream } => {
            let log = open(&data)?;
            let report = match &stream {
                Some(stream) => {
                    let stream = StreamId::new(stream.as_str()).map_err(|e| e.to_string())?;
                    log.verify_stream(&stream)
                }
                None => log.verify(),
            }
            .map_err(|e| e.to_string())?;
            let scope = stream.map_or_else(|| "log".to_owned(), |s| format!("stream {s}"));
            match report.first_break {
                None => {
                    match report.last_good {
                        Some(head) => println!(
                            "{scope} intact: {} events, head position {} hash {}",
                            report.events_checked, head.position, head.hash
                        ),
                        None => println!("{scope} intact: empty"),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!(
                        "{scope} BROKEN after {} good events: {broken}",
                        report.events_checked
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Head { data } => {
            let log = open(&data)?;
            match log.head() {
                Some(head) => println!("{} {}", head.position, head.hash),
                None => println!("empty"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
