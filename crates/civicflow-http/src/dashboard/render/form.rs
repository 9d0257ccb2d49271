//! Forms generated from a workflow's fields: each field of an action (or of a workflow's
//! intake) as the input its kind asks for, labelled from the definition, required fields
//! marked in words and with `required`, a refusal's message beside the field it names; and
//! the posted form read back as the JSON values the API's functions take, so that a value
//! means the same whichever way it came (the domain's one field parser reads both).
//!
//! | kind | input |
//! |---|---|
//! | `text` | `<textarea>` (an action's note, reason, reply) or `<input type=text>` (intake) |
//! | `number`, `integer` | `<input type=number>` |
//! | `bool` | `<select>`: yes / no |
//! | `datetime` | `<input type=datetime-local>`, read in the calendar's time zone |
//! | `unit` | `<select>` of the units the caller may name (the org chart's own rule) |
//! | `choice` | `<select>` of the choices |
//! | `choices` | a `<fieldset>` of checkboxes |
//! | `rating` | `<select>` 1–5 with words |
//! | `case` | `<input type=text>` for a case id |

use civicflow_core::calendar::{LocalDate, Zone};
use civicflow_core::domain::fields::{FieldKind, FieldSpec};
use civicflow_core::domain::org::{Acting, OrgChart, Reach, Unit};
use maud::{html, Markup};
use serde_json::{Map, Value};

use super::labels::{bi, named};

/// The words of each rating, 1 to 5 (the API's scale: 1 very dissatisfied, 5 very satisfied).
pub(crate) const RATING_WORDS: [(&str, &str); 5] = [
    ("非常不满意", "very dissatisfied"),
    ("不满意", "dissatisfied"),
    ("一般", "neither"),
    ("满意", "satisfied"),
    ("非常满意", "very satisfied"),
];

/// Which units a `unit` field offers.
#[derive(Clone, Copy)]
pub(crate) enum UnitChoices<'a> {
    /// The units `acting` may hand a case to within the field's reach
    /// ([`OrgChart::may_hand_to`]): an action's lead or co-handling unit.
    HandTo(&'a OrgChart, &'a Acting),
    /// Every unit of the chart that is not retired (a fact of an intake: the shop
    /// complained of).
    Any(&'a OrgChart),
}

impl UnitChoices<'_> {
    fn units(&self, spec: &FieldSpec) -> Vec<&Unit> {
        match self {
            UnitChoices::HandTo(org, acting) => org
                .units()
                .filter(|u| !u.retired && org.may_hand_to(acting, &u.id, spec.reach))
                .collect(),
            UnitChoices::Any(org) => org.units().filter(|u| !u.retired).collect(),
        }
    }
}

/// A unit as an option's text: its name and id (`通惠第一网格 grid 1 (新马路) · grid-1`).
pub(crate) fn unit_label(unit: &Unit) -> String {
    format!("{} · {}", unit.name, unit.id.as_str())
}

/// Where the inputs of one form go: the prefix of their element ids (unique on the page)
/// and of their names (`fields.` for an intake's fields beside title and description).
#[derive(Clone, Copy)]
pub(crate) struct Names<'a> {
    /// The prefix of element ids (`act-dispatch`).
    pub id: &'a str,
    /// The prefix of input names (`` or `fields.`).
    pub name: &'a str,
}

impl Names<'_> {
    /// The element id of `field`'s input.
    pub(crate) fn id_of(&self, field: &str) -> String {
        format!("{}-{}", self.id, field.replace(['.', '_'], "-"))
    }

    /// The input name of `field`.
    pub(crate) fn name_of(&self, field: &str) -> String {
        format!("{}{field}", self.name)
    }
}

/// A "required" mark, in words (a screen reader reads it; colour is not the only sign).
pub(crate) fn required_mark() -> Markup {
    html! { " " span.required { "（" (bi("必填", "required")) "）" } }
}

/// A refusal's message as it stands beside its field, with the id `aria-describedby` names.
pub(crate) fn error_message(id: &str, message: &str) -> Markup {
    html! { p.error id=(id) role="alert" { (message) } }
}

