//! The `civicflow` command: `init` starts a new store, `serve` runs the service; the other
//! commands work on a stopped store (see `docs/service.md`).

mod commands;

/// jemalloc, for the server's memory: see the reason in the workspace's Cargo.toml.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use civicflow::core::calendar::Zone;
use clap::{Parser, Subcommand};

use commands::backend::StoreArgs;
use commands::store::{self, TokenCommand};

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
    /// Start a new store for a community: its unit, a first administrator holding
    /// community_admin there, and their access token. Prints one JSON object {actor, role,
    /// unit_id, token} (the token shown this once). Refuses a store that holds any event.
    Init(commands::init::InitArgs),
    /// Run the service: the JSON API, live events, audits. SIGTERM or Ctrl-C stops it
    /// gracefully.
    Serve(commands::serve::ServeArgs),
    /// Recompute the hash chain of a stopped store; exit 0 when intact, 1 naming the first
    /// broken position.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Check one stream instead of the whole log.
        #[arg(long)]
        stream: Option<String>,
    },
    /// Print the chain head (position and hash) of a stopped store: the value to keep
    /// elsewhere to prove later that the log was not rewritten.
    Head {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// A case's timeline on a stopped store: each step with actor, role, unit, tier, local
    /// time and the stage after it, the deadlines met or missed, and the chain check (exit 1
    /// when it fails).
    Audit {
        #[command(flatten)]
        store: StoreArgs,
        /// The case's id (UUID).
        case: String,
        /// Print the JSON the API answers (GET /api/v1/cases/{id}/audit) instead of text.
        #[arg(long)]
        json: bool,
        /// The audit up to this moment (RFC 3339 with an offset, e.g.
        /// 2026-04-14T09:30:00+08:00): the steps recorded at or before it, the deadlines as
        /// they stood then.
        #[arg(long = "as-of", value_name = "RFC3339")]
        as_of: Option<String>,
        /// The time zone the times are written in: the store's own when left out (another
        /// than the store's is refused).
        #[arg(long = "time-zone", value_name = "NAME", value_parser = commands::parse_zone)]
        time_zone: Option<Zone>,
    },
    /// Write a case's audit bundle: one JSON file that proves, without the store, what the
    /// log holds for the case (check it with `civicflow verify-bundle`).
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// The case's id (UUID).
        #[arg(long)]
        case: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an audit bundle without the store: every hash, every link, every decoded field
    /// and the head. Exit 0 when it holds, 1 naming the first problem.
    VerifyBundle {
        /// The bundle (from `civicflow export`).
        file: PathBuf,
        /// A hash of the case kept elsewhere (a step's hash from an earlier audit): the
        /// bundle must hold it, which proves every event up to it is the one anchored (a
        /// bundle alone cannot show that events were cut from its end or all rehashed).
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Rebuild every read model of a stopped store from its log, with progress.
    Rebuild {
        #[command(flatten)]
        store: StoreArgs,
        /// The business calendar's time zone, where months and years are counted: the
        /// store's own when left out (another than the store's is refused).
        #[arg(long = "time-zone", value_name = "NAME", value_parser = commands::parse_zone)]
        time_zone: Option<Zone>,
    },
    /// Compact the read models of a stopped store: their live pages written once into a
    /// fresh store, swapped in (a long-running service leaves three to four times their live
    /// size on disk; `rebuild` compacts by itself).
    Compact {
        /// The store's data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
    },
    /// Write the whole log of a stopped store to a file: its exact stored records with
    /// their positions and hashes, and the head (restore it with `civicflow import-log`).
    /// Read models and the vault are not in it.
    ExportLog {
        #[command(flatten)]
        store: StoreArgs,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-create a log from `civicflow export-log`'s file in an empty store, checking every
    /// hash on the way: same positions, versions, bytes, hashes and head. Then run
    /// `civicflow rebuild`; restore the vault from its own backup.
    ImportLog {
        /// The empty store (its directory is created if missing; a shared store's tables are
        /// created on first use).
        #[command(flatten)]
        store: StoreArgs,
        /// The export file.
        #[arg(long = "in")]
        input: PathBuf,
    },
    /// Manage access tokens on a stopped store.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The business calendar of a stopped store: publish a year's holidays, show the years.
    Calendar {
        #[command(subcommand)]
        command: commands::calendar::CalendarCommand,
    },
    /// Erase a person on a stopped store, on their request (PIPL art. 47): their key in the
    /// vault is destroyed, so their contact details can never be read again; the log records
    /// the erasure with the reason.
    Erase(commands::erase::EraseArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(message) => {
            // A message may quote what the log or the command line held: escaped like
            // everything the tools print (`domain::text::escape`).
            let lines: Vec<_> = message
                .split('\n')
                .map(civicflow::core::domain::text::escape)
                .collect();
            eprintln!("civicflow: {}", lines.join("\n"));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Init(args) => commands::init::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Verify { store, stream } => store::verify(&store, stream.as_deref()),
        Command::Head { store } => store::head(&store),
        Command::Audit {
            store,
            case,
            json,
            as_of,
            time_zone,
        } => store::audit(&store, &case, json, as_of.as_deref(), time_zone),
        Command::Export { store, case, out } => store::export(&store, &case, &out),
        Command::VerifyBundle { file, anchor } => store::verify_bundle(&file, anchor.as_deref()),
        Command::Rebuild { store, time_zone } => store::rebuild(&store, time_zone),
        Command::Compact { data } => store::compact(&data),
        Command::ExportLog { store, out } => commands::restore::export_log(&store, &out),
        Command::ImportLog { store, input } => commands::restore::import_log(&store, &input),
        Command::Token { command } => store::token(command),
        Command::Calendar { command } => commands::calendar::run(command),
        Command::Erase(args) => commands::erase::run(args),
    }
}
