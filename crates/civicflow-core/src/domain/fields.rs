//! The fields an action (or the opening of a case) asks for, and the values given.
//!
//! A definition declares each field's name, kind and whether it is required; a command
//! carries values; [`check_fields`] refuses a missing, unknown or ill-typed one by name.
//! Values from outside (the JSON API's `fields`, Open311's `attribute[CODE]`) arrive as
//! [`FieldInput`]s and are read by [`parse_fields`], the one parser of field values: every
//! transport maps its own syntax to `FieldInput` and nothing else reads a field's value, so
//! a value means the same whichever way it came.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::org::{OrgChart, Reach};
use super::rejection::Rejection;
use crate::calendar::{parse_rfc3339, CalendarError, Zone};
use crate::clock::Timestamp;
use crate::ids::{CaseId, UnitId};

/// The longest text a field takes, in characters (Open311 descriptions are 4000 too).
pub const TEXT_CHARS_MAX: usize = 4000;

/// What kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Free text, at most 4000 characters.
    Text,
    /// A decimal number.
    Number,
    /// A whole number.
    Integer,
    /// Yes or no.
    Bool,
    /// A point in time.
    Datetime,
    /// An org unit (by id).
    Unit,
    /// One of the listed choices.
    Choice,
    /// Several of the listed choices.
    Choices,
    /// A satisfaction rating, 1 (very dissatisfied) to 5 (very satisfied).
    Rating,
    /// Another case (by id).
    Case,
}

impl FieldKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Integer => "integer",
            FieldKind::Bool => "bool",
            FieldKind::Datetime => "datetime",
            FieldKind::Unit => "unit",
            FieldKind::Choice => "choice",
            FieldKind::Choices => "choices",
            FieldKind::Rating => "rating",
            FieldKind::Case => "case",
        }
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Its name (a slug: lowercase letters, digits and `_`).
    pub name: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// Whether the action needs it.
    #[serde(default)]
    pub required: bool,
    /// A label for people (may be Chinese).
    #[serde(default)]
    pub label: String,
    /// The allowed values of a `choice` or `choices` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// For a `unit` field that an effect hands the case to: which units it may name
    /// (`docs/workflows.md`, "Reach").
    #[serde(default, skip_serializing_if = "Reach::is_default")]
    pub reach: Reach,
}

impl FieldSpec {
    /// A field.
    pub fn new(name: &str, kind: FieldKind, required: bool) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            required,
            label: String::new(),
            choices: Vec::new(),
            reach: Reach::Subtree,
        }
    }

    /// The field, reaching also outside the chain ([`Reach::OutsideChain`]).
    #[must_use]
    pub fn reaching_outside_chain(mut self) -> Self {
        self.reach = Reach::OutsideChain;
        self
    }
}

/// A field's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FieldValue {
    /// Text.
    Text(String),
    /// A decimal number.
    Number(f64),
    /// A whole number.
    Integer(i64),
    /// Yes or no.
    Bool(bool),
    /// A point in time.
    Datetime(Timestamp),
    /// An org unit.
    Unit(UnitId),
    /// One choice.
    Choice(String),
    /// Several choices.
    Choices(Vec<String>),
    /// A rating 1 to 5.
    Rating(u8),
    /// A case.
    Case(CaseId),
}

/// The values of a command's fields, by name.
pub type Fields = BTreeMap<String, FieldValue>;

impl FieldValue {
    /// The kind of this value.
    pub fn kind(&self) -> FieldKind {
        match self {
            FieldValue::Text(_) => FieldKind::Text,
            FieldValue::Number(_) => FieldKind::Number,
            FieldValue::Integer(_) => FieldKind::Integer,
            FieldValue::Bool(_) => FieldKind::Bool,
            FieldValue::Datetime(_) => FieldKind::Datetime,
            FieldValue::Unit(_) => FieldKind::Unit,
            FieldValue::Choice(_) => FieldKind::Choice,
            FieldValue::Choices(_) => FieldKind::Choices,
            FieldValue::Rating(_) => FieldKind::Rating,
            FieldValue::Case(_) => FieldKind::Case,
        }
    }