/// A field's label text: its definition's label, or its name.
pub(crate) fn label_of(spec: &FieldSpec) -> Markup {
    if spec.label.trim().is_empty() {
        html! { (spec.name) }
    } else {
        named(&spec.label)
    }
}

/// A choice as people read it (`public_facilities` → `public facilities`).
pub(crate) fn choice_words(choice: &str) -> String {
    choice.replace('_', " ")
}

/// One field of a form: its label, its input, and the refusal `error` beside it (with
/// `aria-describedby` and `aria-invalid` on the input). `values` are the values to show (the
/// form as it was posted, when it is shown again with a refusal).
pub(crate) fn field(
    spec: &FieldSpec,
    names: Names<'_>,
    values: &[&str],
    error: Option<&str>,
    units: UnitChoices<'_>,
    multiline: bool,
) -> Markup {
    let id = names.id_of(&spec.name);
    let name = names.name_of(&spec.name);
    let error_id = format!("{id}-error");
    let described = error.map(|_| error_id.as_str());
    let invalid = error.map(|_| "true");
    let value = values.first().copied().unwrap_or("");
    let required = spec.required;
    if spec.kind == FieldKind::Choices {
        return html! {
            fieldset.field.choices aria-describedby=[described] {
                legend { (label_of(spec)) @if required { (required_mark()) } }
                @for (i, choice) in spec.choices.iter().enumerate() {
                    div.check {
                        input type="checkbox" id={ (id) "-" (i) } name=(name) value=(choice)
                            checked[values.contains(&choice.as_str())];
                        label for={ (id) "-" (i) } { (choice_words(choice)) }
                    }
                }
                @if let Some(error) = error { (error_message(&error_id, error)) }
            }
        };
    }
    let hint = hint(spec);
    let hint_id = format!("{id}-hint");
    let described = match (described, hint.is_some()) {
        (Some(e), true) => Some(format!("{e} {hint_id}")),
        (Some(e), false) => Some(e.to_owned()),
        (None, true) => Some(hint_id.clone()),
        (None, false) => None,
    };
    html! {
        div.field {
            label for=(id) { (label_of(spec)) @if required { (required_mark()) } }
            @match spec.kind {
                FieldKind::Text if multiline => {
                    textarea id=(id) name=(name) rows="3" maxlength="4000" required[required]
                        aria-describedby=[described.as_deref()] aria-invalid=[invalid] { (value) }
                }
                FieldKind::Text => {
                    input id=(id) name=(name) type="text" maxlength="4000" value=(value)
                        required[required] aria-describedby=[described.as_deref()] aria-invalid=[invalid];
                }
                FieldKind::Number => {
                    input id=(id) name=(name) type="number" step="any" inputmode="decimal" value=(value)
                        required[required] aria-describedby=[described.as_deref()] aria-invalid=[invalid];
                }
                FieldKind::Integer => {
                    input id=(id) name=(name) type="number" step="1" inputmode="numeric" value=(value)
                        required[required] aria-describedby=[described.as_deref()] aria-invalid=[invalid];
                }
                FieldKind::Datetime => {
                    input id=(id) name=(name) type="datetime-local" value=(local_value(value))
                        required[required] aria-describedby=[described.as_deref()] aria-invalid=[invalid];
                }
                FieldKind::Case => {
                    input id=(id) name=(name) type="text" value=(value) autocomplete="off"
                        spellcheck="false" required[required]
                        aria-describedby=[described.as_deref()] aria-invalid=[invalid];
                }
                FieldKind::Bool => {
                    select id=(id) name=(name) required[required]
                        aria-describedby=[described.as_deref()] aria-invalid=[invalid] {
                        option value="" { "—" }
                        option value="true" selected[value == "true"] { "是 yes" }
                        option value="false" selected[value == "false"] { "否 no" }
                    }
                }
                FieldKind::Rating => {
                    select id=(id) name=(name) required[required]
                        aria-describedby=[described.as_deref()] aria-invalid=[invalid] {
                        option value="" { "— 请选择 choose —" }
                        @for (i, (zh, en)) in RATING_WORDS.iter().enumerate() {
                            @let n = (i + 1).to_string();
                            option value=(n) selected[value == n] { (n) " · " (zh) " " (en) }
                        }
                    }
                }
                FieldKind::Unit => {
                    select id=(id) name=(name) required[required]
                        aria-describedby=[described.as_deref()] aria-invalid=[invalid] {
                        option value="" { "— 请选择 choose —" }
                        @for unit in units.units(spec) {
                            option value=(unit.id.as_str()) selected[value == unit.id.as_str()] { (unit_label(unit)) }
                        }
                    }
                }
                // `choice`, and any kind a later definition may add: a choice of the listed
                // values, or text when there are none.
                _ => {
                    @if spec.choices.is_empty() {
                        input id=(id) name=(name) type="text" value=(value) required[required]
                            aria-describedby=[described.as_deref()] aria-invalid=[invalid];
                    } @else {
                        select id=(id) name=(name) required[required]
                            aria-describedby=[described.as_deref()] aria-invalid=[invalid] {
                            option value="" { "— 请选择 choose —" }
                            @for choice in &spec.choices {
                                option value=(choice) selected[value == choice.as_str()] { (choice_words(choice)) }
                            }
                        }
                    }
                }
            }
            @if let Some(hint) = hint { p.hint id=(hint_id) { (hint) } }
            @if let Some(error) = error { (error_message(&error_id, error)) }
        }
    }
}

