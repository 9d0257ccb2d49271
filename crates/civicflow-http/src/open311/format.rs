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

// ---------------------------------------------------------------------------------------------
// Typed answers

impl Document {
    /// The document of a typed answer: `root` its XML root element, `answer` what the route
    /// answers, serialized into the value tree that both formats render. A struct is a record
    /// (its fields in declaration order); a list's XML element names come from what it holds,
    /// a struct or newtype named with `#[serde(rename = "service")]`. The same type derives
    /// the route's JSON schema (`openapi::answer_schema_of`), so XML, JSON and schema come from
    /// one definition.
    pub fn of<T: serde::Serialize + ?Sized>(root: &'static str, answer: &T) -> Document {
        // The answer types hold text, numbers, booleans, structs and named lists only, which
        // the unit tests render; anything else is a bug, logged, and answered as its message.
        let (_, body) = answer.serialize(NodeSerializer).unwrap_or_else(|e| {
            tracing::error!(error = %e, root, "an Open311 answer type the value tree cannot hold");
            (None, Node::Text(format!("unserializable answer: {e}")))
        });
        Document::new(root, body)
    }
}

/// What an answer type holds that the value tree cannot (a map, bytes, an enum with data).
#[derive(Debug)]
pub struct Unrepresentable(String);

impl std::fmt::Display for Unrepresentable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unrepresentable {}

impl serde::ser::Error for Unrepresentable {
    fn custom<M: std::fmt::Display>(message: M) -> Self {
        Unrepresentable(message.to_string())
    }
}

