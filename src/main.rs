//! The `civicflow` command.
//!
//! Today it inspects a stopped store: `verify` recomputes the hash chain, `head` prints the
//! chain head to keep as an anchor. The service (`serve`) and the audit tools come with the
//! HTTP crate.

use std::path::PathBuf;
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

fn open(data: &PathBuf) -> Result<EventLog, String> {
    if !data.join("db").exists() {
        return Err(format!("no store at {} (pass --data DIR)", data.display()));
    }
    EventLog::open(data).map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
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