/// What a field's input needs said beside it.
fn hint(spec: &FieldSpec) -> Option<Markup> {
    match spec.kind {
        FieldKind::Datetime => Some(bi(
            "按本系统日历所在时区填写。",
            "In the time zone of the service's calendar.",
        )),
        FieldKind::Case => Some(bi("工单编号，如 0192f3a0-…", "A case id, e.g. 0192f3a0-…")),
        FieldKind::Unit if spec.reach == Reach::OutsideChain => Some(bi(
            "可选本单位、下级单位，或本社区的部门、社会组织、志愿队。",
            "Your unit, a unit below it, or a department, social organization or volunteer team of your community.",
        )),
        _ => None,
    }
}

/// A stored time (`2026-04-14T09:30:00+08:00`) as a `datetime-local` value
/// (`2026-04-14T09:30`); anything else as it is.
fn local_value(value: &str) -> String {
    if value.len() >= 16 && value.as_bytes().get(10) == Some(&b'T') {
        value[..16].to_owned()
    } else {
        value.to_owned()
    }
}

/// A `datetime-local` value (`2026-04-14T09:30`, seconds optional) as RFC 3339 in `zone`
/// (`2026-04-14T09:30:00+08:00`); `None` for anything else (a value with an offset already,
/// or not a time at all: the domain's parser then says what is wrong).
fn from_local(value: &str, zone: &Zone) -> Option<String> {
    let (date, time) = value.trim().split_once('T')?;
    let date = LocalDate::parse(date).ok()?;
    let mut parts = time.split(':');
    let hour: u16 = parts.next()?.parse().ok()?;
    let minute: u16 = parts.next()?.parse().ok()?;
    let second = parts.next();
    if parts.next().is_some() || hour > 23 || minute > 59 {
        return None;
    }
    let second: i64 = match second {
        None => 0,
        Some(text) if text.len() == 2 => text.parse().ok().filter(|s| *s <= 59)?,
        Some(_) => return None,
    };
    let at = zone.from_local(date, hour * 60 + minute).ok()?;
    let at = civicflow_core::Timestamp::from_unix_micros(at.as_unix_micros() + second * 1_000_000);
    Some(zone.format(at))
}