    /// The value as text for people, a time written in `zone` (the calendar's; RFC 3339 with
    /// the offset).
    pub fn display(&self, zone: &Zone) -> String {
        match self {
            FieldValue::Text(t) | FieldValue::Choice(t) => t.clone(),
            FieldValue::Number(n) => n.to_string(),
            FieldValue::Integer(n) => n.to_string(),
            FieldValue::Bool(b) => b.to_string(),
            FieldValue::Datetime(t) => zone.format(*t),
            FieldValue::Unit(u) => u.to_string(),
            FieldValue::Choices(c) => c.join(", "),
            FieldValue::Rating(r) => r.to_string(),
            FieldValue::Case(c) => c.to_string(),
        }
    }
}

/// A field's value as a client sent it, before it is read as the field's kind.
///
/// Transport-neutral, so that one parser ([`parse_fields`]) serves every way in: the JSON
/// API maps a JSON value to it (`null`, `true`, `12`, `12.5`, `"text"`, `[…]`, `{…}`); a form
/// (Open311) has only strings and maps an empty value to [`FieldInput::Null`], a value to
/// [`FieldInput::Text`] and a repeated `name[]` to a [`FieldInput::List`] of texts.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldInput {
    /// No value (JSON `null`, an empty form value): the same as leaving the field out.
    Null,
    /// Yes or no, typed (JSON `true`, `false`).
    Bool(bool),
    /// A whole number, typed (a JSON number written without a fraction or exponent).
    Integer(i64),
    /// Any other number, typed (a JSON number with a fraction or exponent, or beyond `i64`).
    Decimal(f64),
    /// Text: a JSON string, or any form value.
    Text(String),
    /// Several values: a JSON array, or a form's repeated `name[]`.
    List(Vec<FieldInput>),
    /// A structured value no kind takes (a JSON object): always refused, naming the field.
    Object,
}

/// The largest whole number an `f64` holds exactly (2^53): past it, `12.0` written as a
/// decimal may not be the whole number the client meant, so it is refused, not rounded.
const EXACT_WHOLE_MAX: f64 = 9_007_199_254_740_992.0;

/// How much of a refused value a reason quotes, in characters: enough to recognise it, while
/// a reason stays short whatever was sent.
const QUOTE_CHARS_MAX: usize = 40;

/// Reads `input` (names and values, in any order) as the values of the fields `specs`
/// declares. The one parser of field values: the JSON API and Open311 both call it, with
/// their values mapped to [`FieldInput`]s, so the rules are the same everywhere:
///
/// - A name `specs` does not declare is refused, whatever its value, and the reason lists the
///   fields there are. A name given twice is refused.
/// - [`FieldInput::Null`] is the same as absent: the field is left out.
/// - By kind, from typed input or from text (a form sends only text; JSON may send either,
///   and a JSON string is read exactly as the same form value would be). Text is trimmed
///   before it is read.
///
/// | kind | typed input | text |
/// |---|---|---|
/// | `text` | refused | the text, trimmed; at most [`TEXT_CHARS_MAX`] characters |
/// | `number` | a finite number | a finite decimal number: `12.5`, `-3`, `1e3`; not `NaN`, `inf`, `1e999`, `0x10`, `12,5` |
/// | `integer` | a whole number; `12.0` too (up to ±2^53, where a decimal is still exact) | the same, written: `12`, `12.0` |
/// | `rating` | a whole number from 1 to 5 | the same, written: `4` |
/// | `bool` | `true`, `false` | exactly `true` or `false`: `yes`, `no`, `1`, `0`, `True` are refused |
/// | `datetime` | refused (a number of microseconds since the epoch is not a time here) | RFC 3339 with an offset (`2026-04-01T09:30:00+08:00`, `2026-04-01T01:30:00Z`), by [`parse_rfc3339`] |
/// | `unit` | refused | a unit id |
/// | `case` | refused | a case id (a UUID) |
/// | `choice` | refused; a list too (the field takes one value) | the choice |
/// | `choices` | a list of texts | one text is a list of one (a form's `name=value`; a form repeats `name[]` for several, commas are not separators); each choice trimmed, repeats dropped, the first order kept |
///
/// The parser only turns input into typed values. Whether a required field is there, whether
/// a choice is one of the field's, whether a unit is in the org chart, and where a place may
/// be, are the domain's to say, once, when the command is decided ([`check_fields`],
/// [`check_units`], `Place::check`).
///
/// # Errors
/// [`Rejection::FieldInvalid`] naming the field; its reason says what the value must be and
/// is worded to follow the field's name (`must be a decimal number, not "twelve"`).
pub fn parse_fields<I>(specs: &[FieldSpec], input: I) -> Result<Fields, Rejection>
where
    I: IntoIterator<Item = (String, FieldInput)>,
{
    let mut fields = Fields::new();
    let mut seen = BTreeSet::new();
    for (name, value) in input {
        let Some(spec) = specs.iter().find(|s| s.name == name) else {
            return Err(Rejection::FieldInvalid {
                reason: not_a_field(specs),
                field: name,
            });
        };
        if !seen.insert(spec.name.as_str()) {
            return Err(invalid(spec, "is given more than once".to_owned()));
        }
        if let Some(value) = parse_value(spec, &value)? {
            fields.insert(name, value);
        }
    }
    Ok(fields)
}

