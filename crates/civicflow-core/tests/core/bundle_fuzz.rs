//! Audit bundles under hostile edits (issue 7): a real exported bundle, written as JSON the
//! way `civicflow export` writes it, is changed (a value at a random path replaced, a key
//! removed or added, an array item dropped or duplicated, bytes of the text flipped,
//! inserted or removed, the text cut off), read back the way `civicflow verify-bundle` reads
//! it (`serde_json` into `Bundle<serde_json::Value>`), and checked with `bundle::verify` and
//! a comparator like the command's (the record decoded again, rendered as JSON, must equal
//! the file's `decoded` exactly).
//!
//! Properties: nothing panics; a text that parses to the same JSON value as the original
//! (whitespace, escapes) still verifies; any edit that changes the parsed value is either
//! refused by the reader or reported by `verify`.
//!
//! Cases per property: 256 by default (a few seconds in debug); `CIVICFLOW_FUZZ_CASES=N` runs
//! `N` instead: `CIVICFLOW_FUZZ_CASES=20000 cargo test -p civicflow-core --release --test core bundle_fuzz::`.

use std::sync::OnceLock;

use crate::support::case_store;

use civicflow_core::bundle::{self, Bundle, Decoded};
use proptest::prelude::*;
use serde_json::Value;

fn cases() -> u32 {
    std::env::var("CIVICFLOW_FUZZ_CASES")
        .ok()
        .map(|n| {
            n.parse()
                .expect("CIVICFLOW_FUZZ_CASES must be a whole number")
        })
        .unwrap_or(256)
}

/// The JSON text of a real bundle: a case of several events, with another case between them
/// in the log. Made once per test binary.
fn original() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let (scratch, engine, case) = case_store::store(
            "fuzz",
            "消防通道堵塞 fire lane \"blocked\"",
            "line\nbreak\t\u{1F6A7}",
        );
        let exported = bundle::export(engine.log(), case).expect("export");
        assert!(exported.events.len() >= 2, "several events");
        let text = serde_json::to_string_pretty(&exported).expect("JSON");
        drop(engine);
        drop(scratch);
        assert!(check_text(&text).is_ok(), "the exported bundle verifies");
        text
    })
}

/// The command's comparison: the record decoded again, rendered and read back, must equal
/// the file's value.
fn same(file: &Value, again: &Decoded) -> Result<(), String> {
    let rendered = serde_json::to_string(again).map_err(|e| e.to_string())?;
    let expected: Value = serde_json::from_str(&rendered).map_err(|e| e.to_string())?;
    if &expected == file {
        Ok(())
    } else {
        Err(format!("decoded is {file}, the record says {expected}"))
    }
}

/// Reads and checks a bundle's text as `civicflow verify-bundle` does: `Err` with the reason
/// for a text that does not read or a bundle that does not verify.
fn check_text(text: &str) -> Result<(), String> {
    let bundle: Bundle<Value> = serde_json::from_str(text).map_err(|e| format!("read: {e}"))?;
    bundle::verify(&bundle, same)
        .map(|_| ())
        .map_err(|e| format!("verify: {e}"))
}

/// One edit of a JSON value. Paths are chosen by walking down with `steps` (each an index
/// into the current object's keys or array's items, taken modulo their count).
#[derive(Debug, Clone)]
enum Edit {
    Replace {
        steps: Vec<usize>,
        with: Value,
    },
    Remove {
        steps: Vec<usize>,
    },
    AddKey {
        steps: Vec<usize>,
        key: String,
        with: Value,
    },
    Duplicate {
        steps: Vec<usize>,
    },
    Nudge {
        steps: Vec<usize>,
        by: i64,
    },
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        "[0-9a-f]{0,70}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn edit() -> impl Strategy<Value = Edit> {
    let steps = proptest::collection::vec(any::<usize>(), 0..7);
    prop_oneof![
        (steps.clone(), json_value()).prop_map(|(steps, with)| Edit::Replace { steps, with }),
        steps.clone().prop_map(|steps| Edit::Remove { steps }),
        (steps.clone(), "[a-z_]{1,10}", json_value()).prop_map(|(steps, key, with)| Edit::AddKey {
            steps,
            key,
            with
        }),
        steps.clone().prop_map(|steps| Edit::Duplicate { steps }),
        (steps, prop_oneof![Just(1i64), Just(-1), any::<i64>()])
            .prop_map(|(steps, by)| Edit::Nudge { steps, by }),
    ]
}

