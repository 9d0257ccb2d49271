//! The offline tools: commands on a stopped store (the directory `civicflow serve --data DIR`
//! uses: the log in `DIR/log`, the vault in `DIR/vault`, the read models in `DIR/readmodels`),
//! and `verify-bundle`, which needs no store at all.
//!
//! Reading commands (`verify`, `head`, `audit`, `export`, `token list`) open the log only:
//! they never write, and need no master key. `rebuild` writes the read models only.
//! `token create` and `token revoke` open the engine (with the master key), like `serve`
//! does; opening it takes the deadline steps that fell due while the store was stopped.
//!
//! Exit codes: 0 success, 1 a check failed (`verify`, `verify-bundle`, an `audit` whose chain
//! is broken), 2 usage or environment errors (returned as `Err` with a message that says what
//! to do).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::Value;

use civicflow::core::bundle::{self, Bundle, Decoded, ExportError};
use civicflow::core::calendar::{parse_rfc3339, Zone};
use civicflow::core::domain::access::{Access, AccessCommand, AccessState, TokenId};
use civicflow::core::domain::org::Acting;
use civicflow::core::domain::text;
use civicflow::core::domain::workflow::DefinitionRegistry;
use civicflow::core::domain::Rejection;
use civicflow::core::engine::{self, Command, Engine, EngineError, Outcome};
use civicflow::core::readmodel::{Namespace, ReadModelError, ReadModelStore};
use civicflow::core::vault::MasterKey;
use civicflow::core::{
    ActorId, CaseId, ChainHash, EventStore, OpenError, Role, SledLogConfig, SledReadModels,
    StreamId, UnitId,
};
use civicflow::http::TokenSecret;
use civicflow::projections::{models, Phase, Runner};

use super::backend::StoreArgs;
use super::serve::master_key;

/// Prints a line to standard output; a reader that went away (`civicflow token list | head`)
/// ends the output quietly instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        emit(format_args!($($arg)*))?
    };
}

/// Writes `args` and a line end to standard output, every line of it escaped
/// (`domain::text::escape`): what the tools print holds texts read from the log, and an old
/// log may hold control characters (an escape sequence, a carriage return) that the rule for
/// texts refuses now. The line breaks the tools print themselves stay.
pub(super) fn emit(args: std::fmt::Arguments<'_>) -> Result<(), String> {
    use std::io::Write;
    let text = args.to_string();
    let escaped: Vec<_> = text.split('\n').map(text::escape).collect();
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(escaped.join("\n").as_bytes())
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to standard output: {e}"))
        }
        _ => Ok(()),
    }
}

/// Where `--data` points by default (the same as `serve`).
pub const DEFAULT_DATA: &str = "./civicflow-data";

/// `civicflow token …`: manage access tokens on a stopped store.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token (as the system, at the unit) that acts as ACTOR in ROLE at UNIT. The
    /// secret is printed once; the log keeps only its hash.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The actor the token acts as (they must hold ROLE at UNIT).
        #[arg(long)]
        actor: String,
        /// The role it acts in.
        #[arg(long)]
        role: String,
        /// The unit it acts for.
        #[arg(long)]
        unit: String,
        /// What it is for ("grid-1 tablet").
        #[arg(long)]
        name: Option<String>,
        /// The master key file, unless CIVICFLOW_MASTER_KEY is set. Default: DIR/master.key.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The business calendar's time zone: the store's own when left out (as `civicflow
        /// serve --time-zone`; another than the store's is refused).
        #[arg(long = "time-zone", value_name = "NAME", value_parser = super::parse_zone)]
        time_zone: Option<Zone>,
    },
    /// Revoke a token by its id (see `civicflow token list`).
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        /// The token's id (16 hex digits).
        token: String,
        /// Why (kept in the log).
        #[arg(long)]
        reason: Option<String>,
        /// The master key file, unless CIVICFLOW_MASTER_KEY is set. Default: DIR/master.key.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The business calendar's time zone: the store's own when left out (as `civicflow
        /// serve --time-zone`; another than the store's is refused).
        #[arg(long = "time-zone", value_name = "NAME", value_parser = super::parse_zone)]
        time_zone: Option<Zone>,
    },
    /// List every token ever issued: id, actor, role, unit, name, when issued and revoked.
    /// Never a secret (the log has none).
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// The business calendar's time zone: the store's own when left out (as `civicflow
        /// serve --time-zone`; another than the store's is refused).
        #[arg(long = "time-zone", value_name = "NAME", value_parser = super::parse_zone)]
        time_zone: Option<Zone>,
    },
}

