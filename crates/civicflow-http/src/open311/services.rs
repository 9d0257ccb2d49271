//! `services.{fmt}` and `services/{service_code}.{fmt}`: the workflows a civic app may open,
//! as Open311 services, and the fields asked when one is opened, as a service definition's
//! attributes. The newest version of each workflow is what a new request gets, so it is the
//! one shown.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use civicflow_core::domain::fields::{FieldKind, FieldSpec};
use civicflow_core::domain::workflow::Definition;
use schemars::JsonSchema;
use serde::Serialize;

use super::errors::{echo, Open311Error};
use super::format::{Document, Format};
use super::{check_jurisdiction, decode};
use crate::state::AppState;

/// The workflows served as Open311 services: the newest version of each workflow whose
/// opening rule lets the civic apps' role (`open311_client`) open a case, in id order.
pub fn services(state: &AppState) -> Vec<Arc<Definition>> {
    state
        .engine()
        .definitions()
        .latest_all()
        .into_iter()
        .filter(|d| d.open_to_open311())
        .cloned()
        .collect()
}

/// The service's group: the last word of the workflow id (`service-request` → `request`,
/// `consumer-dispute` → `dispute`), its kind, so that workflows of one kind group together.
/// Stable: it changes only with the id, which never changes.
pub fn group(definition: &Definition) -> String {
    let id = definition.id.as_str();
    id.rsplit('-').next().unwrap_or(id).to_owned()
}

/// The service's keywords: the values of its choice fields at opening, in order, without
/// repeats, joined with `, ` (as the spec's example writes them).
pub fn keywords(definition: &Definition) -> String {
    let mut words: Vec<&str> = Vec::new();
    for field in &definition.open.fields {
        if matches!(field.kind, FieldKind::Choice | FieldKind::Choices) {
            for choice in &field.choices {
                if !words.contains(&choice.as_str()) {
                    words.push(choice);
                }
            }
        }
    }
    words.join(", ")
}

/// An entry of the service list (`services.{fmt}`), its elements in the spec's order.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "service", deny_unknown_fields)]
pub struct ServiceAnswer {
    /// The workflow's id.
    pub service_code: String,
    /// Its name.
    pub service_name: String,
    /// Its description (its name when it has none).
    pub description: String,
    /// Whether a request takes attributes (the workflow asks fields at opening).
    pub metadata: bool,
    /// How a request is handled.
    #[serde(rename = "type")]
    pub kind: ServiceKind,
    /// The values of its choice fields at opening, joined with `, `.
    pub keywords: String,
    /// Its kind, the last word of its id.
    pub group: String,
}

/// How a service's requests are handled.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// A request gets its id at once: the case is opened in the same call.
    Realtime,
}

impl ServiceAnswer {
    /// The entry of `definition`.
    pub fn new(definition: &Definition) -> Self {
        let description = if definition.description.trim().is_empty() {
            &definition.name
        } else {
            &definition.description
        };
        Self {
            service_code: definition.id.as_str().to_owned(),
            service_name: definition.name.clone(),
            description: description.clone(),
            metadata: !definition.open.fields.is_empty(),
            kind: ServiceKind::Realtime,
            keywords: keywords(definition),
            group: group(definition),
        }
    }
}

/// One entry of the service list as the value tree both formats render (what the tests read).
#[cfg(test)]
fn service_node(definition: &Definition) -> super::format::Node {
    Document::of("service", &ServiceAnswer::new(definition)).body
}

/// An attribute's datatype, as Open311 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Datatype {
    /// One line of text.
    String,
    /// A number.
    Number,
    /// A date and time.
    Datetime,
    /// Text with line breaks.
    Text,
    /// One of the listed values.
    Singlevaluelist,
    /// Several of the listed values.
    Multivaluelist,
}

/// The Open311 datatype of a field kind (`docs/open311.md` has the table).
pub fn datatype(kind: FieldKind) -> Datatype {
    match kind {
        // Free text of up to 4000 characters, line breaks allowed: a textarea.
        FieldKind::Text => Datatype::Text,
        FieldKind::Number | FieldKind::Integer | FieldKind::Rating => Datatype::Number,
        FieldKind::Datetime => Datatype::Datetime,
        FieldKind::Choice | FieldKind::Bool => Datatype::Singlevaluelist,
        FieldKind::Choices => Datatype::Multivaluelist,
        // Ids typed on one line.
        FieldKind::Unit | FieldKind::Case => Datatype::String,
    }
}

