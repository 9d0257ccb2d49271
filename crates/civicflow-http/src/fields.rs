//! Workflow fields from JSON: each value checked against the kind its definition declares,
//! errors naming the field. Whether a field is required, and the choices allowed, are the
//! engine's to check.

use civicflow_core::calendar::parse_rfc3339;
use civicflow_core::domain::fields::{FieldKind, FieldSpec, FieldValue, Fields};
use civicflow_core::{CaseId, UnitId};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::json::cap;

/// The most characters of a text field.
pub const TEXT_MAX_CHARS: usize = 2000;

/// `values` as fields of `specs`; a name the specs do not declare is refused.
///
/// # Errors
/// 400 naming the field: unknown, or a value of the wrong kind.
pub fn from_json(specs: &[FieldSpec], values: &Map<String, Value>) -> Result<Fields, ApiError> {
    let mut fields = Fields::new();
    for (name, value) in values {
        let Some(spec) = specs.iter().find(|s| &s.name == name) else {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            return Err(ApiError::bad_request(format!(
                "{name} is not a field of this step; its fields are: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
            .field(name.clone()));
        };
        if value.is_null() {
            continue;
        }
        fields.insert(name.clone(), value_of(name, spec.kind, value)?);
    }
    Ok(fields)
}

fn value_of(name: &str, kind: FieldKind, value: &Value) -> Result<FieldValue, ApiError> {
    let wrong = || {
        ApiError::bad_request(format!("{name} must be {}", describe(kind))).field(name.to_owned())
    };
    let text = |value: &Value| -> Result<String, ApiError> {
        let text = value.as_str().ok_or_else(wrong)?;
        cap(name, text, TEXT_MAX_CHARS)?;
        Ok(text.to_owned())
    };
    Ok(match kind {
        FieldKind::Text => FieldValue::Text(text(value)?),
        FieldKind::Number => {
            FieldValue::Number(value.as_f64().filter(|n| n.is_finite()).ok_or_else(wrong)?)
        }
        FieldKind::Integer => FieldValue::Integer(value.as_i64().ok_or_else(wrong)?),
        FieldKind::Bool => FieldValue::Bool(value.as_bool().ok_or_else(wrong)?),
        FieldKind::Datetime => FieldValue::Datetime(
            parse_rfc3339(value.as_str().ok_or_else(wrong)?).map_err(|e| {
                ApiError::bad_request(format!("{name}: {e}")).field(name.to_owned())
            })?,
        ),
        FieldKind::Unit => {
            FieldValue::Unit(UnitId::new(text(value)?).map_err(|e| {
                ApiError::bad_request(format!("{name}: {e}")).field(name.to_owned())
            })?)
        }
        FieldKind::Choice => FieldValue::Choice(text(value)?),
        FieldKind::Choices => FieldValue::Choices(
            value
                .as_array()
                .ok_or_else(wrong)?
                .iter()
                .map(text)
                .collect::<Result<_, _>>()?,
        ),
        FieldKind::Rating => FieldValue::Rating(
            value
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(wrong)?,
        ),
        FieldKind::Case => FieldValue::Case(
            CaseId::parse(value.as_str().ok_or_else(wrong)?).map_err(|e| {
                ApiError::bad_request(format!("{name}: {e}")).field(name.to_owned())
            })?,
        ),
        // A kind added to the core later: refuse rather than guess.
        #[allow(unreachable_patterns)]
        _ => return Err(wrong()),
    })
}

fn describe(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "a string",
        FieldKind::Number => "a finite number",
        FieldKind::Integer => "an integer",
        FieldKind::Bool => "true or false",
        FieldKind::Datetime => "an RFC 3339 date-time with an offset",
        FieldKind::Unit => "a unit id",
        FieldKind::Choice => "one of the field's choices, as a string",
        FieldKind::Choices => "an array of the field's choices",
        FieldKind::Rating => "an integer from 1 to 5",
        FieldKind::Case => "a case id",
        #[allow(unreachable_patterns)]
        _ => "a value of the field's kind",
    }
}

/// A field value as JSON (the inverse of [`from_json`]).
pub fn to_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Text(t) | FieldValue::Choice(t) => Value::from(t.clone()),
        FieldValue::Number(n) => Value::from(*n),
        FieldValue::Integer(n) => Value::from(*n),
        FieldValue::Bool(b) => Value::from(*b),
        FieldValue::Datetime(at) => Value::from(civicflow_core::calendar::format_local(*at)),
        FieldValue::Unit(u) => Value::from(u.as_str()),
        FieldValue::Choices(c) => Value::from(c.clone()),
        FieldValue::Rating(r) => Value::from(*r),
        FieldValue::Case(c) => Value::from(c.to_string()),
        #[allow(unreachable_patterns)]
        _ => Value::Null,
    }
}