/// Reads one value as a value of `spec`'s field, by the rules of [`parse_fields`]; `None` for
/// [`FieldInput::Null`] (absent).
///
/// # Errors
/// [`Rejection::FieldInvalid`] naming the field and what the value must be.
pub fn parse_value(spec: &FieldSpec, input: &FieldInput) -> Result<Option<FieldValue>, Rejection> {
    let wrong = || {
        invalid(
            spec,
            format!("must be {}, not {}", describe(spec.kind), shown(input)),
        )
    };
    let value = match (spec.kind, input) {
        (_, FieldInput::Null) => return Ok(None),
        (FieldKind::Choices, FieldInput::List(items)) => FieldValue::Choices(choices(spec, items)?),
        (FieldKind::Choices, FieldInput::Text(text)) => {
            FieldValue::Choices(vec![text.trim().to_owned()])
        }
        (_, FieldInput::List(_)) => {
            return Err(invalid(spec, "takes one value, not a list".to_owned()))
        }
        (FieldKind::Text, FieldInput::Text(text)) => {
            let text = text.trim();
            let chars = text.chars().count();
            if chars > TEXT_CHARS_MAX {
                return Err(invalid(
                    spec,
                    format!("has {chars} characters; at most {TEXT_CHARS_MAX}"),
                ));
            }
            FieldValue::Text(text.to_owned())
        }
        (FieldKind::Number, _) => FieldValue::Number(number(input).ok_or_else(wrong)?),
        (FieldKind::Integer, _) => FieldValue::Integer(whole(input).ok_or_else(wrong)?),
        (FieldKind::Rating, _) => FieldValue::Rating(
            whole(input)
                .and_then(|n| u8::try_from(n).ok())
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(wrong)?,
        ),
        (FieldKind::Bool, FieldInput::Bool(b)) => FieldValue::Bool(*b),
        (FieldKind::Bool, FieldInput::Text(text)) => match text.trim() {
            "true" => FieldValue::Bool(true),
            "false" => FieldValue::Bool(false),
            _ => return Err(wrong()),
        },
        (FieldKind::Datetime, FieldInput::Text(text)) => {
            FieldValue::Datetime(parse_rfc3339(text.trim()).map_err(|e| {
                let why = match &e {
                    CalendarError::InvalidDate { reason, .. } => {
                        reason.trim_start_matches("RFC 3339 date-time: ").to_owned()
                    }
                    other => other.to_string(),
                };
                invalid(
                    spec,
                    format!(
                        "must be {}, not {} ({why})",
                        describe(spec.kind),
                        quote(text)
                    ),
                )
            })?)
        }
        (FieldKind::Unit, FieldInput::Text(text)) => {
            FieldValue::Unit(UnitId::new(text.trim()).map_err(|e| {
                invalid(
                    spec,
                    format!(
                        "must be {} ({}), not {}",
                        describe(spec.kind),
                        e.rule,
                        quote(text)
                    ),
                )
            })?)
        }
        (FieldKind::Case, FieldInput::Text(text)) => {
            FieldValue::Case(CaseId::parse(text.trim()).map_err(|_| wrong())?)
        }
        (FieldKind::Choice, FieldInput::Text(text)) => FieldValue::Choice(text.trim().to_owned()),
        (
            FieldKind::Text
            | FieldKind::Bool
            | FieldKind::Datetime
            | FieldKind::Unit
            | FieldKind::Case
            | FieldKind::Choice
            | FieldKind::Choices,
            _,
        ) => return Err(wrong()),
    };
    Ok(Some(value))
}

