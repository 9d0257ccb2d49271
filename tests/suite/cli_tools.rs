//! The offline tools of the `civicflow` command on a real store holding the Tonghui demo:
//! `audit` (text and the API's JSON), `export` and `verify-bundle` (and a bundle changed in
//! every way we could think of), `rebuild`, and `token create/list/revoke`.
//!
//! Guards against an audit that differs from the API's, a bundle check that passes a changed
//! file, a rebuild that leaves read models empty or stale, a token listing that shows
//! secrets, and tools that write to a store the server is running on.

use crate::common;

use civicflow::core::{EventStore as _, SledReadModels};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::common::cli::{civicflow, path};
use crate::common::TempDir;
use civicflow::core::calendar::Zone;
use civicflow::core::domain::access::TokenId;
use civicflow::core::domain::case::Channel;
use civicflow::core::domain::fields::FieldValue;
use civicflow::core::domain::workflow::{DefinitionRegistry, WorkflowId};
use civicflow::core::engine;
use civicflow::core::readmodel::{Namespace, ReadModelStore};
use civicflow::core::SledLog;
use civicflow::demo::DemoRun;
use civicflow::projections::models::{self, case_board};
use civicflow::projections::{Runner, RunnerOptions};

/// A stopped store with the Tonghui demo (`common::cli::demo_store`) in a scratch directory.
fn demo_store(tag: &str) -> (TempDir, DemoRun) {
    let scratch = TempDir::new(tag);
    let run = common::cli::demo_store(scratch.path());
    (scratch, run)
}

#[test]
fn audit_prints_the_timeline_as_text_and_as_the_apis_json() {
    let (scratch, run) = demo_store("tools-audit");
    let data = path(scratch.path());
    let case = run.escalated_case.to_string();

    let (code, text, err) = civicflow(&["audit", "--data", data, &case]);
    assert_eq!(code, 0, "{err}");
    assert!(text.starts_with(&format!("case {case} (")), "{text}");
    assert!(text.contains("chain: intact"), "{text}");
    assert!(text.contains("deadlines:"), "{text}");
    assert!(
        text.contains("MISSED"),
        "the escalated case missed a deadline: {text}"
    );
    assert!(text.contains(" as grid_worker for grid-2 "), "{text}");

    let (code, json, err) = civicflow(&["audit", "--data", data, &case, "--json"]);
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(&json).expect("JSON");
    let steps = printed["steps"].as_array().expect("steps");
    assert!(steps.len() >= 5, "{json}");
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["version"], i + 1);
        assert!(step["actor"]["role"].is_string(), "{step}");
        assert!(step["stage_after"].is_string(), "{step}");
        assert_eq!(step["hash"].as_str().map(str::len), Some(64));
    }
    assert_eq!(printed["chain"]["intact"], true);
    assert!(printed["deadlines"]
        .as_array()
        .expect("deadlines")
        .iter()
        .any(|d| d["outcome"] == "missed"));
    // Exactly what the API answers.
    let log = SledLog::open(scratch.path().join("log")).expect("open");
    let audit = engine::audit_log(
        &log,
        &DefinitionRegistry::built_in(),
        &Zone::shanghai(),
        run.escalated_case,
    )
    .expect("audit");
    log.close().expect("close");
    assert_eq!(printed, civicflow::http::audit::to_json(&audit));
    assert_eq!(text.trim_end(), audit.to_string());

    // Reading never writes: the head is where the demo left it.
    let (_, head_before, _) = civicflow(&["head", "--data", data]);
    let unknown = "0196a000-0000-7000-8000-000000000000";
    let (code, _, err) = civicflow(&["audit", "--data", data, unknown]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("no case {unknown}")), "{err}");
    let (code, _, err) = civicflow(&["audit", "--data", data, "not-a-case"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a case id"), "{err}");
    let (_, head_after, _) = civicflow(&["head", "--data", data]);
    assert_eq!(head_before, head_after);
    let missing = scratch.path().join("nothing-here");
    let (code, _, err) = civicflow(&["audit", "--data", path(&missing), &case]);
    assert_eq!(code, 2);
    assert!(err.contains("no store at"), "{err}");
}

/// Runs `verify-bundle` on `bundle` written to a file; exit code and output.
fn verify_value(dir: &Path, name: &str, bundle: &Value) -> (i32, String) {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(bundle).expect("JSON")).expect("write");
    let (code, out, err) = civicflow(&["verify-bundle", path(&file)]);
    (code, format!("{out}{err}"))
}