/// The container at the end of the walk and the chosen key/index inside it (`None` for the
/// root itself).
fn target<'a>(root: &'a mut Value, steps: &[usize]) -> (&'a mut Value, Option<Choice>) {
    let mut at = root;
    let mut choice = None;
    for (i, step) in steps.iter().enumerate() {
        let next = match &*at {
            Value::Object(map) if !map.is_empty() => Choice::Key(
                map.keys()
                    .nth(step % map.len())
                    .cloned()
                    .unwrap_or_default(),
            ),
            Value::Array(items) if !items.is_empty() => Choice::Index(step % items.len()),
            _ => break,
        };
        let last = i + 1 == steps.len();
        let descends = match (&next, &*at) {
            (Choice::Key(k), Value::Object(map)) => {
                matches!(map.get(k), Some(Value::Object(_) | Value::Array(_)))
            }
            (Choice::Index(n), Value::Array(items)) => {
                matches!(items.get(*n), Some(Value::Object(_) | Value::Array(_)))
            }
            _ => false,
        };
        if last || !descends {
            choice = Some(next);
            break;
        }
        at = match (next, at) {
            (Choice::Key(k), Value::Object(map)) => map.get_mut(&k).expect("chosen key"),
            (Choice::Index(n), Value::Array(items)) => &mut items[n],
            _ => unreachable!("a choice matches its container"),
        };
    }
    (at, choice)
}

#[derive(Debug, Clone)]
enum Choice {
    Key(String),
    Index(usize),
}

fn slot<'a>(container: &'a mut Value, choice: &Choice) -> Option<&'a mut Value> {
    match (container, choice) {
        (Value::Object(map), Choice::Key(k)) => map.get_mut(k),
        (Value::Array(items), Choice::Index(n)) => items.get_mut(*n),
        _ => None,
    }
}

fn apply(root: &mut Value, edit: &Edit) {
    match edit {
        Edit::Replace { steps, with } => {
            let (container, choice) = target(root, steps);
            if let Some(value) = choice.and_then(|c| slot(container, &c)) {
                *value = with.clone();
            }
        }
        Edit::Remove { steps } => {
            let (container, choice) = target(root, steps);
            match (container, choice) {
                (Value::Object(map), Some(Choice::Key(k))) => {
                    map.remove(&k);
                }
                (Value::Array(items), Some(Choice::Index(n))) => {
                    items.remove(n);
                }
                _ => {}
            }
        }
        Edit::AddKey { steps, key, with } => {
            let (container, _) = target(root, steps);
            if let Value::Object(map) = container {
                map.insert(key.clone(), with.clone());
            }
        }
        Edit::Duplicate { steps } => {
            let (container, choice) = target(root, steps);
            if let (Value::Array(items), Some(Choice::Index(n))) = (container, choice) {
                let copy = items[n].clone();
                items.insert(n, copy);
            }
        }
        Edit::Nudge { steps, by } => {
            let (container, choice) = target(root, steps);
            if let Some(value) = choice.and_then(|c| slot(container, &c)) {
                if let Some(n) = value.as_u64() {
                    *value = Value::from(n.wrapping_add_signed(*by));
                } else if let Some(n) = value.as_i64() {
                    *value = Value::from(n.wrapping_add(*by));
                }
            }
        }
    }
}