/// The log of a stopped store: an engine's (`DIR/log`) or a bare log's (`DIR`).
///
/// # Errors
/// No store there, or it is in use (the server runs), or it does not open.
pub fn open_log(data: &Path) -> Result<Arc<dyn EventStore>, String> {
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
    // The service's cache size, not sled's default 256 MiB: a walk over the whole log
    // (`verify`, `export`, `rebuild`) reads every page once and keeps none of them warm for
    // long, and the tools stay under the service's memory (issue 17).
    let log = SledLogConfig::new(&path)
        .cache_capacity_bytes(OFFLINE_LOG_CACHE_BYTES)
        .open()
        .map_err(|e| open_failed(data, &e))?;
    Ok(Arc::new(log))
}

/// The log's page cache in the offline tools: the service's default
/// (`ServiceConfig::DEFAULT_LOG_CACHE_MIB`).
pub(super) const OFFLINE_LOG_CACHE_BYTES: u64 =
    civicflow::http::ServiceConfig::DEFAULT_LOG_CACHE_MIB * 1024 * 1024;

fn open_failed(data: &Path, error: &OpenError) -> String {
    match error {
        OpenError::Locked { .. } => in_use(data),
        other => format!("cannot open the log in {}: {other}", data.display()),
    }
}

pub(super) fn in_use(data: &Path) -> String {
    format!(
        "the store at {} is in use (is `civicflow serve` running on it? stop it first)",
        data.display()
    )
}

/// Closes a log opened by a tool (everything it holds is durable already; this flushes the
/// stream index).
pub(super) fn close(log: Arc<dyn EventStore>) -> Result<(), String> {
    log.close()
        .map_err(|e| format!("closing the log failed: {e}"))
}

fn parse_case(text: &str) -> Result<CaseId, String> {
    CaseId::parse(text.trim()).map_err(|_| {
        format!("{text:?} is not a case id: give the case's UUID, as the API shows it (GET /api/v1/cases)")
    })
}

// ---------------------------------------------------------------------------------------------
// verify, head

