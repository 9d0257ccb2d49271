//! Workflow fields in JSON: a body's `fields` object read by the domain's one field parser
//! ([`parse_fields`]), and values shown back as JSON.
//!
//! This module only maps JSON's syntax to [`FieldInput`]; what each kind accepts, and the
//! errors, are the domain's (the same rules as Open311's attributes). Whether a field is
//! required, and the choices allowed, are the engine's to check when it decides.

use civicflow_core::calendar::Zone;
use civicflow_core::domain::fields::{parse_fields, FieldInput, FieldSpec, FieldValue, Fields};
use civicflow_core::domain::Rejection;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// `values` as fields of `specs`, by the domain's parser.
///
/// # Errors
/// 400 naming the field: a name the specs do not declare, or a value that is not one of the
/// field's kind (the message says what it must be).
pub fn from_json(specs: &[FieldSpec], values: &Map<String, Value>) -> Result<Fields, ApiError> {
    parse_fields(
        specs,
        values
            .iter()
            .map(|(name, value)| (name.clone(), input(value))),
    )
    .map_err(refused)
}

/// A JSON value as the parser's input: each JSON type as the typed input it is.
fn input(value: &Value) -> FieldInput {
    match value {
        Value::Null => FieldInput::Null,
        Value::Bool(b) => FieldInput::Bool(*b),
        // An integer stays exact as i64; anything else (a fraction, an exponent, past i64)
        // is a decimal, which the parser refuses for whole numbers past 2^53.
        Value::Number(n) => match n.as_i64() {
            Some(n) => FieldInput::Integer(n),
            None => FieldInput::Decimal(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => FieldInput::Text(text.clone()),
        Value::Array(items) => FieldInput::List(items.iter().map(input).collect()),
        Value::Object(_) => FieldInput::Object,
    }
}

/// The parser's refusal as the API's 400, naming the field.
fn refused(rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::FieldInvalid { field, reason } => {
            ApiError::bad_request(format!("{field} {reason}")).field(field)
        }
        // The parser answers nothing else; whatever it may say later is still the body's
        // fault, and a 400 with its words.
        other => ApiError::bad_request(other.to_string()),
    }
}

/// A field value as JSON (what [`from_json`] reads back to the same value), a time written
/// in `zone` (the calendar's).
pub fn to_json(value: &FieldValue, zone: &Zone) -> Value {
    match value {
        FieldValue::Text(t) | FieldValue::Choice(t) => Value::from(t.clone()),
        FieldValue::Number(n) => Value::from(*n),
        FieldValue::Integer(n) => Value::from(*n),
        FieldValue::Bool(b) => Value::from(*b),
        FieldValue::Datetime(at) => Value::from(zone.format(*at)),
        FieldValue::Unit(u) => Value::from(u.as_str()),
        FieldValue::Choices(c) => Value::from(c.clone()),
        FieldValue::Rating(r) => Value::from(*r),
        FieldValue::Case(c) => Value::from(c.to_string()),
        #[allow(unreachable_patterns)]
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civicflow_core::domain::fields::FieldKind;
    use serde_json::json;

    fn specs() -> Vec<FieldSpec> {
        vec![
            FieldSpec::new("amount", FieldKind::Number, false),
            FieldSpec::new("count", FieldKind::Integer, false),
            FieldSpec::new("ok", FieldKind::Bool, false),
            FieldSpec::new("when", FieldKind::Datetime, false),
            FieldSpec::new("tags", FieldKind::Choices, false),
        ]
    }

    fn read(body: Value) -> Result<Fields, ApiError> {
        from_json(&specs(), body.as_object().expect("an object"))
    }

    #[test]
    fn json_values_read_as_the_domain_reads_them() {
        let fields = read(json!({
            "amount": "12.5", "count": 12.0, "ok": "false",
            "when": "2026-04-01T09:30:00+08:00", "tags": ["a", "a", "b"]
        }))
        .expect("valid");
        assert_eq!(fields["amount"], FieldValue::Number(12.5));
        assert_eq!(fields["count"], FieldValue::Integer(12));
        assert_eq!(fields["ok"], FieldValue::Bool(false));
        assert!(matches!(fields["when"], FieldValue::Datetime(_)));
        assert_eq!(
            fields["tags"],
            FieldValue::Choices(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            to_json(&fields["when"], &Zone::shanghai()),
            json!("2026-04-01T09:30:00+08:00")
        );
        // The same instant, written in the calendar's zone wherever that is.
        let berlin = Zone::named("Europe/Berlin").expect("a zone");
        assert_eq!(
            to_json(&fields["when"], &berlin),
            json!("2026-04-01T03:30:00+02:00")
        );
        assert!(read(json!({"amount": null})).expect("null").is_empty());
        assert_eq!(
            read(json!({"count": u64::MAX}))
                .expect_err("past i64")
                .field
                .as_deref(),
            Some("count")
        );
    }

    #[test]
    fn refusals_are_400_naming_the_field() {
        for (body, field, message) in [
            (
                json!({"ok": "yes"}),
                "ok",
                "ok must be true or false, not \"yes\"",
            ),
            (
                json!({"when": 1_775_007_000_000_000_i64}),
                "when",
                "when must be an RFC 3339 date and time with an offset (2026-04-01T09:30:00+08:00), not 1775007000000000",
            ),
            (
                json!({"amount": {"value": 1}}),
                "amount",
                "amount must be a decimal number, not an object",
            ),
            (
                json!({"colour": "red"}),
                "colour",
                "colour is not a field of this step; its fields are: amount, count, ok, when, tags",
            ),
        ] {
            let error = read(body).expect_err(message);
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(error.code, "bad_request");
            assert_eq!(error.field.as_deref(), Some(field));
            assert_eq!(error.message, message);
        }
    }
}