/// What helps a person give a value of the kind (empty when the datatype says it all).
pub fn datatype_description(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Rating => "1 to 5 (1 very dissatisfied, 5 very satisfied)",
        FieldKind::Integer => "a whole number",
        FieldKind::Number => "a decimal number",
        FieldKind::Datetime => "ISO 8601 with a zone, e.g. 2026-04-01T09:30:00+08:00",
        FieldKind::Unit => "the id of an org unit, e.g. shop-xt-012",
        FieldKind::Case => "the id of a case",
        FieldKind::Text | FieldKind::Bool | FieldKind::Choice | FieldKind::Choices => "",
    }
}

/// The listed values of a list field: `(key, name)`. A choice's key is the value itself;
/// its name is the value with `_` as spaces (choices have no labels of their own).
pub fn values(field: &FieldSpec) -> Option<Vec<(String, String)>> {
    match field.kind {
        FieldKind::Choice | FieldKind::Choices => Some(
            field
                .choices
                .iter()
                .map(|c| (c.clone(), c.replace('_', " ")))
                .collect(),
        ),
        FieldKind::Bool => Some(vec![
            ("true".to_owned(), "yes".to_owned()),
            ("false".to_owned(), "no".to_owned()),
        ]),
        _ => None,
    }
}

/// A service definition (`services/{service_code}.{fmt}`): the attributes a request takes.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "service_definition", deny_unknown_fields)]
pub struct ServiceDefinitionAnswer {
    /// The workflow's id.
    pub service_code: String,
    /// The fields asked at opening, in order.
    pub attributes: Vec<AttributeAnswer>,
}

/// An attribute of a service definition, its elements in the spec's order.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "attribute", deny_unknown_fields)]
pub struct AttributeAnswer {
    /// Always true: a value the requester gives.
    pub variable: bool,
    /// The field's name (`attribute[code]` when filing).
    pub code: String,
    /// Its datatype.
    pub datatype: Datatype,
    /// Whether a request needs it.
    pub required: bool,
    /// What helps a person give a value (empty when the datatype says it all).
    pub datatype_description: String,
    /// Its place, from 1.
    #[schemars(range(min = 1))]
    pub order: usize,
    /// Its label (its name when it has none).
    pub description: String,
    /// The listed values, for the list datatypes only (where the spec requires them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<AttributeValueAnswer>>,
}

/// A listed value of an attribute.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename = "value", deny_unknown_fields)]
pub struct AttributeValueAnswer {
    /// What a request gives.
    pub key: String,
    /// What a person reads.
    pub name: String,
}

impl AttributeAnswer {
    fn new(field: &FieldSpec, order: usize) -> Self {
        let description = if field.label.trim().is_empty() {
            &field.name
        } else {
            &field.label
        };
        Self {
            variable: true,
            code: field.name.clone(),
            datatype: datatype(field.kind),
            required: field.required,
            datatype_description: datatype_description(field.kind).to_owned(),
            order,
            description: description.clone(),
            values: values(field).map(|values| {
                values
                    .into_iter()
                    .map(|(key, name)| AttributeValueAnswer { key, name })
                    .collect()
            }),
        }
    }
}

/// The service definition of a workflow.
pub fn definition_document(definition: &Definition) -> Document {
    let attributes = definition
        .open
        .fields
        .iter()
        .enumerate()
        .map(|(i, field)| AttributeAnswer::new(field, i + 1))
        .collect();
    Document::of(
        "service_definition",
        &ServiceDefinitionAnswer {
            service_code: definition.id.as_str().to_owned(),
            attributes,
        },
    )
}

fn list(state: &AppState, uri: &Uri, format: Format) -> Response {
    if let Err(error) = check_jurisdiction(state, uri, format) {
        return error.into_response();
    }
    let services: Vec<ServiceAnswer> = services(state)
        .iter()
        .map(|d| ServiceAnswer::new(d))
        .collect();
    Document::of("services", &services).respond(format, StatusCode::OK)
}

/// `GET services.xml`.
pub async fn list_xml(State(state): State<AppState>, uri: Uri) -> Response {
    list(&state, &uri, Format::Xml)
}

/// `GET services.json`.
pub async fn list_json(State(state): State<AppState>, uri: Uri) -> Response {
    list(&state, &uri, Format::Json)
}

