//! Open311 answers as a small value tree, rendered as XML (the required format) or JSON (its
//! mirror). Both renderings come from the same tree, so they cannot drift apart: a list is
//! an XML element with one child per item and a top-level JSON array (no wrapper); a record
//! is an element with children in order and a JSON object.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// The XML declaration every XML answer starts with.
pub const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;
/// The content type of an XML answer.
pub const XML_CONTENT_TYPE: &str = "text/xml; charset=utf-8";
/// The content type of a JSON answer.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The format a resource was asked in, by its suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.xml`: required by the spec, and the default when a suffix is missing or unknown.
    Xml,
    /// `.json`.
    Json,
}

impl Format {
    /// The format a suffix (without the dot) names; only the spec's lowercase spellings.
    pub fn from_suffix(suffix: &str) -> Option<Format> {
        match suffix {
            "xml" => Some(Format::Xml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// Splits `name.xml` or `name.json` into the name and the format; `None` when the last
    /// segment has no known suffix.
    pub fn split(resource: &str) -> Option<(&str, Format)> {
        let (name, suffix) = resource.rsplit_once('.')?;
        Some((name, Format::from_suffix(suffix)?))
    }

    /// The format an answer about `path` should take when the path itself is not a resource:
    /// JSON when its last segment ends in `.json`, XML otherwise (XML is the one every
    /// client reads).
    pub fn guess(path: &str) -> Format {
        let last = path.rsplit('/').next().unwrap_or("");
        match Format::split(last) {
            Some((_, format)) => format,
            None => Format::Xml,
        }
    }

    /// The exact content type of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => XML_CONTENT_TYPE,
            Format::Json => JSON_CONTENT_TYPE,
        }
    }
}

/// A value of an Open311 answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Text: every id and `service_code` is text, even when it looks like a number (the
    /// spec's own JSON examples emit numbers there, which loses leading zeros).
    Text(String),
    /// A whole number (an attribute's `order`, an error's `code`).
    Int(i64),
    /// `true` or `false`.
    Bool(bool),
    /// A decimal number that may be absent (a coordinate): in XML its digits or an empty
    /// element, in JSON a number or `null`, as the spec's examples show `lat` and `long`.
    Decimal(Option<f64>),
    /// A list: in XML one `<item>` child per value, in JSON an array.
    List {
        /// The element name of each value in XML (`service`, `format`, …).
        item: &'static str,
        /// The values.
        items: Vec<Node>,
    },
    /// A record: in XML its fields as child elements in order, in JSON an object.
    Record(Vec<(&'static str, Node)>),
}

impl Node {
    /// Text.
    pub fn text(text: impl Into<String>) -> Node {
        Node::Text(text.into())
    }

    /// A list of `item` elements.
    pub fn list(item: &'static str, items: Vec<Node>) -> Node {
        Node::List { item, items }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Node::Text(text) => Value::String(text.clone()),
            Node::Int(n) => Value::from(*n),
            Node::Bool(b) => Value::Bool(*b),
            Node::Decimal(v) => v.map_or(Value::Null, Value::from),
            Node::List { items, .. } => Value::Array(items.iter().map(Node::to_json).collect()),
            Node::Record(fields) => {
                let mut object = Map::new();
                for (name, value) in fields {
                    object.insert((*name).to_owned(), value.to_json());
                }
                Value::Object(object)
            }
        }
    }

    /// Writes the value as JSON text, a record's fields in their order (as the spec's
    /// examples list them; `serde_json`'s objects would sort them).
    fn write_json(&self, out: &mut String) {
        match self {
            Node::Text(text) => out.push_str(&Value::String(text.clone()).to_string()),
            Node::Int(n) => out.push_str(&n.to_string()),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Node::Decimal(v) => out.push_str(&v.map_or(Value::Null, Value::from).to_string()),
            Node::List { items, .. } => {
                out.push('[');
                for (i, value) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    value.write_json(out);
                }
                out.push(']');
            }
            Node::Record(fields) => {
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*name).to_owned()).to_string());
                    out.push(':');
                    value.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// Writes the value as the content of an element.
    fn write_xml(&self, out: &mut String) {
        match self {
            Node::Text(text) => escape_into(text, out),
            Node::Int(n) => out.push_str(&n.to_string()),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Node::Decimal(Some(v)) => out.push_str(&Value::from(*v).to_string()),
            Node::Decimal(None) => {}
            Node::List { item, items } => {
                for value in items {
                    element(item, value, out);
                }
            }
            Node::Record(fields) => {
                for (name, value) in fields {
                    element(name, value, out);
                }
            }
        }
    }
}

