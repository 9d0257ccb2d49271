//! Audit bundles made from a real log and checked without it: an intact bundle verifies, and
//! changing any part (a record byte, a link, a hash, a decoded field, the order or number of
//! events, the head) is caught.
//!
//! Guards against a bundle check that trusts what it should recompute. (The JSON file format
//! and the `civicflow` command are tested in the root package's `tests/suite/cli_tools.rs`.)

use civicflow_core::bundle::{self, Bundle, Decoded, BUNDLE_FORMAT};
use civicflow_core::domain::case::CaseEvent;
use civicflow_core::engine::Engine;
use civicflow_core::CaseId;

use crate::support::case_store;

/// The store of these tests: a case of several events, another case between them in the log.
fn store(name: &str) -> (case_store::Scratch, Engine, CaseId) {
    case_store::store(name, "消防通道堵塞 fire lane blocked", "")
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