/// A change to the text.
#[derive(Debug, Clone)]
enum TextEdit {
    Set { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Truncate { keep: usize },
}

fn text_edit() -> impl Strategy<Value = TextEdit> {
    let byte = prop_oneof![
        any::<u8>(),
        proptest::sample::select(b" \n\t0123456789abcdefABCDEF\"\\{}[],:-.eE".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(at, byte)| TextEdit::Set { at, byte }),
        (any::<usize>(), proptest::collection::vec(byte, 1..6))
            .prop_map(|(at, bytes)| TextEdit::Insert { at, bytes }),
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| TextEdit::Remove { at, len }),
        any::<usize>().prop_map(|keep| TextEdit::Truncate { keep }),
    ]
}

fn apply_text(bytes: &mut Vec<u8>, edit: &TextEdit) {
    let len = bytes.len();
    match edit {
        TextEdit::Set { at, byte } if len > 0 => bytes[at % len] = *byte,
        TextEdit::Insert { at, bytes: new } => {
            let at = at % (len + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        TextEdit::Remove { at, len: n } if len > 0 => {
            let at = at % len;
            bytes.drain(at..(at + n).min(len));
        }
        TextEdit::Truncate { keep } => bytes.truncate(keep % (len + 1)),
        _ => {}
    }
}

/// Changes a bundle alone cannot show, by design (`bundle.rs`): its last events cut off, and
/// the log's head (taken at export) changed while it stays after the last event. `true` when
/// `after` differs from `before` only so.
fn undetectable(before: &Value, after: &Value) -> bool {
    let mut restored = after.clone();
    let Some(map) = restored.as_object_mut() else {
        return false;
    };
    if let (Some(events), Some(all)) = (
        map.get("events").and_then(Value::as_array),
        before["events"].as_array(),
    ) {
        if !events.is_empty() && all.starts_with(events) {
            let last = events.last().and_then(|e| e["position"].as_u64());
            let head = map.get("head").and_then(|h| h["position"].as_u64());
            if head < last {
                return false;
            }
            map.insert("events".into(), before["events"].clone());
        }
    }
    if map.contains_key("head") {
        let last = before["events"]
            .as_array()
            .and_then(|e| e.last())
            .and_then(|e| e["position"].as_u64());
        let head = map.get("head").and_then(|h| h["position"].as_u64());
        if head <= last {
            return false;
        }
        map.insert("head".into(), before["head"].clone());
    }
    restored == *before
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases()) })]

    /// Edits of the bundle's JSON value: a changed value never verifies; nothing panics.
    #[test]
    fn a_changed_json_value_never_verifies(edits in proptest::collection::vec(edit(), 1..4)) {
        let text = original();
        let before: Value = serde_json::from_str(text).expect("JSON");
        let mut after = before.clone();
        for edit in &edits {
            apply(&mut after, edit);
        }
        let changed = serde_json::to_string(&after).expect("JSON");
        let result = check_text(&changed);
        if after == before {
            prop_assert!(result.is_ok(), "an unchanged bundle was refused: {result:?}");
        } else if undetectable(&before, &after) {
            // Allowed either way (see `undetectable`).
        } else {
            prop_assert!(result.is_err(), "a changed bundle verified: {edits:?}");
        }
    }

    /// Byte edits and truncations of the JSON text: never a panic; a text that still parses
    /// to the same value verifies, any other that reads does not.
    #[test]
    fn an_edited_text_verifies_only_when_it_means_the_same(
        edits in proptest::collection::vec(text_edit(), 1..4),
    ) {
        let text = original();
        let before: Value = serde_json::from_str(text).expect("JSON");
        let mut bytes = text.as_bytes().to_vec();
        for edit in &edits {
            apply_text(&mut bytes, edit);
        }
        // The command reads the file as UTF-8 text first.
        let Ok(edited) = String::from_utf8(bytes) else { return Ok(()); };
        let result = check_text(&edited);
        match serde_json::from_str::<Value>(&edited) {
            Ok(after) if after == before => {
                prop_assert!(result.is_ok(), "the same bundle was refused: {result:?} {edits:?}");
            }
            Ok(after) if undetectable(&before, &after) => {}
            _ => prop_assert!(result.is_err(), "an edited bundle verified: {edits:?}"),
        }
    }
}
