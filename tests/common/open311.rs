//! Helpers for the Open311 conformance tests: the formats' constants, and XML read as the
//! JSON it must mirror (so that each test checks both formats against each other).

use serde_json::Value;

/// The XML content type the spec requires.
pub const XML_TYPE: &str = "text/xml; charset=utf-8";
/// The JSON content type.
pub const JSON_TYPE: &str = "application/json; charset=utf-8";
/// The XML declaration every XML answer starts with.
pub const DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// An element as JSON: an element named in `lists` is an array of its children, an element
/// with children an object (key order is checked on the XML separately), a leaf its text.
pub fn mirror(node: roxmltree::Node, lists: &[&str]) -> Value {
    let children: Vec<roxmltree::Node> = node.children().filter(|c| c.is_element()).collect();
    if lists.contains(&node.tag_name().name()) {
        return Value::Array(children.into_iter().map(|c| mirror(c, lists)).collect());
    }
    if children.is_empty() {
        return Value::String(node.text().unwrap_or("").to_owned());
    }
    let mut object = serde_json::Map::new();
    for child in children {
        object.insert(child.tag_name().name().to_owned(), mirror(child, lists));
    }
    Value::Object(object)
}

/// JSON as the XML mirror holds it: numbers and booleans as their text, `null` as an empty
/// element.
pub fn as_text(value: &Value) -> Value {
    match value {
        Value::Null => Value::String(String::new()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(items.iter().map(as_text).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), as_text(v)))
                .collect(),
        ),
        Value::String(_) => value.clone(),
    }
}

/// The names of an element's child elements, in order.
pub fn child_names(node: roxmltree::Node) -> Vec<String> {
    node.children()
        .filter(|c| c.is_element())
        .map(|c| c.tag_name().name().to_owned())
        .collect()
}