/// `civicflow verify`: the whole log's chain, or one stream's.
///
/// # Errors
/// No store, a store in use, an invalid stream id, a read failure.
pub fn verify(store: &StoreArgs, stream: Option<&str>) -> Result<ExitCode, String> {
    let log = store.open_log()?;
    let report = match stream {
        Some(stream) => {
            let stream = StreamId::new(stream).map_err(|e| format!("--stream: {e}"))?;
            log.verify_stream(&stream)
        }
        None => log.verify(),
    }
    .map_err(|e| e.to_string())?;
    close(log)?;
    let scope = stream.map_or_else(|| "log".to_owned(), |s| format!("stream {s}"));
    match report.first_break {
        None => {
            match report.last_good {
                Some(head) => out!(
                    "{scope} intact: {} events, head position {} hash {}",
                    report.events_checked,
                    head.position,
                    head.hash
                ),
                None => out!("{scope} intact: empty"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(broken) => {
            out!(
                "{scope} BROKEN after {} good events: {broken}",
                report.events_checked
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// `civicflow head`: the chain head, to keep as an anchor.
///
/// # Errors
/// No store, a store in use.
pub fn head(store: &StoreArgs) -> Result<ExitCode, String> {
    let log = store.open_log()?;
    match log.head() {
        Some(head) => out!("{} {}", head.position, head.hash),
        None => out!("empty"),
    }
    close(log)?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// audit

/// `civicflow audit`: a case's timeline, as text or as the API's JSON; with `as_of`, up to
/// that moment. Exit 1 when the case's chain does not verify.
///
/// # Errors
/// No store, a store in use, an unknown case, a malformed `--as-of` or one before the case
/// was opened, a read failure.
pub fn audit(
    store: &StoreArgs,
    case: &str,
    json: bool,
    as_of: Option<&str>,
    zone: Option<Zone>,
) -> Result<ExitCode, String> {
    let id = parse_case(case)?;
    let as_of = as_of
        .map(|text| {
            parse_rfc3339(text).map_err(|e| {
                format!(
                    "--as-of {text:?} is not an RFC 3339 time with an offset (2026-04-14T09:30:00+08:00): {e}"
                )
            })
        })
        .transpose()?;
    let log = store.open_log()?;
    let definitions = definitions_of(&log)?;
    let zone = &store_zone(&log, zone)?;
    let result = match engine::audit_log(&log, &definitions, zone, id) {
        Err(engine::SubmitError::Rejected(Rejection::NotFound { .. })) => Err(format!(
            "no case {id} in {} (check the id: `civicflow audit` takes the case's UUID)",
            store.describe()
        )),
        Err(other) => Err(format!("cannot audit case {id}: {other}")),
        Ok(whole) => match as_of {
            None => Ok(whole),
            // The case exists (the whole audit found it), so nothing up to the moment means
            // the moment is before its opening, which the message can then say plainly.
            Some(at) => {
                engine::audit_log_as_of(&log, &definitions, zone, id, at).map_err(|e| match e {
                    engine::SubmitError::Rejected(Rejection::NotFound { .. }) => format!(
                        "case {id} did not exist yet at --as-of {}: it was opened at {}",
                        zone.format(at),
                        whole
                            .steps
                            .first()
                            .map_or_else(|| "?".to_owned(), |s| zone.format(s.recorded_at))
                    ),
                    other => format!("cannot audit case {id}: {other}"),
                })
            }
        },
    };
    close(log)?;
    let audit = result?;
    if let (Some(at), false) = (as_of, json) {
        out!(
            "as of {}: the steps recorded until then; the chain is checked whole",
            zone.format(at)
        );
    }
    if json {
        let mut value = civicflow::http::audit::to_json(&audit);
        if let (Some(at), Value::Object(fields)) = (as_of, &mut value) {
            fields.insert("as_of".to_owned(), Value::String(zone.format(at)));
        }
        let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        out!("{}", json_escaped(&text));
    } else {
        out!("{audit}");
    }
    Ok(if audit.chain.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// JSON text with every character `domain::text::escape` would escape written as a JSON
/// escape (`\u202e`), so the JSON stays valid and nothing raw reaches a terminal. serde_json
/// escapes C0 itself; DEL, C1, the line separators and the bidirectional controls it writes
/// as they are. Such characters only occur inside strings, where the escape means the same.
fn json_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        let mut buffer = [0u8; 4];
        // A raw line feed is the pretty printer's own (serde_json escapes one in a string).
        if c == '\n' || matches!(text::escape(c.encode_utf8(&mut buffer)), Cow::Borrowed(_)) {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// export, verify-bundle

/// `civicflow export`: a case's audit bundle, written to `out`.
///
/// # Errors
/// No store, a store in use, an unknown case, a broken chain, a file that cannot be written.
pub fn export(store: &StoreArgs, case: &str, out: &Path) -> Result<ExitCode, String> {
    let id = parse_case(case)?;
    let log = store.open_log()?;
    let result = bundle::export(&log, id);
    close(log)?;
    let bundle = result.map_err(|e| match e {
        ExportError::NotFound { .. } => format!(
            "no case {id} in {} (check the id: `civicflow export --case` takes the case's UUID)",
            store.describe()
        ),
        other => format!("cannot export case {id}: {other}"),
    })?;
    let mut text = serde_json::to_string_pretty(&bundle)
        .map_err(|e| format!("cannot write the bundle as JSON: {e}"))?;
    text.push('\n');
    write_file(out, &text)?;
    let (first, last) = (bundle.events.first(), bundle.events.last());
    out!(
        "exported case {id}: {} events (positions {}-{}) to {}; log head at export: position {} hash {}",
        bundle.events.len(),
        first.map_or(0, |e| e.position),
        last.map_or(0, |e| e.position),
        out.display(),
        bundle.head.position,
        bundle.head.hash
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `path` through a temporary file beside it, so that a failed write never
/// leaves half a bundle.
fn write_file(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let failed = |e: std::io::Error| {
        format!(
            "cannot write {}: {e} (choose another --out FILE)",
            path.display()
        )
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| format!("--out {} is not a file name", path.display()))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(".partial");
    let temporary = path.with_file_name(temporary_name);
    let mut file = std::fs::File::create(&temporary).map_err(failed)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        failed(e)
    })
}

/// `civicflow verify-bundle`: checks a bundle without the store. Exit 0 with a one-line
/// summary, or 1 naming the first problem.
///
/// # Errors
/// The file cannot be read.
pub fn verify_bundle(file: &Path, anchor: Option<&str>) -> Result<ExitCode, String> {
    let anchor = anchor
        .map(|text| {
            ChainHash::from_hex(&text.trim().to_ascii_lowercase()).ok_or_else(|| {
                format!("--anchor {text:?} is not a chain hash (64 hex digits, as `civicflow audit` shows a step's hash)")
            })
        })
        .transpose()?;
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "cannot read {}: {e} (give the bundle's path)",
            file.display()
        )
    })?;
    let bundle: Bundle<Value> = match serde_json::from_str(&text) {
        Ok(bundle) => bundle,
        Err(e) => {
            out!("{}: INVALID: not an audit bundle ({e})", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    match bundle::verify(&bundle, same_decoded) {
        Ok(summary) => {
            if let Some(anchor) = anchor {
                let anchor_hex = anchor.to_hex();
                match bundle.events.iter().find(|e| e.hash == anchor_hex) {
                    Some(event) => out!(
                        "{}: {summary}; anchor {anchor} is version {}",
                        file.display(),
                        event.version
                    ),
                    None => {
                        out!(
                            "{}: INVALID: no event of the bundle has the anchored hash {anchor}: the case's history is not the anchored one, or the bundle ends before it",
                            file.display()
                        );
                        return Ok(ExitCode::from(1));
                    }
                }
            } else {
                out!("{}: {summary}", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(problem) => {
            out!("{}: INVALID: {problem}", file.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// Compares a bundle's `decoded` with the record decoded again: the typed value rendered as
/// JSON (and read back, so that numbers go through the same parser as the file's) must equal
/// the file's value exactly.
fn same_decoded(file: &Value, again: &Decoded) -> Result<(), String> {
    let rendered = serde_json::to_string(again).map_err(|e| format!("cannot render: {e}"))?;
    let expected: Value =
        serde_json::from_str(&rendered).map_err(|e| format!("cannot read back: {e}"))?;
    match first_difference("decoded", &expected, file) {
        None => Ok(()),
        Some(difference) => Err(difference),
    }
}

/// Where two JSON values first differ, by path (`None`: equal).
fn first_difference(path: &str, expected: &Value, found: &Value) -> Option<String> {
    match (expected, found) {
        (Value::Object(expected), Value::Object(found)) => {
            for (key, value) in expected {
                let at = format!("{path}.{key}");
                match found.get(key) {
                    None => return Some(format!("{at} is missing (the record has {value})")),
                    Some(other) => {
                        if let Some(difference) = first_difference(&at, value, other) {
                            return Some(difference);
                        }
                    }
                }
            }
            found
                .keys()
                .find(|key| !expected.contains_key(*key))
                .map(|key| format!("{path}.{key} is not in the record"))
        }
        (Value::Array(expected), Value::Array(found)) => {
            if expected.len() != found.len() {
                return Some(format!(
                    "{path} has {} items, the record {}",
                    found.len(),
                    expected.len()
                ));
            }
            expected
                .iter()
                .zip(found)
                .enumerate()
                .find_map(|(i, (a, b))| first_difference(&format!("{path}[{i}]"), a, b))
        }
        _ if expected == found => None,
        _ => Some(format!(
            "{path} is {found} in the bundle, but the record says {expected}"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// rebuild

/// `civicflow rebuild`: clears every read model's current version and builds it again from
/// the log, with a progress bar (events applied by the slowest model / the log's head).
///
/// # Errors
/// No store, a store in use, a read model that cannot be written or stops at an event.
pub fn rebuild(place: &StoreArgs, zone: Option<Zone>) -> Result<ExitCode, String> {
    let log = place.open_log()?;
    let zone = &store_zone(&log, zone)?;
    let dir = place.data().join("readmodels");
    // The service's read-model cache and rows kept in memory (its defaults), so that a
    // rebuild holds no more than the service does (issue 17).
    let store = SledReadModels::open_with_cache(
        &dir,
        civicflow::http::ServiceConfig::DEFAULT_READ_MODEL_CACHE_MIB * 1024 * 1024,
    )
    .map_err(|e| match e {
        ReadModelError::Locked { .. } => in_use(place.data()),
        other => format!("cannot open the read models in {}: {other}", dir.display()),
    })?;
    let projections = models::all(definitions_of(&log)?, zone.clone());
    let mut names = Vec::with_capacity(projections.len());
    for projection in &projections {
        let ns =
            Namespace::new(projection.name(), projection.version()).map_err(|e| e.to_string())?;
        store
            .clear(&ns)
            .map_err(|e| format!("cannot clear {}@{}: {e}", ns.name(), ns.version()))?;
        names.push((projection.name(), projection.version()));
    }
    let listed = names
        .iter()
        .map(|(name, version)| format!("{name}@{version}"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(head) = log.head() else {
        drop(store);
        close(log)?;
        out!("the log is empty: read models cleared ({listed})");
        return Ok(ExitCode::SUCCESS);
    };
    let started = Instant::now();
    let store = Arc::new(store);
    let runner = Runner::start(
        log.clone(),
        store.clone(),
        projections,
        civicflow::http::ServiceConfig::runner_options(
            civicflow::http::ServiceConfig::DEFAULT_PROJECTION_ROWS_IN_MEMORY,
        ),
    )
    .map_err(|e| format!("cannot start the read models: {e}"))?;
    let bar = indicatif::ProgressBar::new(head.position.get());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "rebuilding {msg} [{wide_bar}] {pos}/{len} events ({eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("{} read models", names.len()));
    let outcome = loop {
        let statuses = runner.status();
        if let Some(failed) = statuses.iter().find_map(|s| match &s.phase {
            Phase::Failed { position, error } => Some(format!(
                "read model {} stopped at position {position}: {error} (check the log with `civicflow verify` on {})",
                s.name,
                place.describe()
            )),
            _ => None,
        }) {
            break Err(failed);
        }
        let applied = statuses
            .iter()
            .map(|s| s.checkpoint.map_or(0, |c| c.get()))
            .min()
            .unwrap_or(0);
        bar.set_position(applied.min(head.position.get()));
        if names
            .iter()
            .all(|(name, _)| runner.wait_for(name, head.position, Duration::ZERO).is_ok())
        {
            break Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    match &outcome {
        Ok(()) => {
            bar.set_position(head.position.get());
            bar.finish_and_clear();
        }
        Err(_) => bar.abandon(),
    }
    runner.stop();
    drop(store);
    let building = started.elapsed();
    // The deadline index is derived from the log too: saved here, the next start reads only
    // the events after it (after an import it would otherwise read the whole log first).
    let indexed = outcome.and_then(|()| {
        let started = Instant::now();
        civicflow::core::engine::rebuild_deadline_index(&*log, place.data())
            .map(|running| (running, started.elapsed()))
            .map_err(|e| {
                format!(
                    "cannot rebuild the deadline index in {}: {e}",
                    place.data().display()
                )
            })
    });
    close(log)?;
    let (running, indexing) = indexed?;
    out!(
        "rebuilt {} read models ({listed}) to position {} in {:.1} s",
        names.len(),
        head.position,
        building.as_secs_f64()
    );
    out!(
        "rebuilt the deadline index: {running} deadlines running, saved in {:.1} s",
        indexing.as_secs_f64()
    );
    // A rebuild rewrites each page many times and sled keeps the old copies: the live pages
    // alone take a third to a quarter of the files (issue 17, docs/benchmarks.md).
    compact_read_models(place.data())
}

/// `civicflow compact`: the read models of the stopped store in `data`, compacted.
///
/// # Errors
/// No read models there, the store in use, or the compaction failing (the old store then
/// still in place).
pub fn compact(data: &Path) -> Result<ExitCode, String> {
    if !data.join("readmodels").is_dir() {
        return Err(format!(
            "{} holds no read models (no readmodels directory): is it a store's data directory?",
            data.display()
        ));
    }
    compact_read_models(data)
}

/// Compacts `DATA/readmodels` with the service's cache size, and says what it gave.
fn compact_read_models(data: &Path) -> Result<ExitCode, String> {
    let dir = data.join("readmodels");
    let started = Instant::now();
    let compacted = SledReadModels::compact(
        &dir,
        civicflow::http::ServiceConfig::DEFAULT_READ_MODEL_CACHE_MIB * 1024 * 1024,
    )
    .map_err(|e| match e {
        ReadModelError::Locked { .. } => in_use(data),
        other => format!(
            "cannot compact the read models in {}: {other}",
            dir.display()
        ),
    })?;
    out!(
        "compacted the read models in {:.1} s: {} on disk (was {})",
        started.elapsed().as_secs_f64(),
        megabytes(compacted.bytes_after),
        megabytes(compacted.bytes_before)
    );
    Ok(ExitCode::SUCCESS)
}

/// Bytes as megabytes, one decimal.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

// ---------------------------------------------------------------------------------------------
// tokens

/// `civicflow token …`.
///
/// # Errors
/// As each subcommand.
pub fn token(command: TokenCommand) -> Result<ExitCode, String> {
    match command {
        TokenCommand::Create {
            store,
            actor,
            role,
            unit,
            name,
            key_file,
            time_zone,
        } => token_create(&store, &actor, &role, &unit, name, key_file, time_zone),
        TokenCommand::Revoke {
            store,
            token,
            reason,
            key_file,
            time_zone,
        } => token_revoke(&store, &token, reason, key_file, time_zone),
        TokenCommand::List { store, time_zone } => token_list(&store, time_zone),
    }
}

/// The master key of an existing store: `CIVICFLOW_MASTER_KEY`, else the key file, which must
/// exist (a tool never makes a new key for a store that has one).
fn existing_master_key(data: &Path, key_file: Option<PathBuf>) -> Result<MasterKey, String> {
    let key_file = key_file.unwrap_or_else(|| data.join("master.key"));
    let from_env = MasterKey::from_env().map_err(|e| e.to_string())?.is_some();
    if !from_env && !key_file.exists() {
        return Err(format!(
            "no master key: {} does not exist and CIVICFLOW_MASTER_KEY is not set (pass --key-file FILE, the key `civicflow serve` uses, or set CIVICFLOW_MASTER_KEY)",
            key_file.display()
        ));
    }
    master_key(&key_file)
}

/// The engine of a stopped store, in its recorded time zone (`zone`, when given, must be it;
/// a store without one records it). Opening an engine takes the deadline steps that fell
/// due, so it counts working time.
pub(crate) fn open_engine(
    store: &StoreArgs,
    key_file: Option<PathBuf>,
    zone: Option<Zone>,
) -> Result<Engine, String> {
    let data = store.data();
    if store.shared().is_none() && !data.join("log").join("db").exists() {
        return Err(format!(
            "no store at {} (pass --data DIR, the directory `civicflow serve` uses)",
            data.display()
        ));
    }
    let key = existing_master_key(data, key_file)?;
    let mut config = store.engine_config(key, None)?;
    if let Some(zone) = zone {
        config = config.time_zone(zone);
    }
    Engine::open(config).map_err(|e| match e {
        EngineError::Open(OpenError::Locked { .. }) => in_use(data),
        EngineError::Vault(e) => format!(
            "cannot open the vault of {}: {e} (use the store's own master key: CIVICFLOW_MASTER_KEY, or --key-file FILE, default {})",
            store.describe(),
            data.join("master.key").display()
        ),
        other => format!("cannot open the store {}: {other}", store.describe()),
    })
}

fn token_create(
    store: &StoreArgs,
    actor: &str,
    role: &str,
    unit: &str,
    name: Option<String>,
    key_file: Option<PathBuf>,
    zone: Option<Zone>,
) -> Result<ExitCode, String> {
    let acting = Acting::new(
        ActorId::new(actor).map_err(|e| format!("--actor: {e}"))?,
        Role::new(role).map_err(|e| format!("--role: {e}"))?,
        UnitId::new(unit).map_err(|e| format!("--unit: {e}"))?,
    );
    let name = name.unwrap_or_else(|| format!("issued with civicflow token create for {actor}"));
    let engine = open_engine(store, key_file, zone)?;
    let secret = TokenSecret::generate()
        .map_err(|e| format!("no randomness from the operating system: {e}"))?;
    let system = Acting::system(acting.unit.clone());
    let outcome = engine.submit(
        &system,
        Command::Access(AccessCommand::Issue {
            hash: secret.hash(),
            acting: acting.clone(),
            name: name.clone(),
        }),
    );
    drop(engine);
    let token = match outcome {
        Ok(Outcome::Token { token, .. }) => token,
        Ok(other) => return Err(format!("unexpected outcome {other:?}")),
        Err(engine::SubmitError::Rejected(rejection)) => {
            return Err(format!(
                "refused: {rejection} (a token acts as a grant its actor holds: check --actor, --role and --unit against the org chart)"
            ))
        }
        Err(e) => return Err(format!("cannot issue the token: {e}")),
    };
    out!(
        "token {token} issued: {} as {} at {} ({name})",
        acting.actor,
        acting.role,
        acting.unit
    );
    out!("secret: {}", secret.expose());
    eprintln!(
        "civicflow: the secret is shown only this once (the log keeps its hash); revoke it with `civicflow token revoke {} {token}`",
        store.flags()
    );
    Ok(ExitCode::SUCCESS)
}

fn token_revoke(
    store: &StoreArgs,
    token: &str,
    reason: Option<String>,
    key_file: Option<PathBuf>,
    zone: Option<Zone>,
) -> Result<ExitCode, String> {
    let id = TokenId::parse(token.trim()).map_err(|_| {
        format!(
            "{token:?} is not a token id: 16 lowercase hex digits, as `civicflow token list` shows"
        )
    })?;
    let engine = open_engine(store, key_file, zone)?;
    let tokens = engine.tokens().map_err(|e| e.to_string())?;
    let Some(grant) = tokens.tokens.get(&id) else {
        return Err(format!(
            "no token {id} in {} (see `civicflow token list {}`)",
            store.describe(),
            store.flags()
        ));
    };
    if let Some(at) = grant.revoked_at {
        out!(
            "token {id} was already revoked at {}",
            engine.calendar().zone().format(at)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let system = Acting::system(grant.acting.unit.clone());
    let reason = reason.unwrap_or_else(|| "revoked with civicflow token revoke".to_owned());
    let outcome = engine.submit(
        &system,
        Command::Access(AccessCommand::Revoke {
            token: id.clone(),
            reason,
        }),
    );
    drop(engine);
    match outcome {
        Ok(_) => {
            out!("token {id} revoked");
            Ok(ExitCode::SUCCESS)
        }
        Err(engine::SubmitError::Rejected(rejection)) => Err(format!("refused: {rejection}")),
        Err(e) => Err(format!("cannot revoke the token: {e}")),
    }
}

/// Every token of the log, folded from the access stream (read only: no engine, no key).
/// The zone a stopped store's times are written in: the one it recorded, `Asia/Shanghai` for
/// a store that never recorded one; a zone given must be the recorded one.
fn store_zone(log: &dyn EventStore, given: Option<Zone>) -> Result<Zone, String> {
    let recorded = engine::recorded_zone(log).map_err(|e| e.to_string())?;
    match (recorded, given) {
        (Some(recorded), Some(given)) if recorded != given => Err(format!(
            "this store keeps its time in {recorded}; --time-zone {given} does not match it (leave it out)"
        )),
        (Some(recorded), _) => Ok(recorded),
        (None, given) => Ok(given.unwrap_or_else(Zone::shanghai)),
    }
}

/// The definitions a stopped store's cases run on: the built-in ones and those published in
/// its log.
fn definitions_of(log: &dyn EventStore) -> Result<DefinitionRegistry, String> {
    engine::definitions_in_force(log, DefinitionRegistry::built_in())
        .map_err(|e| format!("cannot read the store's workflow definitions: {e}"))
}

fn read_tokens(log: &dyn EventStore) -> Result<AccessState, String> {
    engine::read_from_log::<Access>(log, &DefinitionRegistry::built_in(), &())
        .map_err(|e| format!("cannot read the tokens: {e}"))
}

fn token_list(store: &StoreArgs, zone: Option<Zone>) -> Result<ExitCode, String> {
    let log = store.open_log()?;
    let zone = &store_zone(&log, zone)?;
    let state = read_tokens(&log);
    close(log)?;
    let state = state?;
    if state.tokens.is_empty() {
        out!("no tokens");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 7]> = state
        .tokens
        .values()
        .map(|grant| {
            [
                grant.token.to_string(),
                grant.acting.actor.to_string(),
                grant.acting.role.to_string(),
                grant.acting.unit.to_string(),
                zone.format(grant.issued_at),
                grant
                    .revoked_at
                    .map_or_else(|| "-".to_owned(), |at| zone.format(at)),
                // Escaped before the widths are measured (`emit` would escape it after).
                text::escape(&grant.name).into_owned(),
            ]
        })
        .collect();
    let header = ["ID", "ACTOR", "ROLE", "UNIT", "ISSUED", "REVOKED", "NAME"].map(str::to_owned);
    let mut widths = BTreeMap::new();
    for row in std::iter::once(&header).chain(&rows) {
        for (i, cell) in row.iter().enumerate() {
            let width = widths.entry(i).or_insert(0);
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let width = widths.get(&i).copied().unwrap_or(0);
                format!(
                    "{cell}{}",
                    " ".repeat(width.saturating_sub(cell.chars().count()))
                )
            })
            .collect::<Vec<_>>()
            .join("  ");
        out!("{}", line.trim_end());
    }
    Ok(ExitCode::SUCCESS)
}
