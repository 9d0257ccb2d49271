//! The OpenAPI 3 document, generated from the route table (so it cannot drift from the
//! router).
//!
//! Every status a route can answer is declared, with its media type and body: the success
//! (and `also`), what the policy implies (401, 403, 429 with a token; 429 on a public read,
//! the per-address limit), what a JSON body
//! implies (400, 413) and the handler's own `errors`. `.ci/schemathesis` calls every
//! operation with generated input and fails on any answer the document does not declare.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::policy::Policy;
use crate::routes::{Content, RouteSpec};

/// The JSON Schema of the body a handler takes, `T`, as the document writes it (OpenAPI 3.0's
/// dialect, every subschema inline): what a route names as its `request`
/// (`request: Some(schema_of::<IssueBody>)`), so that the document describes exactly what the
/// handler parses.
///
/// It describes what `T` accepts when deserialized: an `Option` field may be left out (or be
/// null). For an answer, [`answer_schema_of`] says what `T` writes instead. An answer named
/// with `schema_of` must mark an `Option` it always writes (as `null` when absent)
/// `#[schemars(required, extend("nullable" = true))]`: `required` alone drops the `nullable`
/// that OpenAPI 3.0 needs for the null.
pub fn schema_of<T: schemars::JsonSchema>() -> Value {
    inline_schema::<T>(schemars::generate::SchemaSettings::openapi3().for_deserialize())
}

/// The JSON Schema of `T` as a handler serializes it (`response: Some(answer_schema_of::<T>)`):
/// every field it always writes is required, an `Option` included (written as null; nullable
/// in the schema), and only a field skipped when empty (`skip_serializing_if`) is optional.
///
/// No attribute is needed for that: `#[schemars(required)]` on an `Option` would even say
/// "present and never null", and the schema would refuse the null the field is written as.
pub fn answer_schema_of<T: schemars::JsonSchema>() -> Value {
    inline_schema::<T>(schemars::generate::SchemaSettings::openapi3().for_serialize())
}

fn inline_schema<T: schemars::JsonSchema>(settings: schemars::generate::SchemaSettings) -> Value {
    let generator = settings
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        // The root's title is the Rust type's name, which says nothing to a client.
        object.remove("title");
        object.remove("$schema");
    }
    schema
}

/// What an error status means, in the document.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => "malformed: a body, a path segment, a query parameter or a header; `field` names it",
        401 => "no valid token",
        403 => "the caller may not",
        404 => "no such thing, or not in the caller's scope",
        409 => "a stale expected_version, something that exists already, or a concurrent write (try again)",
        413 => "a body over 64 KiB",
        415 => "a body in a media type the route does not take (the message names those it does)",
        422 => "the engine refuses: wrong stage, a missing or invalid field (`field` names it)",
        429 => "rate limited; Retry-After says when to come back",
        503 => "the log cannot write or a read model cannot answer now, or the request took over the time limit (`timeout`)",
        _ => "an error",
    }
}

/// The headers an error status always carries.
fn error_headers(status: u16) -> Option<Value> {
    let header = |description: &str| json!({"description": description, "required": true, "schema": {"type": "string"}});
    match status {
        401 => Some(json!({"WWW-Authenticate": header("Bearer realm=\"civicflow\"")})),
        429 => Some(json!({"Retry-After": header("whole seconds to wait")})),
        _ => None,
    }
}

/// The body of a success (or an `also` status) of `route`.
fn success_content(route: &RouteSpec) -> Value {
    let json_body = || match route.response {
        Some(schema) => json!({"schema": schema()}),
        None => json!({}),
    };
    let xml = || json!({"schema": {"type": "string"}});
    match route.content {
        Content::Json | Content::Open311Json => json!({"application/json": json_body()}),
        Content::Text => json!({"text/plain": {"schema": {"type": "string"}}}),
        Content::EventStream => json!({"text/event-stream": {"schema": {"type": "string"}}}),
        Content::Open311Xml => json!({"text/xml": xml()}),
        Content::Open311Either => json!({"text/xml": xml(), "application/json": json_body()}),
        Content::Html => json!({"text/html": {"schema": {"type": "string"}}}),
        Content::Csv => json!({"text/csv": {"schema": {"type": "string"}}}),
        Content::Asset => json!({
            "text/css": {"schema": {"type": "string"}},
            "text/javascript": {"schema": {"type": "string"}},
        }),
    }
}