/// A value as a node, with the name a list calls it by (a renamed struct's or newtype's).
type Named = (Option<&'static str>, Node);

/// Serializes an answer type into a [`Node`].
struct NodeSerializer;

fn unrepresentable<T>(what: &str) -> Result<T, Unrepresentable> {
    Err(Unrepresentable(format!(
        "an Open311 answer holds no {what}"
    )))
}

impl serde::Serializer for NodeSerializer {
    type Ok = Named;
    type Error = Unrepresentable;
    type SerializeSeq = ListSerializer;
    type SerializeTuple = ListSerializer;
    type SerializeTupleStruct = serde::ser::Impossible<Named, Unrepresentable>;
    type SerializeTupleVariant = serde::ser::Impossible<Named, Unrepresentable>;
    type SerializeMap = serde::ser::Impossible<Named, Unrepresentable>;
    type SerializeStruct = RecordSerializer;
    type SerializeStructVariant = serde::ser::Impossible<Named, Unrepresentable>;

    fn serialize_bool(self, v: bool) -> Result<Named, Unrepresentable> {
        Ok((None, Node::Bool(v)))
    }
    fn serialize_i8(self, v: i8) -> Result<Named, Unrepresentable> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Named, Unrepresentable> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Named, Unrepresentable> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Named, Unrepresentable> {
        Ok((None, Node::Int(v)))
    }
    fn serialize_u8(self, v: u8) -> Result<Named, Unrepresentable> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Named, Unrepresentable> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Named, Unrepresentable> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Named, Unrepresentable> {
        i64::try_from(v).map_or_else(
            |_| unrepresentable("integer past i64"),
            |v| self.serialize_i64(v),
        )
    }
    fn serialize_f32(self, v: f32) -> Result<Named, Unrepresentable> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Named, Unrepresentable> {
        Ok((None, Node::Decimal(Some(v))))
    }
    fn serialize_char(self, v: char) -> Result<Named, Unrepresentable> {
        self.serialize_str(&v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<Named, Unrepresentable> {
        Ok((None, Node::Text(v.to_owned())))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Named, Unrepresentable> {
        unrepresentable("bytes")
    }
    /// An absent value: `null` in JSON, an empty element in XML (as a missing coordinate).
    fn serialize_none(self) -> Result<Named, Unrepresentable> {
        Ok((None, Node::Decimal(None)))
    }
    fn serialize_some<T: serde::Serialize + ?Sized>(
        self,
        value: &T,
    ) -> Result<Named, Unrepresentable> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Named, Unrepresentable> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Named, Unrepresentable> {
        self.serialize_none()
    }
    /// A name from a list of names (`open`, `closed`): text.
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Named, Unrepresentable> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: serde::Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Named, Unrepresentable> {
        let (_, node) = value.serialize(self)?;
        Ok((Some(name), node))
    }
    fn serialize_newtype_variant<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Named, Unrepresentable> {
        unrepresentable("enum with data")
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<ListSerializer, Unrepresentable> {
        Ok(ListSerializer {
            item: None,
            items: Vec::with_capacity(len.unwrap_or(0)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<ListSerializer, Unrepresentable> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unrepresentable> {
        unrepresentable("tuple struct")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unrepresentable> {
        unrepresentable("enum with data")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unrepresentable> {
        unrepresentable("map")
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<RecordSerializer, Unrepresentable> {
        Ok(RecordSerializer {
            name,
            fields: Vec::with_capacity(len),
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unrepresentable> {
        unrepresentable("enum with data")
    }
}

/// A list being serialized: its items, and the element name they go by in XML.
struct ListSerializer {
    item: Option<&'static str>,
    items: Vec<Node>,
}

impl serde::ser::SerializeSeq for ListSerializer {
    type Ok = Named;
    type Error = Unrepresentable;

    fn serialize_element<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), Unrepresentable> {
        let (name, node) = value.serialize(NodeSerializer)?;
        match (name, self.item) {
            (None, _) => return unrepresentable("list item without an element name"),
            (Some(name), Some(item)) if name != item => {
                return unrepresentable("list of items with different element names")
            }
            (Some(name), _) => self.item = Some(name),
        }
        self.items.push(node);
        Ok(())
    }

    fn end(self) -> Result<Named, Unrepresentable> {
        // An empty list has no element to name; XML writes nothing for it either way.
        let item = self.item.unwrap_or("item");
        Ok((None, Node::list(item, self.items)))
    }
}

impl serde::ser::SerializeTuple for ListSerializer {
    type Ok = Named;
    type Error = Unrepresentable;

    fn serialize_element<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), Unrepresentable> {
        serde::ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Named, Unrepresentable> {
        serde::ser::SerializeSeq::end(self)
    }
}

/// A struct being serialized: its fields in order.
struct RecordSerializer {
    name: &'static str,
    fields: Vec<(&'static str, Node)>,
}

impl serde::ser::SerializeStruct for RecordSerializer {
    type Ok = Named;
    type Error = Unrepresentable;

    fn serialize_field<T: serde::Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unrepresentable> {
        let (_, node) = value.serialize(NodeSerializer)?;
        self.fields.push((key, node));
        Ok(())
    }

    fn end(self) -> Result<Named, Unrepresentable> {
        Ok((Some(self.name), Node::Record(self.fields)))
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

    /// A typed answer renders as the tree written by hand: a renamed struct names the list's
    /// elements, fields keep their order, a skipped field is left out, `None` is null.
    #[test]
    fn a_typed_answer_is_the_same_tree() {
        #[derive(serde::Serialize)]
        #[serde(rename = "service")]
        struct Service {
            service_code: &'static str,
            metadata: bool,
            order: u32,
            formats: Vec<MediaType>,
            #[serde(skip_serializing_if = "Option::is_none")]
            group: Option<&'static str>,
        }
        #[derive(serde::Serialize)]
        #[serde(rename = "format")]
        struct MediaType(&'static str);
        let typed = Document::of(
            "services",
            &vec![Service {
                service_code: "001",
                metadata: false,
                order: 1,
                formats: vec![MediaType("text/xml")],
                group: None,
            }],
        );
        assert_eq!(typed, sample());
        let lat: Option<f64> = None;
        assert_eq!(Document::of("x", &lat).body, Node::Decimal(None));
        // What the tree cannot hold is said, not dropped.
        let map = std::collections::BTreeMap::from([("a", 1)]);
        assert!(matches!(Document::of("x", &map).body, Node::Text(t) if t.contains("map")));
        assert!(
            matches!(Document::of("x", &vec![1, 2]).body, Node::Text(t) if t.contains("element name"))
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
