//! `civicflow calendar`: the business calendar of a stopped store. `publish` declares a
//! year's official holidays from a file in the calendar format (one table per year, as
//! `calendar/cn-public-holidays.toml`), as the system, and recomputes the provisional
//! deadlines it covers; `show` prints the years in force and where coverage ends. A running
//! service publishes with `PUT /api/v1/calendar/{year}` instead.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use civicflow::core::calendar::YearSchedule;
use civicflow::core::domain::org::Acting;
use civicflow::core::engine::{self, Command, Outcome, YearOrigin};
use civicflow::core::UnitId;
use clap::Subcommand;

use super::backend::StoreArgs;
use super::store::open_engine;

/// What `civicflow calendar` does.
#[derive(Subcommand)]
pub enum CalendarCommand {
    /// Publish every year of FILE (the calendar format: `[2027]` with `source`, `off`,
    /// `work`) into the store's log. The same days again change nothing; other days are a
    /// revision. Provisional deadlines the years cover are computed again.
    Publish {
        #[command(flatten)]
        store: StoreArgs,
        /// The calendar file.
        file: PathBuf,
        /// The master key file, unless CIVICFLOW_MASTER_KEY is set. Default: DIR/master.key.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Print the calendar in force: its zone, every year with data (from the release or
    /// published) and where coverage ends.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// The master key file, unless CIVICFLOW_MASTER_KEY is set. Default: DIR/master.key.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

/// Runs a `civicflow calendar` command.
pub fn run(command: CalendarCommand) -> Result<ExitCode, String> {
    match command {
        CalendarCommand::Publish {
            store,
            file,
            key_file,
        } => publish(&store, &file, key_file),
        CalendarCommand::Show { store, key_file } => show(&store, key_file),
    }
}

fn publish(store: &StoreArgs, file: &Path, key_file: Option<PathBuf>) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let years =
        YearSchedule::parse_document(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    if years.is_empty() {
        return Err(format!(
            "{}: no year in it (a table per year: [2027] with source, off, work)",
            file.display()
        ));
    }
    let engine = open_engine(store, key_file, None)?;
    let system = Acting::system(UnitId::new("system").expect("a valid unit id"));
    for schedule in years {
        let year = schedule.year;
        match engine.submit(&system, Command::PublishCalendarYear { schedule }) {
            Ok(Outcome::Calendar {
                revision,
                events,
                recomputed,
                ..
            }) => {
                if events == 0 {
                    println!("{year}: unchanged (the calendar has these days already)");
                } else {
                    println!(
                        "{year}: published (revision {revision}); {recomputed} provisional deadline(s) recomputed"
                    );
                }
            }
            Ok(_) => return Err(format!("{year}: publishing answered something else")),
            Err(engine::SubmitError::Rejected(rejection)) => {
                return Err(format!("{year}: refused: {rejection}"))
            }
            Err(e) => return Err(format!("{year}: cannot publish: {e}")),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(store: &StoreArgs, key_file: Option<PathBuf>) -> Result<ExitCode, String> {
    let engine = open_engine(store, key_file, None)?;
    let overview = engine.calendar_overview().map_err(|e| e.to_string())?;
    let zone = engine.calendar().zone().clone();
    println!("zone: {}", overview.zone);
    for year in &overview.years {
        let origin = match year.origin {
            YearOrigin::Release => "from the release".to_owned(),
            YearOrigin::Published { revision, at } => {
                format!("published, revision {revision}, {}", zone.format(at))
            }
        };
        println!(
            "{}: {} days off in {} range(s), {} weekend day(s) worked — {} ({origin})",
            year.schedule.year,
            year.schedule
                .off
                .iter()
                .map(|(a, b)| b.days_since_epoch() - a.days_since_epoch() + 1)
                .sum::<i64>(),
            year.schedule.off.len(),
            year.schedule.work.len(),
            civicflow::core::domain::text::escape(&year.schedule.source),
        );
    }
    match overview.covered_through {
        Some(last) => println!(
            "covered through {last}; from {} deadlines are provisional until the next year is published",
            zone.format(overview.coverage_ends_at)
        ),
        None => println!(
            "this year has no data: deadlines are counted on plain weekdays and are provisional"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