/// The body of an error of `route`: the native JSON error, or an Open311 error list in the
/// route's format.
fn error_content(route: &RouteSpec) -> Value {
    let native = json!({"schema": {"$ref": "#/components/schemas/Error"}});
    let open311_json = json!({"schema": {"$ref": "#/components/schemas/Open311Errors"}});
    let open311_xml = json!({"schema": {"type": "string"}});
    match route.content {
        Content::Json | Content::Text | Content::EventStream | Content::Asset | Content::Csv => {
            json!({"application/json": native})
        }
        // The page's own errors are pages; the layers' (a time limit, a body too large) the
        // JSON error.
        Content::Html => {
            json!({"text/html": {"schema": {"type": "string"}}, "application/json": native})
        }
        Content::Open311Json => json!({"application/json": open311_json}),
        Content::Open311Xml => json!({"text/xml": open311_xml}),
        Content::Open311Either => {
            json!({"text/xml": open311_xml, "application/json": open311_json})
        }
    }
}

fn error_response(route: &RouteSpec, status: u16) -> Value {
    let mut response = json!({
        "description": error_description(status),
        "content": error_content(route),
    });
    if let Some(headers) = error_headers(status) {
        response["headers"] = headers;
    }
    response
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
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if let Some(params) = route.params {
            for param in params().as_array().into_iter().flatten() {
                // A declared path parameter replaces the plain one of its name.
                parameters.retain(|p| {
                    !(p["in"] == "path" && p["in"] == param["in"] && p["name"] == param["name"])
                });
                parameters.push(param.clone());
            }
        }
        if !parameters.is_empty() {
            operation.insert("parameters".into(), json!(parameters));
        }
        if let Some(schema) = route.request {
            let schema = schema();
            // An empty body reads as `{}` (`json.rs`): a body is required only when a field is.
            let required = schema["required"].as_array().is_some_and(|r| !r.is_empty());
            // A page's form is a form; everything else takes JSON.
            let media = if route.content == Content::Html {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            };
            operation.insert(
                "requestBody".into(),
                json!({"required": required, "content": {media: {"schema": schema}}}),
            );
        }
        let mut responses = Map::new();
        for status in std::iter::once(route.status).chain(route.also.iter().copied()) {
            let description = if status == route.status {
                "success"
            } else {
                "also answered with the success's body"
            };
            let response = if status == 303 {
                // After a form: no body, the page to go to.
                json!({"description": "see the page in Location (after a form)", "headers": {
                    "Location": {"description": "the page to go to", "required": true, "schema": {"type": "string"}}
                }})
            } else {
                json!({"description": description, "content": success_content(route)})
            };
            responses.insert(status.to_string(), response);
        }
        let mut errors: Vec<u16> = route.errors.to_vec();
        if route.policy != Policy::Public {
            errors.extend([401, 403, 429]);
            operation.insert("security".into(), json!([{"bearer": []}]));
        } else if crate::limits::metered_by_address(&route.method, route.path, route.policy) {
            // The per-address limit of public reads.
            errors.push(429);
        }
        if route.request.is_some() {
            errors.extend([400, 413]);
        }
        // What the layers answer on any route: the request's time limit (503 `timeout`; event
        // streams have none), and a path segment that is not UTF-8 once percent-decoded (400,
        // `path.rs`; an Open311 path names its resource in a segment it reads itself).
        if route.content != Content::EventStream {
            errors.push(503);
        }
        let open311 = matches!(
            route.content,
            Content::Open311Xml | Content::Open311Json | Content::Open311Either
        );
        if route.path.contains('{') && !open311 {
            errors.push(400);
        }
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            responses.insert(status.to_string(), error_response(route, status));
        }
        operation.insert("responses".into(), Value::Object(responses));
        paths.entry(route.path).or_default().insert(
            route.method.as_str().to_lowercase(),
            Value::Object(operation),
        );
    }
    let mut open311_errors = answer_schema_of::<Vec<crate::open311::errors::Open311ErrorAnswer>>();
    // An Open311 error answer lists one error: never none.
    open311_errors["minItems"] = json!(1);
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
                "Error": answer_schema_of::<crate::error::ErrorAnswer>(),
                "Open311Errors": open311_errors,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A type's schema is written inline, in OpenAPI 3.0's words: nothing refers to
    /// definitions the document does not carry, and an optional field is nullable.
    #[test]
    fn a_type_describes_itself_inline() {
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Inner {
            name: String,
        }
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Outer {
            inner: Vec<Inner>,
            parent: Option<String>,
            // Always written, as null when absent: what the routes' answers say this way.
            #[schemars(required, extend("nullable" = true))]
            always: Option<String>,
        }
        let schema = schema_of::<Outer>();
        let text = schema.to_string();
        assert!(!text.contains("$ref") && !text.contains("$defs"), "{text}");
        assert_eq!(
            schema["properties"]["inner"]["items"]["required"],
            json!(["name"])
        );
        assert_eq!(
            schema["properties"]["parent"]["nullable"],
            json!(true),
            "{text}"
        );
        assert_eq!(schema["required"], json!(["inner", "always"]), "{text}");
        assert_eq!(
            schema["properties"]["always"]["nullable"],
            json!(true),
            "{text}"
        );
    }

    /// An answer's schema says what it writes: an `Option` written as null is required (and
    /// nullable), a field skipped when empty is not.
    #[test]
    fn an_answer_requires_what_it_always_writes() {
        #[derive(serde::Serialize, schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Answer {
            name: String,
            parent: Option<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            notes: Vec<String>,
        }
        let schema = answer_schema_of::<Answer>();
        assert_eq!(schema["required"], json!(["name", "parent"]), "{schema}");
        assert_eq!(schema["properties"]["parent"]["nullable"], json!(true));
        // The same type read as a request: the Option may be left out.
        assert_eq!(schema_of::<Answer>()["required"], json!(["name", "notes"]));
        // What `#[schemars(required)]` would say instead: never null.
        #[derive(serde::Serialize, schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Pinned {
            #[schemars(required)]
            parent: Option<String>,
        }
        let pinned = answer_schema_of::<Pinned>();
        assert_eq!(
            pinned["properties"]["parent"].get("nullable"),
            None,
            "{pinned}"
        );
    }

    /// The document's schemas are OpenAPI 3.0's dialect, not later JSON Schema: null through
    /// `nullable`, never a list of types, and `items` one schema, never a tuple's list.
    #[test]
    fn the_schemas_speak_openapi_3_0() {
        fn check(value: &Value, at: &str) {
            match value {
                Value::Object(object) => {
                    for (key, inner) in object {
                        let here = format!("{at}/{key}");
                        let list = inner.is_array();
                        assert!(!(key == "type" && list), "a list of types at {here}");
                        assert!(!(key == "items" && list), "a tuple's items at {here}");
                        assert!(key != "prefixItems", "{here}");
                        check(inner, &here);
                    }
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        check(item, &format!("{at}/{i}"));
                    }
                }
                _ => {}
            }
        }
        check(&document(&crate::routes::all())["paths"], "");
    }

    /// What `.ci/schemathesis` relies on, checked without a server: every status a route
    /// lists is declared with a meaning and a body, and no parameter is declared twice (a
    /// narrower path parameter replaces the plain one).
    #[test]
    fn every_listed_status_is_declared_with_a_meaning_and_a_body() {
        let routes = crate::routes::all();
        let document = document(&routes);
        for route in &routes {
            let operation = &document["paths"][route.path][route.method.as_str().to_lowercase()];
            let shown = format!("{} {}", route.method, route.path);
            for status in route.errors {
                assert_ne!(error_description(*status), "an error", "{shown}: {status}");
            }
            let listed = route.errors.iter().chain(route.also).chain([&route.status]);
            for status in listed {
                let response = &operation["responses"][status.to_string()];
                if *status == 303 {
                    // After a form: no body, the page to go to.
                    assert!(
                        response["headers"]["Location"].is_object(),
                        "{shown}: {status}"
                    );
                } else {
                    assert!(response["content"].is_object(), "{shown}: {status}");
                }
            }
            let mut names = BTreeSet::new();
            for param in operation["parameters"].as_array().into_iter().flatten() {
                let key = (param["in"].to_string(), param["name"].to_string());
                assert!(names.insert(key), "{shown}: {param} twice");
            }
        }
    }
}