/// The fields of a posted form as the JSON values the API reads (`fields::from_json`): each
/// pair named `names.name` + a field's name, its text as a JSON string, an empty value as
/// `null` (left out), the checked boxes of a `choices` field as a list, a `datetime-local`
/// value read in the calendar's `zone`. A name of no field of `specs` is passed on as it is,
/// so that the API's own parser refuses it by name. Pairs whose name lacks the prefix are
/// not fields (the caller reads them).
pub(crate) fn values(
    specs: &[FieldSpec],
    pairs: &[(String, String)],
    names: Names<'_>,
    zone: &Zone,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in pairs {
        let Some(field) = name.strip_prefix(names.name) else {
            continue;
        };
        let spec = specs.iter().find(|s| s.name == field);
        let kind = spec.map(|s| s.kind);
        if kind == Some(FieldKind::Choices) {
            let entry = out
                .entry(field.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = entry {
                if !value.is_empty() {
                    items.push(Value::String(value.clone()));
                }
            }
            continue;
        }
        let value = if value.trim().is_empty() {
            Value::Null
        } else if kind == Some(FieldKind::Datetime) {
            Value::String(from_local(value, zone).unwrap_or_else(|| value.clone()))
        } else {
            Value::String(value.clone())
        };
        match out.get_mut(field) {
            // A single-valued field given twice: a list, which the parser refuses by name.
            Some(Value::Array(items)) => items.push(value),
            Some(first) => {
                let first = first.take();
                out.insert(field.to_owned(), Value::Array(vec![first, value]));
            }
            None => {
                out.insert(field.to_owned(), value);
            }
        }
    }
    // No box checked: nothing given.
    out.retain(|_, v| !matches!(v, Value::Array(items) if items.is_empty()));
    out
}

/// The values a form showed for `field` (all of them, for checkboxes), from posted `pairs`.
pub(crate) fn posted<'p>(pairs: &'p [(String, String)], name: &str) -> Vec<&'p str> {
    pairs
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn form_values_read_as_the_api_reads_json() {
        let specs = vec![
            FieldSpec::new("note", FieldKind::Text, false),
            FieldSpec::new("when", FieldKind::Datetime, false),
            FieldSpec::new("tags", FieldKind::Choices, false),
            FieldSpec::new("rating", FieldKind::Rating, true),
        ];
        let names = Names {
            id: "f",
            name: "fields.",
        };
        let values = values(
            &specs,
            &pairs(&[
                ("title", "not a field"),
                ("fields.note", ""),
                ("fields.when", "2026-04-14T09:30"),
                ("fields.tags", "a"),
                ("fields.tags", "b"),
                ("fields.rating", "5"),
                ("fields.colour", "red"),
            ]),
            names,
            &Zone::shanghai(),
        );
        assert_eq!(
            Value::Object(values),
            serde_json::json!({
                "note": null,
                "when": "2026-04-14T09:30:00+08:00",
                "tags": ["a", "b"],
                "rating": "5",
                "colour": "red",
            })
        );
    }

    #[test]
    fn a_single_field_given_twice_is_a_list_and_no_box_is_nothing() {
        let specs = vec![
            FieldSpec::new("note", FieldKind::Text, false),
            FieldSpec::new("tags", FieldKind::Choices, false),
        ];
        let names = Names { id: "f", name: "" };
        let values = values(
            &specs,
            &pairs(&[("note", "a"), ("note", "b"), ("tags", "")]),
            names,
            &Zone::shanghai(),
        );
        assert_eq!(
            Value::Object(values),
            serde_json::json!({"note": ["a", "b"]})
        );
    }

    #[test]
    fn local_times_take_the_zone_and_bad_ones_stay_as_given() {
        let zone = Zone::shanghai();
        assert_eq!(
            from_local("2026-04-14T09:30", &zone).as_deref(),
            Some("2026-04-14T09:30:00+08:00")
        );
        assert_eq!(
            from_local("2026-04-14T09:30:15", &zone).as_deref(),
            Some("2026-04-14T09:30:15+08:00")
        );
        assert_eq!(from_local("2026-04-14T09:30:00+08:00", &zone), None);
        assert_eq!(from_local("2026-04-14T25:30", &zone), None);
        assert_eq!(from_local("tomorrow", &zone), None);
        assert_eq!(local_value("2026-04-14T09:30:00+08:00"), "2026-04-14T09:30");
    }
}