/// `<name>value</name>`; always an open and a close tag, as the spec's examples write empty
/// elements (`<keywords></keywords>`).
fn element(name: &str, value: &Node, out: &mut String) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    value.write_xml(out);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Escapes text for XML content. The five markup characters become entities; a carriage
/// return becomes a character reference (a parser would turn a literal one into a line
/// feed); characters XML 1.0 cannot carry at all, not even as references (the other C0
/// controls, U+FFFE and U+FFFF), become U+FFFD, so that the document always parses.
pub fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// A whole answer: the root element's name and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The root element in XML (`services`, `discovery`, `errors`, …); JSON has no root.
    pub root: &'static str,
    /// The value.
    pub body: Node,
}

impl Document {
    /// A document.
    pub fn new(root: &'static str, body: Node) -> Document {
        Document { root, body }
    }

    /// The XML text: the declaration, then the root element (no namespace).
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str(XML_DECLARATION);
        out.push('\n');
        element(self.root, &self.body, &mut out);
        out.push('\n');
        out
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        self.body.write_json(&mut out);
        out
    }

    /// The answer in `format` with `status`.
    pub fn respond(&self, format: Format, status: StatusCode) -> Response {
        let body = match format {
            Format::Xml => self.to_xml(),
            Format::Json => self.to_json(),
        };
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_are_numbers_in_json() {
        let node = Node::list(
            "request",
            vec![Node::Record(vec![
                ("lat", Node::Decimal(Some(29.3069))),
                ("long", Node::Decimal(None)),
                ("address_id", Node::text("12")),
            ])],
        );
        let mut out = String::new();
        node.write_json(&mut out);
        assert_eq!(out, r#"[{"lat":29.3069,"long":null,"address_id":"12"}]"#);
        let mut xml = String::new();
        element("lat", &Node::Decimal(Some(29.3069)), &mut xml);
        element("long", &Node::Decimal(None), &mut xml);
        assert_eq!(xml, "<lat>29.3069</lat><long></long>");
    }

    fn sample() -> Document {
        Document::new(
            "services",
            Node::list(
                "service",
                vec![Node::Record(vec![
                    ("service_code", Node::text("001")),
                    ("metadata", Node::Bool(false)),
                    ("order", Node::Int(1)),
                    (
                        "formats",
                        Node::list("format", vec![Node::text("text/xml")]),
                    ),
                ])],
            ),
        )
    }

    #[test]
    fn a_list_is_repeated_elements_in_xml_and_a_top_level_array_in_json() {
        let document = sample();
        assert_eq!(
            document.to_xml(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<services><service><service_code>001</service_code><metadata>false</metadata><order>1</order><formats><format>text/xml</format></formats></service></services>\n"
        );
        assert_eq!(
            document.to_json(),
            r#"[{"service_code":"001","metadata":false,"order":1,"formats":["text/xml"]}]"#
        );
    }

    #[test]
    fn xml_escapes_markup_and_drops_what_xml_cannot_carry() {
        let mut out = String::new();
        escape_into("a&b<c>d\"e'f\r\n\tg\u{0}h\u{1b}i\u{FFFF}j 中", &mut out);
        assert_eq!(
            out,
            "a&amp;b&lt;c&gt;d&quot;e&apos;f&#13;\n\tg\u{FFFD}h\u{FFFD}i\u{FFFD}j 中"
        );
    }

    #[test]
    fn suffixes() {
        assert_eq!(Format::split("a.b.json"), Some(("a.b", Format::Json)));
        assert_eq!(Format::split("x.xml"), Some(("x", Format::Xml)));
        assert_eq!(Format::split("x.XML"), None);
        assert_eq!(Format::split("x"), None);
        assert_eq!(Format::guess("/open311/v2/nothing.json"), Format::Json);
        assert_eq!(Format::guess("/open311/v2/nothing.html"), Format::Xml);
        assert_eq!(Format::guess("/open311/v2/a.json/b"), Format::Xml);
    }
}
