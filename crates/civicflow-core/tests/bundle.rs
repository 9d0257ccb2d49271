//! Audit bundles made from a real log and checked without it: an intact bundle verifies, and
//! changing any part (a record byte, a link, a hash, a decoded field, the order or number of
//! events, the head) is caught.
//!
//! Guards against a bundle check that trusts what it should recompute. (The JSON file format
//! and the `civicflow` command are tested in the root package's `tests/cli_tools.rs`.)

use civicflow_core::bundle::{self, Bundle, Decoded, BUNDLE_FORMAT};
use civicflow_core::domain::case::{CaseEvent, Channel};
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::org::{Acting, ActorKind, OrgCommand, Tier};
use civicflow_core::domain::workflow::WorkflowId;
use civicflow_core::engine::{Command, Engine, EngineConfig, Outcome};
use civicflow_core::{ActorId, CaseId, Role, UnitId};

struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A log with a small chart and one case of three events, and a second case in between so
/// the case's events are not neighbours in the log.
fn store(name: &str) -> (Scratch, Engine, CaseId) {
    let dir = std::env::temp_dir().join(format!("civicflow-bundle-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Engine::open(EngineConfig::new(&dir).with_generated_master_key()).expect("open");
    let tonghui = UnitId::new("tonghui").expect("valid");
    let grid = UnitId::new("grid-1").expect("valid");
    let system = Acting::system(tonghui.clone());
    for (id, name, tier, parent) in [
        (&tonghui, "通惠社区", Tier::Community, None),
        (&grid, "第一网格", Tier::Grid, Some(tonghui.clone())),
    ] {
        engine
            .submit(
                &system,
                Command::Org(OrgCommand::CreateUnit {
                    id: id.clone(),
                    name: name.into(),
                    tier,
                    parent,
                }),
            )
            .expect("unit");
    }
    let li = ActorId::new("li.grid1").expect("valid");
    engine
        .submit(
            &system,
            Command::Org(OrgCommand::RegisterActor {
                id: li.clone(),
                name: "李网格员".into(),
                kind: ActorKind::Person,
            }),
        )
        .expect("actor");
    engine
        .submit(
            &system,
            Command::Org(OrgCommand::GrantRole {
                actor: li.clone(),
                role: Role::new("grid_worker").expect("valid"),
                unit: grid.clone(),
            }),
        )
        .expect("grant");
    let worker = Acting::new(li, Role::new("grid_worker").expect("valid"), grid.clone());
    let open = || {
        let category = Fields::from([("category".to_owned(), FieldValue::Choice("safety".into()))]);
        match engine
            .submit(
                &worker,
                Command::OpenCase {
                    workflow: WorkflowId::new("service-request").expect("valid"),
                    version: None,
                    unit: grid.clone(),
                    title: "消防通道堵塞 fire lane blocked".into(),
                    description: String::new(),
                    fields: category,
                    requester: None,
                    channel: Channel::Door,
                    place: None,
                },
            )
            .expect("open")
        {
            Outcome::Case { case, .. } => case,
            other => panic!("a case outcome, got {other:?}"),
        }
    };
    let case = open();
    let _other = open();
    let version = engine
        .history(case)
        .expect("history")
        .last()
        .map(|e| e.recorded.version)
        .expect("events");
    assert!(version.get() >= 2, "the case has several events");
    (Scratch(dir), engine, case)
}

fn same(file: &Decoded, again: &Decoded) -> Result<(), String> {
    if file == again {
        Ok(())
    } else {
        Err(format!("{file:?} is not {again:?}"))
    }
}

fn check(bundle: &Bundle<Decoded>) -> Result<bundle::BundleSummary, String> {
    bundle::verify(bundle, same).map_err(|e| e.to_string())
}

#[test]
fn an_exported_bundle_verifies_and_every_change_is_caught() {
    let (_scratch, engine, case) = store("tamper");
    let bundle = bundle::export(engine.log(), case).expect("export");
    assert_eq!(bundle.format, BUNDLE_FORMAT);
    assert_eq!(bundle.stream, format!("case-{case}"));
    let summary = check(&bundle).expect("intact");
    assert_eq!(summary.case, case);
    assert_eq!(summary.events, bundle.events.len());
    assert_eq!(bundle.events[0].decoded.actor.role, "grid_worker");
    assert!(matches!(
        bundle.events[0].decoded.payload,
        CaseEvent::Opened(_)
    ));

    let fails = |what: &str, change: &dyn Fn(&mut Bundle<Decoded>)| {
        let mut tampered = bundle.clone();
        change(&mut tampered);
        let result = check(&tampered);
        assert!(result.is_err(), "{what}: a changed bundle verified");
        result.err().unwrap_or_default()
    };
    let flip = |hex: &str, at: usize| {
        let mut bytes = hex.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        String::from_utf8(bytes).expect("ascii")
    };
    let last = bundle.events.len() - 1;
    fails("record byte", &|b| {
        let at = b.events[0].record.len() - 1;
        b.events[0].record = flip(&b.events[0].record, at);
    });
    fails("record uppercase", &|b| {
        b.events[0].record = b.events[0].record.to_uppercase();
    });
    fails("hash", &|b| {
        b.events[last].hash = flip(&b.events[last].hash, 5)
    });
    fails("prev_stream_hash", &|b| {
        b.events[1].prev_stream_hash = flip(&b.events[1].prev_stream_hash, 0);
    });
    fails("prev_log_hash", &|b| {
        b.events[0].prev_log_hash = flip(&b.events[0].prev_log_hash, 0);
    });
    fails("position", &|b| b.events[0].position += 1);
    fails("version", &|b| b.events[1].version += 1);
    fails("actor role", &|b| {
        b.events[0].decoded.actor.role = "community_admin".into();
    });
    fails("recorded_at", &|b| {
        b.events[0].decoded.recorded_at = "2000-01-01T00:00:00.000000Z".into();
    });
    fails("payload", &|b| {
        if let CaseEvent::Opened(opened) = &mut b.events[0].decoded.payload {
            opened.title = "something else".into();
        }
    });
    let dropped = fails("drop the first event", &|b| {
        b.events.remove(0);
    });
    assert!(dropped.contains("version 1 is missing"), "{dropped}");
    fails("reorder", &|b| b.events.swap(0, 1));
    fails("no events", &|b| b.events.clear());
    fails("head before the last event", &|b| {
        b.head.position = b.events[last].position - 1;
    });
    fails("head hash at the last event", &|b| {
        b.head.position = b.events[last].position;
        b.head.hash = flip(&b.head.hash, 3);
    });
    fails("case", &|b| {
        b.case = CaseId::parse("00000000-0000-7000-8000-000000000000")
            .expect("uuid")
            .to_string()
    });
    fails("format", &|b| b.format = "civicflow-audit-bundle/2".into());
}

#[test]
fn an_unknown_case_has_no_bundle() {
    let (_scratch, engine, _) = store("unknown");
    let unknown = CaseId::parse("00000000-0000-7000-8000-000000000000").expect("uuid");
    assert!(matches!(
        bundle::export(engine.log(), unknown),
        Err(bundle::ExportError::NotFound { .. })
    ));
}
