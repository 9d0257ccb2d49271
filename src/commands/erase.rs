//! `civicflow erase`: erase a person on a stopped store, the personal information protection
//! law's deletion right (个人信息保护法 art. 47), as `POST /api/v1/persons/{id}/erase` does on a
//! running service. The engine destroys the person's key in the vault (their contact details
//! can never be read again, by anyone holding the files and the master key included) and
//! records `PersonErased` with the reason, as the system acting for the unit that registered
//! them. Erasing an erased person changes nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use civicflow::core::calendar::Zone;
use civicflow::core::domain::org::Acting;
use civicflow::core::domain::person::{check_erase_reason, Person, PersonState};
use civicflow::core::engine::{Command, Engine, SubmitError};
use civicflow::core::{PersonId, UnitId};

use super::backend::StoreArgs;
use super::store::{emit, open_engine};

/// `civicflow erase`'s options.
#[derive(clap::Args)]
pub struct EraseArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The person's id: the `person_id` of a case's requester (GET /api/v1/cases/{id}), a
    /// UUID.
    pub person: String,
    /// Why (kept in the log with the erasure): one line, 1 to 1000 characters.
    #[arg(long)]
    pub reason: String,
    /// The master key file, unless CIVICFLOW_MASTER_KEY is set. Default: DIR/master.key.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// The business calendar's time zone: the store's own when left out (as `civicflow
    /// serve --time-zone`; another than the store's is refused).
    #[arg(long = "time-zone", value_name = "NAME", value_parser = super::parse_zone)]
    pub time_zone: Option<Zone>,
}

/// The person `id` as the store has them (the system sees everyone); an error naming them
/// when they were never registered.
fn registered(engine: &Engine, store: &StoreArgs, id: PersonId) -> Result<PersonState, String> {
    let system = Acting::system(UnitId::new("system").expect("a valid unit id"));
    let state = match engine.read::<Person>(&system, &id) {
        Ok(state) => state,
        Err(SubmitError::Rejected(_)) => PersonState::default(),
        Err(e) => return Err(format!("cannot read person {id}: {e}")),
    };
    if state.registered {
        Ok(state)
    } else {
        Err(format!(
            "no person {id} in {} (check the id: the person_id of a case's requester)",
            store.describe()
        ))
    }
}

/// `civicflow erase`.
///
/// # Errors
/// A malformed id or reason (before the store is opened), no store, a store in use, an
/// unknown person, a vault or log that fails.
pub fn run(args: EraseArgs) -> Result<ExitCode, String> {
    let EraseArgs {
        store,
        person,
        reason,
        key_file,
        time_zone,
    } = args;
    let id = PersonId::parse(person.trim()).map_err(|_| {
        format!(
            "{person:?} is not a person id: give the UUID a case's requester shows as person_id"
        )
    })?;
    check_erase_reason(&reason).map_err(|e| format!("--reason: {e}"))?;
    let engine = open_engine(&store, key_file, time_zone)?;
    let before = registered(&engine, &store, id)?;
    let unit = before
        .unit
        .clone()
        .unwrap_or_else(|| UnitId::new("system").expect("valid"));
    // As the system for the unit that registered them: the log's step says where it belongs.
    let erased = engine
        .submit(
            &Acting::system(unit),
            Command::ErasePerson { person: id, reason },
        )
        .map_err(|e| format!("cannot erase person {id}: {e}"))
        .and_then(|_| registered(&engine, &store, id));
    let zone = engine.calendar().zone().clone();
    drop(engine);
    let erased = erased?;
    let at = erased
        .erased_at
        .map_or_else(|| "?".to_owned(), |at| zone.format(at));
    let unit = erased
        .unit
        .as_ref()
        .map_or_else(|| "?".to_owned(), ToString::to_string);
    let why = erased.erasure_reason.unwrap_or_default();
    if before.erased {
        emit(format_args!(
            "person {id} was erased already at {at} ({why}); nothing changed"
        ))?;
    } else {
        emit(format_args!(
            "person {id} (registered at {unit}) erased at {at}: their contact details can never be read again"
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
