//! The fields an action (or the opening of a case) asks for, and the values given.
//!
//! A definition declares each field's name, kind and whether it is required; a command
//! carries values; [`check_fields`] refuses a missing, unknown or ill-typed one by name.
//! Values arriving as text (HTTP forms, Open311 attributes) are parsed with
//! [`FieldValue::parse`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::rejection::Rejection;
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
        }
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

    /// Parses text (from a form or an Open311 attribute) as a value of `kind`.
    ///
    /// # Errors
    /// A reason in words when the text is not a value of that kind.
    pub fn parse(kind: FieldKind, text: &str) -> Result<FieldValue, String> {
        let text = text.trim();
        match kind {
            FieldKind::Text => Ok(FieldValue::Text(text.to_owned())),
            FieldKind::Number => text
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(FieldValue::Number)
                .ok_or_else(|| format!("{text:?} is not a number")),
            FieldKind::Integer => text
                .parse()
                .map(FieldValue::Integer)
                .map_err(|_| format!("{text:?} is not a whole number")),
            FieldKind::Bool => match text {
                "true" | "yes" | "1" => Ok(FieldValue::Bool(true)),
                "false" | "no" | "0" => Ok(FieldValue::Bool(false)),
                _ => Err(format!("{text:?} is not true or false")),
            },
            FieldKind::Datetime => text
                .parse::<i64>()
                .map(|micros| FieldValue::Datetime(Timestamp::from_unix_micros(micros)))
                .map_err(|_| format!("{text:?} is not a time (microseconds since the Unix epoch)")),
            FieldKind::Unit => UnitId::new(text)
                .map(FieldValue::Unit)
                .map_err(|e| e.to_string()),
            FieldKind::Choice => Ok(FieldValue::Choice(text.to_owned())),
            FieldKind::Choices => Ok(FieldValue::Choices(
                text.split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect(),
            )),
            FieldKind::Rating => text
                .parse::<u8>()
                .ok()
                .filter(|r| (1..=5).contains(r))
                .map(FieldValue::Rating)
                .ok_or_else(|| format!("{text:?} is not a rating from 1 to 5")),
            FieldKind::Case => CaseId::parse(text)
                .map(FieldValue::Case)
                .map_err(|e| e.to_string()),
        }
    }

    /// The value as text for people.
    pub fn display(&self) -> String {
        match self {
            FieldValue::Text(t) | FieldValue::Choice(t) => t.clone(),
            FieldValue::Number(n) => n.to_string(),
            FieldValue::Integer(n) => n.to_string(),
            FieldValue::Bool(b) => b.to_string(),
            FieldValue::Datetime(t) => t.to_string(),
            FieldValue::Unit(u) => u.to_string(),
            FieldValue::Choices(c) => c.join(", "),
            FieldValue::Rating(r) => r.to_string(),
            FieldValue::Case(c) => c.to_string(),
        }
    }
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
            let chars = text.chars().count();
            if chars > TEXT_CHARS_MAX {
                return Err(invalid(format!(
                    "{chars} characters; at most {TEXT_CHARS_MAX}"
                )));
            }
            if spec.required && text.trim().is_empty() {
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
                "{choice:?} is not one of: {}",
                spec.choices.join(", ")
            )));
        }
        FieldValue::Choices(choices) => {
            if let Some(bad) = choices.iter().find(|c| !spec.choices.contains(c)) {
                return Err(invalid(format!(
                    "{bad:?} is not one of: {}",
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

    #[test]
    fn text_values_parse_by_kind() {
        assert_eq!(
            FieldValue::parse(FieldKind::Rating, "4"),
            Ok(FieldValue::Rating(4))
        );
        assert!(FieldValue::parse(FieldKind::Rating, "6").is_err());
        assert_eq!(
            FieldValue::parse(FieldKind::Integer, " 12 "),
            Ok(FieldValue::Integer(12))
        );
        assert!(FieldValue::parse(FieldKind::Number, "NaN").is_err());
        assert_eq!(
            FieldValue::parse(FieldKind::Choices, "a, b,"),
            Ok(FieldValue::Choices(vec!["a".into(), "b".into()]))
        );
        assert!(FieldValue::parse(FieldKind::Case, "not-a-uuid").is_err());
    }
}