/// `GET services/{service_code}.{fmt}`. The segment is read from the URI itself, not through
/// a path extractor, so that no segment (bad percent-encoding, invalid UTF-8) can turn into
/// anything but an Open311 answer.
pub async fn definition(State(state): State<AppState>, uri: Uri) -> Response {
    let segment = uri.path().rsplit('/').next().unwrap_or("");
    let segment = decode(segment, false);
    let Some((code, format)) = Format::split(&segment) else {
        return Open311Error::not_found(
            Format::Xml,
            format!(
                "no such Open311 resource services/{}: a service definition is services/SERVICE_CODE.xml or .json",
                echo(&segment)
            ),
        )
        .into_response();
    };
    if let Err(error) = check_jurisdiction(&state, &uri, format) {
        return error.into_response();
    }
    match services(&state).iter().find(|d| d.id.as_str() == code) {
        Some(definition) => definition_document(definition).respond(format, StatusCode::OK),
        None => Open311Error::not_found(format, format!("service_code '{}' not found", echo(code)))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workflow with one opening field of every kind, and one with none.
    fn definition(fields: &str) -> Definition {
        super::super::test_workflow::with_fields("every kind", fields)
    }

    const EVERY_KIND: &str = r#"
[[open.fields]]
name = "t"
type = "text"
required = true
label = "some text"
[[open.fields]]
name = "n"
type = "number"
[[open.fields]]
name = "i"
type = "integer"
[[open.fields]]
name = "b"
type = "bool"
[[open.fields]]
name = "d"
type = "datetime"
[[open.fields]]
name = "u"
type = "unit"
[[open.fields]]
name = "c"
type = "choice"
choices = ["x_y", "z"]
[[open.fields]]
name = "cs"
type = "choices"
choices = ["z", "w"]
[[open.fields]]
name = "r"
type = "rating"
[[open.fields]]
name = "k"
type = "case"
"#;

    #[test]
    fn every_field_kind_has_its_datatype_and_values() {
        let definition = definition(EVERY_KIND);
        let json = definition_document(&definition).body.to_json();
        let attributes = json["attributes"].as_array().expect("attributes");
        let got: Vec<(&str, &str, bool, i64)> = attributes
            .iter()
            .map(|a| {
                (
                    a["code"].as_str().expect("code"),
                    a["datatype"].as_str().expect("datatype"),
                    a["required"].as_bool().expect("required"),
                    a["order"].as_i64().expect("order"),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("t", "text", true, 1),
                ("n", "number", false, 2),
                ("i", "number", false, 3),
                ("b", "singlevaluelist", false, 4),
                ("d", "datetime", false, 5),
                ("u", "string", false, 6),
                ("c", "singlevaluelist", false, 7),
                ("cs", "multivaluelist", false, 8),
                ("r", "number", false, 9),
                ("k", "string", false, 10),
            ]
        );
        assert_eq!(attributes[0]["description"], "some text");
        assert_eq!(attributes[1]["description"], "n", "no label: the name");
        assert_eq!(
            attributes[8]["datatype_description"],
            "1 to 5 (1 very dissatisfied, 5 very satisfied)"
        );
        assert_eq!(
            attributes[3]["values"],
            serde_json::json!([{"key": "true", "name": "yes"}, {"key": "false", "name": "no"}])
        );
        assert_eq!(
            attributes[6]["values"],
            serde_json::json!([{"key": "x_y", "name": "x y"}, {"key": "z", "name": "z"}])
        );
        assert!(
            attributes[0].get("values").is_none(),
            "values only for lists"
        );
        assert_eq!(keywords(&definition), "x_y, z, w");
        assert_eq!(group(&definition), "request");
        assert_eq!(service_node(&definition).to_json()["metadata"], true);
        assert_eq!(
            service_node(&definition).to_json()["description"],
            "every kind",
            "no description: the name"
        );
    }

    #[test]
    fn a_workflow_without_opening_fields_has_no_metadata() {
        let definition = definition("");
        let service = service_node(&definition).to_json();
        assert_eq!(service["metadata"], false);
        assert_eq!(service["keywords"], "");
        let document = definition_document(&definition);
        assert_eq!(document.body.to_json()["attributes"], serde_json::json!([]));
        assert!(document.to_xml().contains("<attributes></attributes>"));
    }
}