/// The choices of a list: texts, trimmed, repeats dropped (the first order kept).
fn choices(spec: &FieldSpec, items: &[FieldInput]) -> Result<Vec<String>, Rejection> {
    let mut chosen: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let FieldInput::Text(text) = item else {
            return Err(invalid(
                spec,
                format!(
                    "must be {}, each as text; {} is not",
                    describe(spec.kind),
                    shown(item)
                ),
            ));
        };
        let choice = text.trim();
        if !chosen.iter().any(|c| c == choice) {
            chosen.push(choice.to_owned());
        }
    }
    Ok(chosen)
}

/// A finite decimal number written as text (trimmed): `12.5`, `-3`, `1e3`; not `NaN`, `inf`,
/// `1e999`, `0x10`, `12,5`. The rule a number field reads text by, and the one for any other
/// number that arrives as text (Open311's `lat` and `long`), so that the two agree.
pub fn parse_decimal(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A number: typed, or written as a decimal; finite either way.
fn number(input: &FieldInput) -> Option<f64> {
    match input {
        // Any i64 is a finite f64 (rounded past 2^53, as any decimal number of a JSON body is).
        FieldInput::Integer(n) => Some(*n as f64),
        FieldInput::Decimal(n) => Some(*n).filter(|n| n.is_finite()),
        FieldInput::Text(text) => parse_decimal(text),
        _ => None,
    }
}

/// A whole number: typed, a decimal with no fraction (`12.0`) within exact range, or either
/// written as text.
fn whole(input: &FieldInput) -> Option<i64> {
    let exact = |n: f64| {
        // In range and without a fraction, so the conversion is exact.
        (n.is_finite() && n.fract() == 0.0 && n.abs() <= EXACT_WHOLE_MAX).then_some(n as i64)
    };
    match input {
        FieldInput::Integer(n) => Some(*n),
        FieldInput::Decimal(n) => exact(*n),
        FieldInput::Text(text) => {
            let text = text.trim();
            text.parse::<i64>()
                .ok()
                .or_else(|| text.parse::<f64>().ok().and_then(exact))
        }
        _ => None,
    }
}

/// What a value of `kind` must be, worded to follow "must be".
fn describe(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "text",
        FieldKind::Number => "a decimal number",
        FieldKind::Integer => "a whole number",
        FieldKind::Bool => "true or false",
        FieldKind::Datetime => {
            "an RFC 3339 date and time with an offset (2026-04-01T09:30:00+08:00)"
        }
        FieldKind::Unit => "the id of an org unit",
        FieldKind::Choice => "one of its choices, as text",
        FieldKind::Choices => "a list of its choices",
        FieldKind::Rating => "a rating from 1 to 5",
        FieldKind::Case => "the id of a case (a UUID)",
    }
}

/// The value given, for a reason: quoted text (cut short), a number as written, or what
/// kind of thing it was.
fn shown(input: &FieldInput) -> String {
    match input {
        FieldInput::Null => "null".to_owned(),
        FieldInput::Bool(b) => b.to_string(),
        FieldInput::Integer(n) => n.to_string(),
        FieldInput::Decimal(n) => n.to_string(),
        FieldInput::Text(text) => quote(text),
        FieldInput::List(_) => "a list".to_owned(),
        FieldInput::Object => "an object".to_owned(),
    }
}

/// `text` quoted and escaped (control characters shown, not sent raw), cut at
/// [`QUOTE_CHARS_MAX`] characters with `…`.
fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTE_CHARS_MAX {
        format!("{text:?}")
    } else {
        let cut: String = text.chars().take(QUOTE_CHARS_MAX).collect();
        format!("{cut:?}…")
    }
}

fn invalid(spec: &FieldSpec, reason: String) -> Rejection {
    Rejection::FieldInvalid {
        field: spec.name.clone(),
        reason,
    }
}