/// A copy of `bundle` changed by `change`.
fn changed(bundle: &Value, change: impl FnOnce(&mut Value)) -> Value {
    let mut copy = bundle.clone();
    change(&mut copy);
    copy
}

/// `text` with the hex digit at `at` changed.
fn flip_digit(text: &str, at: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).expect("ascii")
}

fn string(value: &Value) -> &str {
    value.as_str().expect("a string")
}

#[test]
fn an_exported_bundle_verifies_offline_and_any_change_fails_it() {
    let (scratch, run) = demo_store("tools-bundle");
    let data = path(scratch.path());
    let case = run.escalated_case.to_string();
    let out = scratch.path().join("bundle.json");

    let (code, stdout, err) = civicflow(&[
        "export",
        "--data",
        data,
        "--case",
        &case,
        "--out",
        path(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains(&format!("exported case {case}")),
        "{stdout}"
    );
    let bundle: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("read")).expect("JSON");
    assert_eq!(bundle["format"], "civicflow-audit-bundle/1");
    assert_eq!(bundle["stream"], format!("case-{case}"));
    let events = bundle["events"].as_array().expect("events");
    let count = events.len();
    assert!(count >= 5);
    assert_eq!(events[0]["prev_stream_hash"], "0".repeat(64));
    assert_eq!(events[0]["decoded"]["type"], "CaseOpened");
    assert_eq!(events[0]["decoded"]["actor"]["role"], "grid_worker");
    assert!(events[0]["decoded"]["payload"]["title"].is_string());
    for pair in events.windows(2) {
        assert_eq!(pair[1]["prev_stream_hash"], pair[0]["hash"]);
    }
    // The head it names is the log's.
    let (_, head, _) = civicflow(&["head", "--data", data]);
    assert_eq!(
        head.trim(),
        format!(
            "{} {}",
            bundle["head"]["position"],
            string(&bundle["head"]["hash"])
        )
    );

    // Intact, without the store.
    std::fs::remove_dir_all(scratch.path().join("log")).expect("remove the log");
    let (code, stdout, err) = civicflow(&["verify-bundle", path(&out)]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(
        stdout.contains(&format!("bundle intact: case {case}, {count} events")),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    let dir = scratch.path();
    let last = count - 1;
    let middle = count / 2;
    let cases: Vec<(&str, Value)> = vec![
        (
            "record byte",
            changed(&bundle, |b| {
                let record = string(&b["events"][middle]["record"]).to_owned();
                b["events"][middle]["record"] = Value::from(flip_digit(&record, record.len() / 2));
            }),
        ),
        (
            "record last byte",
            changed(&bundle, |b| {
                let record = string(&b["events"][0]["record"]).to_owned();
                b["events"][0]["record"] = Value::from(flip_digit(&record, record.len() - 1));
            }),
        ),
        (
            "actor role",
            changed(&bundle, |b| {
                b["events"][0]["decoded"]["actor"]["role"] = Value::from("community_admin");
            }),
        ),
        (
            "payload title",
            changed(&bundle, |b| {
                b["events"][0]["decoded"]["payload"]["title"] = Value::from("nothing happened");
            }),
        ),
        (
            "payload time",
            changed(&bundle, |b| {
                let at = b["events"][0]["decoded"]["payload"]["at"]
                    .as_i64()
                    .expect("micros");
                b["events"][0]["decoded"]["payload"]["at"] = Value::from(at + 1);
            }),
        ),
        (
            "payload field added",
            changed(&bundle, |b| {
                b["events"][0]["decoded"]["payload"]["note"] = Value::from("added");
            }),
        ),
        (
            "decoded type",
            changed(&bundle, |b| {
                b["events"][1]["decoded"]["type"] = Value::from("CaseReopened");
            }),
        ),
        (
            "recorded_at",
            changed(&bundle, |b| {
                b["events"][middle]["decoded"]["recorded_at"] =
                    Value::from("2026-04-13T01:00:00.000000Z");
            }),
        ),
        (
            "causation id",
            changed(&bundle, |b| {
                b["events"][middle]["decoded"]["causation_id"] = Value::Null;
                b["events"][middle]["decoded"]["correlation_id"] =
                    Value::from("00000000-0000-0000-0000-000000000000");
            }),
        ),
        (
            "hash",
            changed(&bundle, |b| {
                let hash = string(&b["events"][last]["hash"]).to_owned();
                b["events"][last]["hash"] = Value::from(flip_digit(&hash, 10));
            }),
        ),
        (
            "prev_log_hash",
            changed(&bundle, |b| {
                let hash = string(&b["events"][middle]["prev_log_hash"]).to_owned();
                b["events"][middle]["prev_log_hash"] = Value::from(flip_digit(&hash, 0));
            }),
        ),
        (
            "position",
            changed(&bundle, |b| {
                let position = b["events"][middle]["position"].as_u64().expect("u64");
                b["events"][middle]["position"] = Value::from(position + 1);
            }),
        ),
        (
            "drop an event",
            changed(&bundle, |b| {
                b["events"].as_array_mut().expect("events").remove(middle);
            }),
        ),
        (
            "drop the first event",
            changed(&bundle, |b| {
                b["events"].as_array_mut().expect("events").remove(0);
            }),
        ),
        (
            "reorder events",
            changed(&bundle, |b| {
                b["events"].as_array_mut().expect("events").swap(1, 2);
            }),
        ),
        (
            "head before the last event",
            changed(&bundle, |b| {
                let position = b["events"][last]["position"].as_u64().expect("u64");
                b["head"]["position"] = Value::from(position - 1);
            }),
        ),
        (
            "head hash uppercase",
            changed(&bundle, |b| {
                let hash = string(&b["head"]["hash"]).to_uppercase();
                b["head"]["hash"] = Value::from(hash);
            }),
        ),
        (
            "an unknown field",
            changed(&bundle, |b| {
                b["events"][0]["signed_by"] = Value::from("nobody");
            }),
        ),
        (
            "another case",
            changed(&bundle, |b| {
                b["case"] = Value::from(run.smooth_case.to_string());
            }),
        ),
        (
            "a number as text",
            changed(&bundle, |b| {
                b["events"][0]["version"] = Value::from("1");
            }),
        ),
    ];
    for (what, tampered) in &cases {
        let (code, output) = verify_value(dir, &what.replace(' ', "-"), tampered);
        assert_eq!(code, 1, "{what}: a changed bundle verified: {output}");
        assert!(output.contains("INVALID"), "{what}: {output}");
    }
    // The message names the problem.
    let (_, output) = verify_value(dir, "named", &cases[2].1);
    assert!(output.contains("decoded.actor.role"), "{output}");
    assert!(output.contains("event #1"), "{output}");

    // Cutting the last event leaves a consistent bundle: an anchor kept elsewhere (the
    // case's last hash, from an audit) catches it.
    let last_hash = string(&events[last]["hash"]).to_owned();
    let (code, stdout, err) = civicflow(&["verify-bundle", path(&out), "--anchor", &last_hash]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(
        stdout.contains(&format!("anchor {last_hash} is version {count}")),
        "{stdout}"
    );
    let cut = changed(&bundle, |b| {
        b["events"].as_array_mut().expect("events").pop();
    });
    let (code, _) = verify_value(dir, "cut", &cut);
    assert_eq!(code, 0, "a bundle alone cannot show a cut end");
    let cut_file = dir.join("cut.json");
    let (code, stdout, _) = civicflow(&["verify-bundle", path(&cut_file), "--anchor", &last_hash]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("no event of the bundle has the anchored hash"),
        "{stdout}"
    );
    let (code, _, err) = civicflow(&["verify-bundle", path(&out), "--anchor", "abc"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a chain hash"), "{err}");

    // Not a bundle at all; no file.
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{\"format\": [1, 2").expect("write");
    let (code, stdout, _) = civicflow(&["verify-bundle", path(&garbage)]);
    assert_eq!(code, 1);
    assert!(stdout.contains("not an audit bundle"), "{stdout}");
    let (code, _, err) = civicflow(&["verify-bundle", path(&dir.join("absent.json"))]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn export_refuses_unknown_cases_and_a_running_store() {
    let (scratch, run) = demo_store("tools-export");
    let data = path(scratch.path());
    let out = scratch.path().join("bundle.json");
    let unknown = "0196a000-0000-7000-8000-000000000000";
    let (code, _, err) = civicflow(&[
        "export",
        "--data",
        data,
        "--case",
        unknown,
        "--out",
        path(&out),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no case"), "{err}");
    assert!(!out.exists());

    // While another process holds the store (as `civicflow serve` does), tools refuse.
    let log = SledLog::open(scratch.path().join("log")).expect("open");
    let case = run.smooth_case.to_string();
    for args in [
        vec![
            "export",
            "--data",
            data,
            "--case",
            &case,
            "--out",
            path(&out),
        ],
        vec!["audit", "--data", data, &case],
        vec!["rebuild", "--data", data],
        vec!["token", "list", "--data", data],
    ] {
        let (code, _, err) = civicflow(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains("stop it first"), "{args:?}: {err}");
    }
    log.close().expect("close");
}

#[test]
fn rebuild_builds_every_read_model_to_the_head() {
    let (scratch, run) = demo_store("tools-rebuild");
    let data = path(scratch.path());
    let open_engine = || {
        let key =
            civicflow::core::vault::MasterKey::load_or_create(scratch.path().join("master.key"))
                .expect("the demo's key");
        engine::Engine::open(
            engine::EngineConfig::new(scratch.path())
                .clock(Arc::new(civicflow::core::ManualClock::new(
                    civicflow::demo::START,
                )))
                .master_key(key),
        )
        .expect("the engine opens")
    };
    // Three requests still open, so that the deadline index holds running deadlines.
    let engine = open_engine();
    for n in 0..3 {
        engine
            .submit(
                &civicflow::demo::acting("li.grid1"),
                engine::Command::OpenCase {
                    workflow: WorkflowId::new("service-request").expect("valid"),
                    version: None,
                    unit: civicflow::core::UnitId::new("tonghui").expect("valid"),
                    title: format!("street light {n} out"),
                    description: String::new(),
                    fields: [(
                        "category".to_owned(),
                        FieldValue::Choice("public_facilities".into()),
                    )]
                    .into_iter()
                    .collect(),
                    requester: None,
                    channel: Channel::Door,
                    place: None,
                },
            )
            .expect("opened");
    }
    drop(engine);
    // As after an import: no deadline index saved.
    let snapshot = scratch.path().join("deadline-index.snapshot");
    std::fs::remove_file(&snapshot).expect("the engine's close saved one");
    for _ in 0..2 {
        let (code, out, err) = civicflow(&["rebuild", "--data", data]);
        assert_eq!(code, 0, "{err}");
        let count = models::names().len();
        assert!(
            out.contains(&format!("rebuilt {count} read models")),
            "{out}"
        );
        assert!(
            out.contains("rebuilt the deadline index: 3 deadlines running"),
            "{out}"
        );
        // Then written afresh with only their live pages, with nothing left beside them.
        assert!(out.contains("compacted the read models in"), "{out}");
        for leftover in ["readmodels.compacting", "readmodels.replaced"] {
            assert!(!scratch.path().join(leftover).exists(), "{leftover} left");
        }
    }
    // The deadline index saved is the one the engine saves when it closes, built from the
    // whole log (the same bytes: the snapshot is ordered).
    let rebuilt = std::fs::read(&snapshot).expect("rebuild saved the deadline index");
    std::fs::remove_file(&snapshot).expect("removed");
    drop(open_engine());
    assert_eq!(
        std::fs::read(&snapshot).expect("the engine's close saved it"),
        rebuilt
    );
    let log = SledLog::open(scratch.path().join("log")).expect("open");
    let head = log.head().expect("not empty").position;
    let store = Arc::new(SledReadModels::open(scratch.path().join("readmodels")).expect("open"));
    let definitions = Arc::new(DefinitionRegistry::built_in());
    for projection in models::all(definitions.clone(), Zone::shanghai()) {
        let ns = Namespace::new(projection.name(), projection.version()).expect("valid");
        assert_eq!(
            store.active(projection.name()).expect("read"),
            Some(projection.version()),
            "{}",
            projection.name()
        );
        assert_eq!(
            store.checkpoint(&ns).expect("read"),
            Some(head),
            "{}",
            projection.name()
        );
    }
    // The read models answer, at once (nothing is left to apply).
    let runner = Runner::start(
        Arc::new(log.clone()),
        store.clone(),
        models::all(definitions, Zone::shanghai()),
        RunnerOptions::default(),
    )
    .expect("start");
    let view = runner
        .view_at_least(case_board::NAME, head, Duration::from_secs(5))
        .expect("fresh");
    let row = case_board::get(&view, run.smooth_case)
        .expect("read")
        .expect("the smooth case is on the board");
    assert!(row.closed, "{row:?}");
    drop(view);
    runner.stop();
    drop(store);
    log.close().expect("close");
}

/// Guards against a compaction that changes what the read models hold, leaves its copy
/// behind, runs under a service, or fails on a directory without saying what is wrong.
#[test]
fn compact_rewrites_a_stopped_stores_read_models_keeping_every_row() {
    let (scratch, _) = demo_store("tools-compact");
    let data = path(scratch.path());
    let (code, _, err) = civicflow(&["rebuild", "--data", data]);
    assert_eq!(code, 0, "{err}");
    let rows = |dir: &Path| {
        let store = SledReadModels::open(dir).expect("open");
        let mut all = Vec::new();
        for ns in store.namespaces().expect("namespaces") {
            let checkpoint = store.checkpoint(&ns).expect("checkpoint");
            let rows = store.scan(&ns, b"", None, usize::MAX).expect("scan");
            let active = store.active(ns.name()).expect("active");
            all.push((ns, checkpoint, rows, active));
        }
        all
    };
    let readmodels = scratch.path().join("readmodels");
    let before = rows(&readmodels);
    assert!(before.len() >= models::names().len(), "{}", before.len());
    let (code, out, err) = civicflow(&["compact", "--data", data]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("compacted the read models in "), "{out}");
    assert!(out.contains(" MB on disk (was "), "{out}");
    assert_eq!(rows(&readmodels), before);
    for leftover in ["readmodels.compacting", "readmodels.replaced"] {
        assert!(!scratch.path().join(leftover).exists(), "{leftover} left");
    }

    // Refused while the store is in use, nothing written.
    let held = SledReadModels::open(&readmodels).expect("open");
    let (code, _, err) = civicflow(&["compact", "--data", data]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is in use"), "{err}");
    assert!(!scratch.path().join("readmodels.compacting").exists());
    drop(held);

    // A directory that is not a store's.
    let empty = TempDir::new("tools-compact-empty");
    let (code, _, err) = civicflow(&["compact", "--data", path(empty.path())]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds no read models"), "{err}");
}

#[test]
fn tokens_are_created_listed_and_revoked_without_showing_secrets() {
    let (scratch, _) = demo_store("tools-tokens");
    let data = path(scratch.path());
    let (code, out, _) = civicflow(&["token", "list", "--data", data]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "no tokens");

    let (code, out, err) = civicflow(&[
        "token",
        "create",
        "--data",
        data,
        "--actor",
        "li.grid1",
        "--role",
        "grid_worker",
        "--unit",
        "grid-1",
        "--name",
        "grid-1 tablet",
    ]);
    assert_eq!(code, 0, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("the secret is printed")
        .to_owned();
    assert!(secret.starts_with("cft_"), "{out}");
    let id = TokenId::of_hash(&civicflow::http::hash_token(&secret)).to_string();
    assert!(out.starts_with(&format!("token {id} issued")), "{out}");
    assert!(err.contains("only this once"), "{err}");

    // A grant the actor does not hold is refused.
    let (code, _, err) = civicflow(&[
        "token",
        "create",
        "--data",
        data,
        "--actor",
        "li.grid1",
        "--role",
        "community_admin",
        "--unit",
        "tonghui",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("refused"), "{err}");
    // Without the master key, nothing opens.
    let (code, _, err) = civicflow(&[
        "token",
        "create",
        "--data",
        data,
        "--actor",
        "li.grid1",
        "--role",
        "grid_worker",
        "--unit",
        "grid-1",
        "--key-file",
        path(&scratch.path().join("no.key")),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no master key"), "{err}");

    let (code, out, _) = civicflow(&["token", "list", "--data", data]);
    assert_eq!(code, 0);
    assert!(!out.contains("cft_"), "a secret was listed: {out}");
    let row = out.lines().find(|l| l.starts_with(&id)).expect("listed");
    assert!(
        row.contains("li.grid1") && row.contains("grid_worker") && row.contains("grid-1 tablet"),
        "{row}"
    );
    // ID ACTOR ROLE UNIT ISSUED REVOKED NAME
    assert_eq!(
        row.split_whitespace().nth(5),
        Some("-"),
        "not revoked yet: {row}"
    );

    let (code, out, err) = civicflow(&[
        "token",
        "revoke",
        "--data",
        data,
        &id,
        "--reason",
        "tablet lost",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("token {id} revoked")), "{out}");
    let (code, out, _) = civicflow(&["token", "revoke", "--data", data, &id]);
    assert_eq!(code, 0);
    assert!(out.contains("already revoked"), "{out}");
    let (_, out, _) = civicflow(&["token", "list", "--data", data]);
    let row = out.lines().find(|l| l.starts_with(&id)).expect("listed");
    assert_ne!(row.split_whitespace().nth(5), Some("-"), "revoked: {row}");

    let (code, _, err) = civicflow(&["token", "revoke", "--data", data, "0123456789abcdef"]);
    assert_eq!(code, 2);
    assert!(err.contains("no token 0123456789abcdef"), "{err}");
    let (code, _, err) = civicflow(&["token", "revoke", "--data", data, "xyz"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a token id"), "{err}");

    // The chain still holds after the tools wrote.
    let (code, out, _) = civicflow(&["verify", "--data", data]);
    assert_eq!(code, 0, "{out}");
}

/// A log written before texts were checked may hold control characters: `civicflow audit`
/// prints them escaped (`\u{1b}`, `\n`), never raw, as text and as JSON (which stays valid
/// and reads back to the stored text). The old event is appended straight to the log, as an
/// older version of civicflow would have written it.
#[test]
fn audit_escapes_control_characters_an_old_log_holds() {
    use civicflow::core::domain::case::CaseEvent;
    use civicflow::core::{
        AppendRequest, CaseId, CorrelationId, DomainEvent, ExpectedVersion, NewEvent, Timestamp,
        Version,
    };

    let (scratch, run) = demo_store("tools-audit-escapes");
    let data = path(scratch.path());
    // The demo's opening of a case, copied to a new case whose title and description hold
    // what the rule refuses now: an escape sequence that clears the screen, a carriage
    // return, a bidirectional override, DEL, a line break, a NUL.
    let title = "路灯\u{1b}[2J\rfake line\u{202E}dne\u{7f}";
    let description = "line one\nline two\u{0}";
    let case = CaseId::parse("0196a000-0000-7000-8000-0000000000aa").expect("case id");
    let log = SledLog::open(scratch.path().join("log")).expect("open");
    let first = log
        .read_stream(&run.escalated_case.stream(), Version::FIRST, 1)
        .expect("read")
        .remove(0);
    let CaseEvent::Opened(mut opened) = CaseEvent::from_payload(
        first.event_type.as_str(),
        first.schema_version,
        &first.payload,
    )
    .expect("decode") else {
        panic!("a case's first event is its opening");
    };
    opened.case = case;
    opened.title = title.to_owned();
    opened.description = description.to_owned();
    let event = CaseEvent::Opened(opened);
    let request = AppendRequest::to_stream(
        case.stream(),
        ExpectedVersion::NoStream,
        vec![NewEvent::new(
            civicflow::core::EventType::new(event.event_type()).expect("type"),
            event.schema_version(),
            event.to_payload().expect("encode"),
        )],
        first.actor.clone(),
        CorrelationId::new_v7(Timestamp::EPOCH),
    );
    log.append(request).expect("append").expect("no conflict");
    log.close().expect("close");

    let (code, printed, err) = civicflow(&["audit", "--data", data, &case.to_string()]);
    assert_eq!(code, 0, "{err}");
    for raw in ['\u{1b}', '\r', '\u{202E}', '\u{7f}', '\u{0}'] {
        assert!(
            !printed.contains(raw),
            "{:?} reached the terminal raw: {printed:?}",
            raw
        );
    }
    assert!(
        printed.contains("路灯\\u{1b}[2J\\rfake line\\u{202e}dne\\u{7f}"),
        "{printed}"
    );
    // Every line the audit prints is one the tool wrote: the title forged none.
    assert!(printed.starts_with(&format!("case {case} (")), "{printed}");
    assert!(
        printed.lines().skip(1).all(|line| line.starts_with("  ")),
        "{printed}"
    );

    let (code, json, err) = civicflow(&["audit", "--data", data, &case.to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    for raw in ['\u{1b}', '\r', '\u{202E}', '\u{7f}', '\u{0}'] {
        assert!(!json.contains(raw), "{raw:?} raw in the JSON: {json:?}");
    }
    let value: Value = serde_json::from_str(&json).expect("still JSON");
    assert_eq!(
        value["title"], title,
        "the JSON reads back to the stored text"
    );
}

#[test]
fn audit_as_of_a_moment_prints_the_steps_until_then() {
    let (scratch, run) = demo_store("tools-audit-as-of");
    let data = path(scratch.path());
    let case = run.escalated_case.to_string();
    let (code, json, err) = civicflow(&["audit", "--data", data, &case, "--json"]);
    assert_eq!(code, 0, "{err}");
    let whole: Value = serde_json::from_str(&json).expect("JSON");
    let steps = whole["steps"].as_array().expect("steps");
    assert!(steps.len() >= 3, "{json}");
    assert!(whole.get("as_of").is_none());

    // As of the second step's time: the steps recorded by then, and no more.
    let at = steps[1]["recorded_at"].as_str().expect("time").to_owned();
    let (code, json, err) = civicflow(&["audit", "--data", data, &case, "--json", "--as-of", &at]);
    assert_eq!(code, 0, "{err}");
    let then: Value = serde_json::from_str(&json).expect("JSON");
    let reached = steps
        .iter()
        .take_while(|s| s["recorded_at"].as_str() <= Some(at.as_str()))
        .count();
    assert!(reached >= 2 && reached < steps.len(), "{reached} of {json}");
    assert_eq!(then["steps"].as_array().map(Vec::len), Some(reached));
    assert_eq!(
        then["steps"].as_array().expect("steps")[..],
        steps[..reached]
    );
    assert_eq!(then["as_of"], at.as_str());
    assert_eq!(then["chain"]["intact"], true);
    // Exactly what the engine's audit as of that moment holds, read from the same store.
    let log = SledLog::open(scratch.path().join("log")).expect("open");
    let expected = engine::audit_log_as_of(
        &log,
        &DefinitionRegistry::built_in(),
        &Zone::shanghai(),
        run.escalated_case,
        civicflow::core::calendar::parse_rfc3339(&at).expect("a time"),
    )
    .expect("audit");
    log.close().expect("close");
    let mut expected = civicflow::http::audit::to_json(&expected);
    expected["as_of"] = Value::String(at.clone());
    assert_eq!(then, expected);
    // As text: it says as of when, and shows the steps until then.
    let (code, text, err) = civicflow(&["audit", "--data", data, &case, "--as-of", &at]);
    assert_eq!(code, 0, "{err}");
    assert!(text.starts_with(&format!("as of {at}: ")), "{text}");
    assert_eq!(text.matches("\n  #").count(), reached, "{text}");

    // Before the case was opened: it did not exist yet, and the message says when it was.
    let (code, _, err) = civicflow(&[
        "audit",
        "--data",
        data,
        &case,
        "--as-of",
        "2000-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 2);
    let opened = steps[0]["recorded_at"].as_str().expect("time");
    assert!(
        err.contains("did not exist yet") && err.contains(&format!("opened at {opened}")),
        "{err}"
    );
    // A time without an offset, a date, words: refused naming --as-of, before the store is read.
    for bad in ["2026-04-14T09:30:00", "2026-04-14", "yesterday"] {
        let (code, _, err) = civicflow(&["audit", "--data", data, &case, "--as-of", bad]);
        assert_eq!(code, 2, "{bad}");
        assert!(
            err.contains("--as-of") && err.contains("RFC 3339"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn calendar_publish_adds_a_year_once_and_show_names_where_coverage_ends() {
    let (scratch, _) = demo_store("tools-calendar");
    let data = path(scratch.path());
    let (code, out, err) = civicflow(&["calendar", "show", "--data", data]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("zone: Asia/Shanghai"), "{out}");
    assert!(
        out.contains("2026: ") && out.contains("(from the release)"),
        "{out}"
    );
    // The command counts coverage from the current year (the real clock): what it says
    // depends on the date the test runs.
    let this_year = civicflow::core::calendar::BusinessCalendar::china()
        .year_of(civicflow::core::Clock::now(&civicflow::core::SystemClock));
    if this_year <= 2026 {
        assert!(out.contains("covered through 2026"), "{out}");
    }

    let file = scratch.path().join("2027.toml");
    std::fs::write(
        &file,
        "[2027]\nsource = \"test schedule for 2027\"\noff = [[\"2027-01-01\", \"2027-01-03\"]]\n",
    )
    .expect("written");
    let file = path(&file);
    let (code, out, err) = civicflow(&["calendar", "publish", "--data", data, file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2027: published (revision 1)"), "{out}");
    let (code, out, _) = civicflow(&["calendar", "publish", "--data", data, file]);
    assert_eq!(code, 0);
    assert!(out.contains("2027: unchanged"), "{out}");
    let (code, out, _) = civicflow(&["calendar", "show", "--data", data]);
    assert_eq!(code, 0);
    assert!(out.contains("published, revision 1"), "{out}");
    if this_year <= 2027 {
        assert!(out.contains("covered through 2027"), "{out}");
    }

    // A bad file is refused naming the field, and nothing is published.
    let bad = scratch.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[2028]\nsource = \"x\"\noff = [[\"2028-01-03\", \"2028-01-01\"]]\n",
    )
    .expect("written");
    let (code, _, err) = civicflow(&["calendar", "publish", "--data", data, path(&bad)]);
    assert_eq!(code, 2);
    assert!(err.contains("off[0]"), "{err}");
    let (_, out, _) = civicflow(&["calendar", "show", "--data", data]);
    assert!(!out.contains("2028:"), "{out}");
}
