//! The OpenAPI 3 document, generated from the route table (so it cannot drift from the
//! router).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::policy::Policy;
use crate::routes::RouteSpec;

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The document for `routes`.
pub fn document(routes: &[RouteSpec]) -> Value {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for route in routes {
        let mut operation = Map::new();
        operation.insert("summary".into(), json!(route.summary));
        operation.insert("tags".into(), json!([route.tag]));
        operation.insert(
            "operationId".into(),
            json!(format!(
                "{}_{}",
                route.method.as_str().to_lowercase(),
                route
                    .path
                    .trim_start_matches('/')
                    .replace(['/', '{', '}', '.'], "_")
            )),
        );
        operation.insert("x-policy".into(), json!(route.policy.describe()));
        let parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !parameters.is_empty() {
            operation.insert("parameters".into(), json!(parameters));
        }
        if let Some(schema) = route.request {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema()}}}),
            );
        }
        let mut responses = Map::new();
        let success = match route.response {
            Some(schema) => {
                json!({"description": "success", "content": {"application/json": {"schema": schema()}}})
            }
            None => json!({"description": "success"}),
        };
        responses.insert(route.status.to_string(), success);
        if route.policy != Policy::Public {
            responses.insert("401".into(), error_response("no valid token"));
            responses.insert("403".into(), error_response("the caller may not"));
            responses.insert("429".into(), error_response("rate limited"));
            operation.insert("security".into(), json!([{"bearer": []}]));
        }
        if route.request.is_some() {
            responses.insert(
                "400".into(),
                error_response("a malformed body; `field` names the field at fault"),
            );
            responses.insert("413".into(), error_response("a body over 64 KiB"));
        }
        operation.insert("responses".into(), Value::Object(responses));
        paths.entry(route.path).or_default().insert(
            route.method.as_str().to_lowercase(),
            Value::Object(operation),
        );
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "civicflow",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Civic request handling as an event-sourced workflow engine. Every write is an event in a hash-chained log; see docs/service.md."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "field": {"type": "string"}
                        }
                    }}
                }
            }
        }
    })
}