/// Why a name is not a field, listing the fields there are.
fn not_a_field(specs: &[FieldSpec]) -> String {
    if specs.is_empty() {
        "is not a field of this step; it has no fields".to_owned()
    } else {
        format!(
            "is not a field of this step; its fields are: {}",
            specs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Refuses a unit field naming a unit the org chart does not have. The parser can only say
/// that a unit id is well formed; whether the unit exists is the chart's to say, so this runs
/// when the command is decided (a case's opening: an action's effects check the units they
/// hand the case to).
///
/// # Errors
/// [`Rejection::FieldInvalid`] naming the field.
pub fn check_units(fields: &Fields, org: &OrgChart) -> Result<(), Rejection> {
    for (name, value) in fields {
        if let FieldValue::Unit(unit) = value {
            if org.unit(unit).is_none() {
                return Err(Rejection::FieldInvalid {
                    field: name.clone(),
                    reason: format!("there is no org unit '{unit}'"),
                });
            }
        }
    }
    Ok(())
}

/// Checks `given` against `specs`: every required field present, no unknown field, every
/// value of the declared kind and within its limits.
///
/// # Errors
/// [`Rejection::FieldMissing`] or [`Rejection::FieldInvalid`] naming the field.
pub fn check_fields(action: &str, specs: &[FieldSpec], given: &Fields) -> Result<(), Rejection> {
    for (name, value) in given {
        let spec =
            specs
                .iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| Rejection::FieldInvalid {
                    field: name.clone(),
                    reason: format!(
                        "{action} has no such field; its fields: {}",
                        if specs.is_empty() {
                            "none".to_owned()
                        } else {
                            specs
                                .iter()
                                .map(|s| s.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                })?;
        check_value(spec, value)?;
    }
    if let Some(missing) = specs
        .iter()
        .find(|s| s.required && !given.contains_key(&s.name))
    {
        return Err(Rejection::FieldMissing {
            action: action.to_owned(),
            field: missing.name.clone(),
        });
    }
    Ok(())
}

fn check_value(spec: &FieldSpec, value: &FieldValue) -> Result<(), Rejection> {
    let invalid = |reason: String| Rejection::FieldInvalid {
        field: spec.name.clone(),
        reason,
    };
    if value.kind() != spec.kind {
        return Err(invalid(format!(
            "must be a {}, got a {}",
            spec.kind,
            value.kind()
        )));
    }
    match value {
        FieldValue::Text(text) => {
            // A workflow's text field is a note (a reply, a reason, what was done): it may
            // span lines, by the one rule for texts.
            super::text::check(&spec.name, text, super::text::Lines::Many)?;
            let chars = text.chars().count();
            if chars > TEXT_CHARS_MAX {
                return Err(invalid(format!(
                    "{chars} characters; at most {TEXT_CHARS_MAX}"
                )));
            }
            if spec.required && super::text::is_blank(text) {
                return Err(invalid("must not be empty".to_owned()));
            }
        }
        FieldValue::Number(n) if !n.is_finite() => {
            return Err(invalid("must be a finite number".to_owned()))
        }
        FieldValue::Rating(r) if !(1..=5).contains(r) => {
            return Err(invalid(format!("{r} is not a rating from 1 to 5")))
        }
        FieldValue::Choice(choice) if !spec.choices.contains(choice) => {
            return Err(invalid(format!(
                "{} is not one of: {}",
                quote(choice),
                spec.choices.join(", ")
            )));
        }
        FieldValue::Choices(choices) => {
            if let Some(bad) = choices.iter().find(|c| !spec.choices.contains(c)) {
                return Err(invalid(format!(
                    "{} is not one of: {}",
                    quote(bad),
                    spec.choices.join(", ")
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<FieldSpec> {
        let mut kind = FieldSpec::new("kind", FieldKind::Choice, true);
        kind.choices = vec!["noise".into(), "litter".into()];
        vec![
            kind,
            FieldSpec::new("rating", FieldKind::Rating, false),
            FieldSpec::new("note", FieldKind::Text, false),
        ]
    }

    #[test]
    fn fields_are_checked_by_name() {
        let mut given = Fields::new();
        assert_eq!(
            check_fields("open", &specs(), &given),
            Err(Rejection::FieldMissing {
                action: "open".into(),
                field: "kind".into()
            })
        );
        given.insert("kind".into(), FieldValue::Choice("fire".into()));
        assert!(
            matches!(check_fields("open", &specs(), &given), Err(Rejection::FieldInvalid { field, .. }) if field == "kind")
        );
        given.insert("kind".into(), FieldValue::Choice("noise".into()));
        assert_eq!(check_fields("open", &specs(), &given), Ok(()));
        given.insert("colour".into(), FieldValue::Text("red".into()));
        let err = check_fields("open", &specs(), &given).expect_err("colour is not a field");
        assert!(err.to_string().contains("colour"), "{err}");
        given.remove("colour");
        given.insert("rating".into(), FieldValue::Text("5".into()));
        let err = check_fields("open", &specs(), &given).expect_err("a rating is not text");
        assert!(err.to_string().contains("must be a rating"), "{err}");
    }

    /// A field of each kind, for the parser.
    fn every_kind() -> Vec<FieldSpec> {
        let mut choice = FieldSpec::new("choice", FieldKind::Choice, false);
        choice.choices = vec!["noise".into(), "litter".into()];
        let mut tags = FieldSpec::new("tags", FieldKind::Choices, false);
        tags.choices = vec!["x".into(), "y".into(), "z".into()];
        vec![
            FieldSpec::new("note", FieldKind::Text, false),
            FieldSpec::new("amount", FieldKind::Number, false),
            FieldSpec::new("count", FieldKind::Integer, false),
            FieldSpec::new("ok", FieldKind::Bool, false),
            FieldSpec::new("when", FieldKind::Datetime, false),
            FieldSpec::new("unit", FieldKind::Unit, false),
            choice,
            tags,
            FieldSpec::new("rating", FieldKind::Rating, false),
            FieldSpec::new("other", FieldKind::Case, false),
        ]
    }

    fn text(t: &str) -> FieldInput {
        FieldInput::Text(t.to_owned())
    }

    /// One field read from `input`.
    fn parse(name: &str, input: FieldInput) -> Result<Option<FieldValue>, Rejection> {
        parse_fields(&every_kind(), [(name.to_owned(), input)]).map(|mut f| f.remove(name))
    }

    fn ok(name: &str, input: FieldInput) -> FieldValue {
        match parse(name, input.clone()) {
            Ok(Some(value)) => value,
            other => panic!("{name} = {input:?}: {other:?}"),
        }
    }

    fn refused(name: &str, input: FieldInput, reason: &str) {
        assert_eq!(
            parse(name, input.clone()),
            Err(Rejection::FieldInvalid {
                field: name.into(),
                reason: reason.into()
            }),
            "{name} = {input:?}"
        );
    }

    #[test]
    fn unknown_names_are_refused_listing_the_fields_and_null_is_absent() {
        let known = "is not a field of this step; its fields are: note, amount, count, ok, \
                     when, unit, choice, tags, rating, other";
        refused("colour", text("red"), known);
        // Refused whatever the value: a client sending a field that does not exist is told.
        refused("colour", FieldInput::Null, known);
        assert_eq!(
            parse_fields(&[], [("a".to_owned(), FieldInput::Null)]),
            Err(Rejection::FieldInvalid {
                field: "a".into(),
                reason: "is not a field of this step; it has no fields".into()
            })
        );
        for name in ["note", "amount", "ok", "when", "choice", "tags", "rating"] {
            assert_eq!(parse(name, FieldInput::Null), Ok(None), "{name}");
        }
        assert_eq!(
            parse_fields(
                &every_kind(),
                [
                    ("note".to_owned(), text("a")),
                    ("note".to_owned(), FieldInput::Null)
                ]
            ),
            Err(Rejection::FieldInvalid {
                field: "note".into(),
                reason: "is given more than once".into()
            })
        );
        let fields = parse_fields(
            &every_kind(),
            [
                ("count".to_owned(), FieldInput::Integer(3)),
                ("note".to_owned(), FieldInput::Null),
                ("ok".to_owned(), text("true")),
            ],
        )
        .expect("valid");
        assert_eq!(
            fields,
            Fields::from([
                ("count".to_owned(), FieldValue::Integer(3)),
                ("ok".to_owned(), FieldValue::Bool(true)),
            ])
        );
    }

    #[test]
    fn text_is_trimmed_and_capped_at_the_domains_limit() {
        assert_eq!(
            ok("note", text("  路灯不亮\n")),
            FieldValue::Text("路灯不亮".into())
        );
        assert_eq!(ok("note", text("")), FieldValue::Text(String::new()));
        let longest = "路".repeat(TEXT_CHARS_MAX);
        assert_eq!(
            ok("note", text(&longest)),
            FieldValue::Text(longest.clone())
        );
        refused(
            "note",
            text(&format!("{longest}路")),
            "has 4001 characters; at most 4000",
        );
        refused("note", FieldInput::Integer(7), "must be text, not 7");
        refused("note", FieldInput::Object, "must be text, not an object");
        refused(
            "note",
            FieldInput::List(vec![]),
            "takes one value, not a list",
        );
    }

    #[test]
    fn numbers_from_typed_input_and_from_text() {
        assert_eq!(
            ok("amount", FieldInput::Decimal(12.5)),
            FieldValue::Number(12.5)
        );
        assert_eq!(
            ok("amount", FieldInput::Integer(-3)),
            FieldValue::Number(-3.0)
        );
        assert_eq!(ok("amount", text(" 12.5 ")), FieldValue::Number(12.5));
        assert_eq!(ok("amount", text("1e3")), FieldValue::Number(1000.0));
        for bad in [
            "twelve",
            "NaN",
            "inf",
            "-infinity",
            "1e999",
            "0x10",
            "12,5",
            "１２",
            "",
        ] {
            refused(
                "amount",
                text(bad),
                &format!("must be a decimal number, not {bad:?}"),
            );
        }
        refused(
            "amount",
            FieldInput::Decimal(f64::NAN),
            "must be a decimal number, not NaN",
        );
        refused(
            "amount",
            FieldInput::Bool(true),
            "must be a decimal number, not true",
        );
    }

    #[test]
    fn whole_numbers_and_ratings() {
        assert_eq!(
            ok("count", FieldInput::Integer(12)),
            FieldValue::Integer(12)
        );
        assert_eq!(
            ok("count", FieldInput::Decimal(12.0)),
            FieldValue::Integer(12)
        );
        assert_eq!(ok("count", text(" 12 ")), FieldValue::Integer(12));
        assert_eq!(ok("count", text("12.0")), FieldValue::Integer(12));
        assert_eq!(
            ok("count", text("-9223372036854775808")),
            FieldValue::Integer(i64::MIN)
        );
        refused("count", text("1.5"), "must be a whole number, not \"1.5\"");
        refused(
            "count",
            FieldInput::Decimal(1.5),
            "must be a whole number, not 1.5",
        );
        // Past 2^53 a decimal is not exact: refused rather than rounded.
        refused(
            "count",
            FieldInput::Decimal(1e17),
            "must be a whole number, not 100000000000000000",
        );
        refused(
            "count",
            text("9999999999999999999999"),
            "must be a whole number, not \"9999999999999999999999\"",
        );
        for (given, rating) in [
            (FieldInput::Integer(4), 4),
            (text("5"), 5),
            (text(" 1.0 "), 1),
            (FieldInput::Decimal(3.0), 3),
        ] {
            assert_eq!(ok("rating", given), FieldValue::Rating(rating));
        }
        for bad in [
            FieldInput::Integer(0),
            FieldInput::Integer(6),
            FieldInput::Integer(300),
        ] {
            let shown = shown(&bad);
            refused(
                "rating",
                bad,
                &format!("must be a rating from 1 to 5, not {shown}"),
            );
        }
        refused(
            "rating",
            text("4.5"),
            "must be a rating from 1 to 5, not \"4.5\"",
        );
    }

    /// One rule for yes-or-no everywhere: a boolean, or exactly `true`/`false` as text.
    /// (`FieldValue::parse` took `yes` and `1`; Open311 did not.)
    #[test]
    fn a_bool_is_exactly_true_or_false() {
        assert_eq!(ok("ok", FieldInput::Bool(false)), FieldValue::Bool(false));
        assert_eq!(ok("ok", text("true")), FieldValue::Bool(true));
        assert_eq!(ok("ok", text(" false ")), FieldValue::Bool(false));
        for bad in ["yes", "no", "1", "0", "True", "FALSE", "on"] {
            refused(
                "ok",
                text(bad),
                &format!("must be true or false, not {bad:?}"),
            );
        }
        refused("ok", FieldInput::Integer(1), "must be true or false, not 1");
    }

    /// One rule for times everywhere: RFC 3339 with an offset. (`FieldValue::parse` took Unix
    /// microseconds; the JSON API and Open311 did not.)
    #[test]
    fn a_datetime_is_rfc_3339_with_an_offset() {
        let at = Timestamp::from_unix_micros(1_775_007_000_000_000);
        assert_eq!(
            ok("when", text("2026-04-01T09:30:00+08:00")),
            FieldValue::Datetime(at)
        );
        assert_eq!(
            ok("when", text(" 2026-04-01T01:30:00Z ")),
            FieldValue::Datetime(at)
        );
        let must = "must be an RFC 3339 date and time with an offset (2026-04-01T09:30:00+08:00)";
        refused(
            "when",
            FieldInput::Integer(1_775_007_000_000_000),
            &format!("{must}, not 1775007000000000"),
        );
        refused(
            "when",
            text("1775007000000000"),
            &format!("{must}, not \"1775007000000000\" (the date is not YYYY-MM-DD)"),
        );
        refused(
            "when",
            text("2026-04-01T09:30:00"),
            &format!("{must}, not \"2026-04-01T09:30:00\" (no offset (Z or ±HH:MM))"),
        );
        refused(
            "when",
            text("yesterday"),
            &format!("{must}, not \"yesterday\" (too short)"),
        );
    }

    #[test]
    fn units_and_cases_are_ids() {
        assert_eq!(
            ok("unit", text(" grid-1 ")),
            FieldValue::Unit(UnitId::new("grid-1").expect("an id"))
        );
        refused(
            "unit",
            text(&"s".repeat(200)),
            &format!(
                "must be the id of an org unit (must be 1 to 128 bytes without control characters), not {:?}…",
                "s".repeat(QUOTE_CHARS_MAX)
            ),
        );
        refused(
            "unit",
            FieldInput::Integer(1),
            "must be the id of an org unit, not 1",
        );
        let case = "0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b";
        assert_eq!(
            ok("other", text(case)),
            FieldValue::Case(CaseId::parse(case).expect("a uuid"))
        );
        refused(
            "other",
            text("not-a-uuid"),
            "must be the id of a case (a UUID), not \"not-a-uuid\"",
        );
    }

    /// The parser reads choices; whether they are the field's is `check_fields`'s to say.
    #[test]
    fn choices_from_a_list_or_one_text() {
        assert_eq!(
            ok("choice", text(" noise ")),
            FieldValue::Choice("noise".into())
        );
        assert_eq!(
            ok("choice", text("fire")),
            FieldValue::Choice("fire".into())
        );
        refused(
            "choice",
            FieldInput::List(vec![text("noise")]),
            "takes one value, not a list",
        );
        refused(
            "choice",
            FieldInput::Integer(7),
            "must be one of its choices, as text, not 7",
        );
        assert_eq!(
            ok(
                "tags",
                FieldInput::List(vec![text("z"), text(" x"), text("z")])
            ),
            FieldValue::Choices(vec!["z".into(), "x".into()])
        );
        // One text is a list of one; a comma is part of the choice, not a separator.
        assert_eq!(ok("tags", text("y")), FieldValue::Choices(vec!["y".into()]));
        assert_eq!(
            ok("tags", text("x,y")),
            FieldValue::Choices(vec!["x,y".into()])
        );
        assert_eq!(
            ok("tags", FieldInput::List(vec![])),
            FieldValue::Choices(vec![])
        );
        refused(
            "tags",
            FieldInput::List(vec![text("x"), FieldInput::Integer(1)]),
            "must be a list of its choices, each as text; 1 is not",
        );
        refused(
            "tags",
            FieldInput::Object,
            "must be a list of its choices, not an object",
        );
        // The domain then checks them against the field's choices.
        let fields = parse_fields(
            &every_kind(),
            [("tags".to_owned(), FieldInput::List(vec![text("w")]))],
        )
        .expect("read");
        assert_eq!(
            check_fields("open", &every_kind(), &fields),
            Err(Rejection::FieldInvalid {
                field: "tags".into(),
                reason: "\"w\" is not one of: x, y, z".into()
            })
        );
    }

    #[test]
    fn refused_values_are_quoted_short_and_escaped() {
        let long = format!("{}\u{1}", "x".repeat(100));
        refused(
            "amount",
            text(&long),
            &format!(
                "must be a decimal number, not {:?}…",
                "x".repeat(QUOTE_CHARS_MAX)
            ),
        );
        refused(
            "amount",
            text("\u{1b}[31m"),
            "must be a decimal number, not \"\\u{1b}[31m\"",
        );
    }

    /// An empty chart, so that this test does not depend on how charts are built; a unit the
    /// chart has is accepted in tests/suite/open311_post.rs, which files disputes naming real shops.
    #[test]
    fn unit_fields_must_name_a_unit_of_the_chart() {
        let org = OrgChart::default();
        let mut fields = Fields::new();
        fields.insert("note".into(), FieldValue::Text("x".into()));
        assert_eq!(check_units(&fields, &org), Ok(()));
        fields.insert(
            "shop".into(),
            FieldValue::Unit(UnitId::new("shop-zz-999").expect("an id")),
        );
        assert_eq!(
            check_units(&fields, &org),
            Err(Rejection::FieldInvalid {
                field: "shop".into(),
                reason: "there is no org unit 'shop-zz-999'".into()
            })
        );
    }
}
