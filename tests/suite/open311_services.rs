//! Open311 GeoReport v2, first slice (`docs/open311.md`): formats, errors, discovery, the
//! service list and service definitions, over a real socket against the demo service.
//!
//! Every rule is checked in XML and in JSON. XML is read with a real parser (`roxmltree`),
//! and each XML answer is also turned into JSON by the spec's mirror rule (a list element
//! becomes an array, a leaf its text) and compared with the JSON answer, so the two formats
//! cannot say different things. Expected values come from the spec and from the workflow
//! files (`crates/civicflow-core/workflows/*.toml`), not from the service's answers.

use std::time::Duration;

use crate::common::open311::{as_text, child_names, mirror, DECLARATION, JSON_TYPE, XML_TYPE};
use crate::common::service::DemoService;
use crate::common::socket::{self, Served};
use civicflow::core::domain::org::roles;
use serde_json::{json, Value};

/// The workflows whose opening rule names `open311_client` (the workflow files).
const SERVICES: [&str; 3] = ["consumer-dispute", "one-stop-errand", "service-request"];

/// The element names whose children form a list (each one is an array in JSON).
const LISTS: [&str; 6] = [
    "services",
    "endpoints",
    "formats",
    "attributes",
    "values",
    "errors",
];

/// One answer, read whole.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    /// The body as JSON, after checking the content type.
    fn json(&self) -> Value {
        assert_eq!(self.content_type, JSON_TYPE, "{self:?}");
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The body parsed as XML (after checking the content type and the declaration), turned
    /// into JSON by the mirror rule, with the root's name.
    fn xml(&self) -> (String, Value) {
        assert_eq!(self.content_type, XML_TYPE, "{self:?}");
        assert!(
            self.body.starts_with(DECLARATION),
            "no XML declaration first: {self:?}"
        );
        let document = roxmltree::Document::parse(&self.body)
            .unwrap_or_else(|e| panic!("not XML ({e}): {self:?}"));
        let root = document.root_element();
        assert_eq!(root.tag_name().namespace(), None, "no namespace");
        (root.tag_name().name().to_owned(), mirror(root, &LISTS))
    }
}

/// The keys of a JSON object, sorted (JSON objects have no order; the XML checks the spec's).
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// `names`, sorted, to compare with [`keys`].
fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    names.sort();
    names
}

async fn serve(tag: &str) -> Served {
    Served::start(DemoService::start(tag)).await
}

async fn get(served: &Served, path: &str) -> Answer {
    call(served, "GET", path).await
}

async fn call(served: &Served, method: &str, path: &str) -> Answer {
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        socket::request(served.addr, method, path, &[], None),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {path}: no answer"))
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    answer(response)
}

fn answer(response: socket::Response) -> Answer {
    Answer {
        status: response.status,
        content_type: response
            .head
            .header("content-type")
            .unwrap_or("")
            .to_owned(),
        body: String::from_utf8_lossy(&response.body).into_owned(),
    }
}

/// Both formats of a resource: `(XML root, XML mirrored to JSON, JSON)`, after checking the
/// status, the content types, and that the two say the same.
async fn both(served: &Served, stem: &str, query: &str, status: u16) -> (String, Value, Value) {
    let xml = get(served, &format!("{stem}.xml{query}")).await;
    let json = get(served, &format!("{stem}.json{query}")).await;
    assert_eq!(xml.status, status, "{stem}.xml{query}: {xml:?}");
    assert_eq!(json.status, status, "{stem}.json{query}: {json:?}");
    let (root, mirrored) = xml.xml();
    let json = json.json();
    assert_eq!(
        mirrored,
        as_text(&json),
        "{stem}: the XML and JSON answers differ"
    );
    (root, mirrored, json)
}

/// An Open311 error answer: the status, the content type, one `{code, description}`, the
/// code a number in JSON; the description.
fn assert_error(answer: &Answer, status: u16, xml: bool) -> String {
    assert_eq!(answer.status, status, "{answer:?}");
    if xml {
        let (root, mirrored) = answer.xml();
        assert_eq!(root, "errors", "{answer:?}");
        let document = roxmltree::Document::parse(&answer.body).expect("XML");
        let errors = document.root_element();
        assert_eq!(child_names(errors), ["error"], "{answer:?}");
        let error = errors.first_element_child().expect("an error");
        assert_eq!(child_names(error), ["code", "description"], "{answer:?}");
        assert_eq!(mirrored[0]["code"], status.to_string(), "{answer:?}");
        mirrored[0]["description"]
            .as_str()
            .expect("a description")
            .to_owned()
    } else {
        let json = answer.json();
        let errors = json.as_array().expect("a top-level array");
        assert_eq!(errors.len(), 1, "{json}");
        assert_eq!(errors[0]["code"], json!(status), "a number: {json}");
        let object = errors[0].as_object().expect("an object");
        assert_eq!(object.len(), 2, "code and description only: {json}");
        errors[0]["description"]
            .as_str()
            .expect("a description")
            .to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery

#[tokio::test]
async fn discovery_names_this_endpoint_in_both_formats() {
    let served = serve("o311-discovery").await;
    let (root, _, json) = both(&served, "/open311/v2/discovery", "", 200).await;
    assert_eq!(root, "discovery");
    assert_eq!(
        keys(&json),
        sorted(&["changeset", "contact", "key_service", "endpoints"])
    );
    let changeset = json["changeset"].as_str().expect("a changeset");
    assert!(
        changeset.len() == 25 && changeset.ends_with("+08:00") && changeset.contains('T'),
        "an ISO 8601 datetime with a zone: {changeset}"
    );
    assert!(!json["contact"].as_str().expect("contact").is_empty());
    assert!(!json["key_service"]
        .as_str()
        .expect("key_service")
        .is_empty());
    let endpoints = json["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1, "{json}");
    assert_eq!(
        endpoints[0],
        json!({
            "specification": "http://wiki.open311.org/GeoReport_v2",
            "url": format!("http://{}/open311/v2", served.addr),
            "changeset": changeset,
            "type": "production",
            "formats": ["text/xml", "application/json"],
        })
    );

    // The XML layout of the Service Discovery spec, element by element.
    let xml = get(&served, "/open311/v2/discovery.xml").await;
    let document = roxmltree::Document::parse(&xml.body).expect("XML");
    let discovery = document.root_element();
    assert_eq!(
        child_names(discovery),
        ["changeset", "contact", "key_service", "endpoints"]
    );
    let endpoints = discovery.last_element_child().expect("endpoints");
    assert_eq!(child_names(endpoints), ["endpoint"]);
    let endpoint = endpoints.first_element_child().expect("an endpoint");
    assert_eq!(
        child_names(endpoint),
        ["specification", "url", "changeset", "type", "formats"]
    );
    let formats = endpoint.last_element_child().expect("formats");
    assert_eq!(child_names(formats), ["format", "format"]);
}

/// `Host` and `X-Forwarded-Proto` make the endpoint's URL; a malformed `Host` does not.
#[tokio::test]
async fn the_endpoint_url_follows_host_and_forwarded_proto() {
    let served = serve("o311-base-url").await;
    for (suffix, headers, url) in [
        (
            "xml",
            "Host: civic.example.org\r\n",
            "http://civic.example.org/open311/v2",
        ),
        (
            "json",
            "Host: civic.example.org:8443\r\nX-Forwarded-Proto: https\r\n",
            "https://civic.example.org:8443/open311/v2",
        ),
        (
            "xml",
            "Host: civic.example.org\r\nX-Forwarded-Proto: HTTPS, http\r\n",
            "https://civic.example.org/open311/v2",
        ),
        (
            "json",
            "Host: civic.example.org\r\nX-Forwarded-Proto: ftp\r\n",
            "http://civic.example.org/open311/v2",
        ),
    ] {
        let request = format!(
            "GET /open311/v2/discovery.{suffix} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"
        );
        let answer = answer(
            socket::raw(served.addr, request.as_bytes())
                .await
                .expect("a response"),
        );
        assert_eq!(answer.status, 200, "{answer:?}");
        let got = if suffix == "xml" {
            answer.xml().1["endpoints"][0]["url"].clone()
        } else {
            answer.json()["endpoints"][0]["url"].clone()
        };
        assert_eq!(got, url, "{headers:?}");
    }
    // Without a usable Host (HTTP/1.0 without one; a Host with a path in it): the address
    // the service is configured to listen on, never the header's text.
    for headers in ["", "Host: evil.example.org/phish\r\n"] {
        let request = format!("GET /open311/v2/discovery.json HTTP/1.0\r\n{headers}\r\n");
        let answer = answer(
            socket::raw(served.addr, request.as_bytes())
                .await
                .expect("a response"),
        );
        if answer.status == 400 && headers.contains("phish") {
            // The HTTP layer may refuse such a Host itself; that is fine too.
            continue;
        }
        assert_eq!(answer.status, 200, "{headers:?}: {answer:?}");
        let url = answer.json()["endpoints"][0]["url"]
            .as_str()
            .expect("a url")
            .to_owned();
        assert!(
            url.starts_with("http://") && url.ends_with("/open311/v2") && !url.contains("evil"),
            "{headers:?}: {url}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Services

#[tokio::test]
async fn the_services_are_the_workflows_open_to_civic_apps() {
    let served = serve("o311-services").await;
    let (root, _, json) = both(&served, "/open311/v2/services", "", 200).await;
    assert_eq!(root, "services");
    let services = json.as_array().expect("a top-level array");
    let codes: Vec<&str> = services
        .iter()
        .map(|s| {
            s["service_code"]
                .as_str()
                .expect("service_code is a string")
        })
        .collect();
    assert_eq!(codes, SERVICES);

    // The same set from the engine's registry: the newest version of every workflow whose
    // opening rule names open311_client; a workflow that does not (district affairs) is out.
    let registry = served.engine.definitions();
    let open: Vec<String> = registry
        .latest_all()
        .into_iter()
        .filter(|d| {
            d.open
                .roles
                .iter()
                .any(|r| r.as_str() == roles::OPEN311_CLIENT)
        })
        .map(|d| d.id.as_str().to_owned())
        .collect();
    assert_eq!(open, SERVICES);
    assert!(!codes.contains(&"district-affairs"));

    for service in services {
        let code = service["service_code"].as_str().expect("code");
        assert_eq!(
            keys(service),
            sorted(&[
                "service_code",
                "service_name",
                "description",
                "metadata",
                "type",
                "keywords",
                "group"
            ]),
            "{code}: the spec's fields"
        );
        let definition = registry
            .latest(&civicflow::core::domain::workflow::WorkflowId::new(code).expect("an id"))
            .expect("a definition");
        assert_eq!(service["service_name"], definition.name.as_str());
        assert_eq!(service["description"], definition.description.as_str());
        // Every one asks for fields at opening, so a client must read its definition.
        assert_eq!(service["metadata"], json!(true), "{code}");
        assert_eq!(service["type"], "realtime", "{code}");
        assert!(service["keywords"].is_string() && service["group"].is_string());
    }
    let by_code = |code: &str| {
        services
            .iter()
            .find(|s| s["service_code"] == code)
            .cloned()
            .expect("listed")
    };
    assert_eq!(
        by_code("service-request")["keywords"],
        "public_facilities, environment, neighbourhood, business_environment, safety, consumer, other"
    );
    assert_eq!(by_code("service-request")["group"], "request");
    assert_eq!(by_code("consumer-dispute")["group"], "dispute");
    assert_eq!(by_code("one-stop-errand")["group"], "errand");

    // The XML element order, service by service.
    let xml = get(&served, "/open311/v2/services.xml").await;
    let document = roxmltree::Document::parse(&xml.body).expect("XML");
    for service in document
        .root_element()
        .children()
        .filter(|c| c.is_element())
    {
        assert_eq!(service.tag_name().name(), "service");
        assert_eq!(
            child_names(service),
            [
                "service_code",
                "service_name",
                "description",
                "metadata",
                "type",
                "keywords",
                "group"
            ]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Service definitions

/// The attribute order of the spec, `values` only for the list datatypes.
fn attribute_keys(list: bool) -> Vec<&'static str> {
    let mut keys = vec![
        "variable",
        "code",
        "datatype",
        "required",
        "datatype_description",
        "order",
        "description",
    ];
    if list {
        keys.push("values");
    }
    keys
}

#[tokio::test]
async fn a_service_definition_lists_the_opening_fields_as_attributes() {
    let served = serve("o311-definition").await;
    // service-request: a required choice, then an optional free text.
    let (root, _, json) = both(&served, "/open311/v2/services/service-request", "", 200).await;
    assert_eq!(root, "service_definition");
    assert_eq!(keys(&json), sorted(&["service_code", "attributes"]));
    assert_eq!(json["service_code"], "service-request");
    let attributes = json["attributes"].as_array().expect("attributes");
    assert_eq!(attributes.len(), 2, "{json}");
    let category = &attributes[0];
    assert_eq!(keys(category), sorted(&attribute_keys(true)));
    assert_eq!(category["variable"], json!(true));
    assert_eq!(category["code"], "category");
    assert_eq!(category["datatype"], "singlevaluelist");
    assert_eq!(category["required"], json!(true));
    assert_eq!(category["order"], json!(1));
    assert_eq!(category["description"], "类别 category");
    let value_keys: Vec<&str> = category["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v["key"].as_str().expect("a string key"))
        .collect();
    assert_eq!(
        value_keys,
        [
            "public_facilities",
            "environment",
            "neighbourhood",
            "business_environment",
            "safety",
            "consumer",
            "other"
        ]
    );
    assert_eq!(
        category["values"][0],
        json!({"key": "public_facilities", "name": "public facilities"})
    );
    let location = &attributes[1];
    assert_eq!(keys(location), sorted(&attribute_keys(false)));
    assert_eq!(location["code"], "location");
    assert_eq!(location["datatype"], "text");
    assert_eq!(location["required"], json!(false));
    assert_eq!(location["order"], json!(2));
    assert_eq!(location["datatype_description"], "");

    // consumer-dispute: a choice, an org unit (a one-line id), a number.
    let (_, _, json) = both(&served, "/open311/v2/services/consumer-dispute", "", 200).await;
    let got: Vec<(&str, &str, bool, i64)> = json["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| {
            (
                a["code"].as_str().expect("code"),
                a["datatype"].as_str().expect("datatype"),
                a["required"].as_bool().expect("a boolean"),
                a["order"].as_i64().expect("a number"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("kind", "singlevaluelist", true, 1),
            ("shop", "string", false, 2),
            ("amount", "number", false, 3),
        ]
    );

    // The XML element order, attribute by attribute, and each value's.
    let xml = get(&served, "/open311/v2/services/service-request.xml").await;
    let document = roxmltree::Document::parse(&xml.body).expect("XML");
    let root = document.root_element();
    assert_eq!(child_names(root), ["service_code", "attributes"]);
    let attributes: Vec<roxmltree::Node> = root
        .last_element_child()
        .expect("attributes")
        .children()
        .filter(|c| c.is_element())
        .collect();
    assert_eq!(child_names(attributes[0]), attribute_keys(true));
    assert_eq!(child_names(attributes[1]), attribute_keys(false));
    let first_value = attributes[0]
        .last_element_child()
        .expect("values")
        .first_element_child()
        .expect("a value");
    assert_eq!(first_value.tag_name().name(), "value");
    assert_eq!(child_names(first_value), ["key", "name"]);
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn an_unknown_service_code_is_an_open311_404_in_the_format_asked() {
    let served = serve("o311-unknown-code").await;
    for code in [
        "nothing-here",
        "district-affairs",
        "SERVICE-REQUEST",
        "",
        "001",
    ] {
        let xml = get(&served, &format!("/open311/v2/services/{code}.xml")).await;
        let description = assert_error(&xml, 404, true);
        assert!(description.contains("not found"), "{description}");
        let json = get(&served, &format!("/open311/v2/services/{code}.json")).await;
        assert_error(&json, 404, false);
    }
}

#[tokio::test]
async fn a_missing_or_unknown_suffix_is_an_open311_404_in_xml() {
    let served = serve("o311-suffix").await;
    for segment in [
        "service-request",
        "service-request.",
        "service-request.html",
        "service-request.XML",
        "service-request.Json",
        "service-request.json.bak",
        "service-request.xml%00",
    ] {
        let answer = get(&served, &format!("/open311/v2/services/{segment}")).await;
        assert_error(&answer, 404, true);
    }
}

#[tokio::test]
async fn any_other_path_under_the_base_is_an_open311_404_and_the_rest_keeps_the_native_one() {
    let served = serve("o311-fallback").await;
    for (method, path, xml) in [
        ("GET", "/open311/v2", true),
        ("GET", "/open311/v2/", true),
        ("GET", "/open311/v2/nothing", true),
        ("GET", "/open311/v2/nothing.xml", true),
        // Request reads are served (`open311_get`); a malformed id is a 404.
        ("GET", "/open311/v2/requests/1.json", false),
        ("GET", "/open311/v2/requests/a/b.json", false),
        ("GET", "/open311/v2/tokens/abc.xml", true),
        ("GET", "/open311/v2/services/", true),
        ("GET", "/open311/v2/services/a/b.json", false),
        ("GET", "/open311/v2/discovery", true),
        ("GET", "/open311/v2/services.html", true),
        ("POST", "/open311/v2/nothing.json", false),
        ("DELETE", "/open311/v2/a/b/c", true),
    ] {
        let answer = call(&served, method, path).await;
        let description = assert_error(&answer, 404, xml);
        assert!(!description.is_empty(), "{method} {path}");
    }
    // Outside the base path: the native API's 404.
    for path in ["/open311", "/open311/v3/services.xml", "/api/v1/nothing"] {
        let answer = get(&served, path).await;
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        let body: Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(
            body["error"]["code"], "not_found",
            "{path}: the native error"
        );
    }
    // The Open311 resources themselves take GET only.
    let answer = call(&served, "POST", "/open311/v2/services.xml").await;
    assert_eq!(answer.status, 405, "{answer:?}");
}

/// Error text that repeats the request is escaped; what XML cannot carry is replaced.
#[tokio::test]
async fn error_descriptions_are_escaped() {
    let served = serve("o311-escaping").await;
    let answer = get(
        &served,
        "/open311/v2/services/%3Ca%20href%3D'x'%3E%26%22%01.xml",
    )
    .await;
    let description = assert_error(&answer, 404, true);
    assert!(
        description.contains("<a href='x'>&\"\u{FFFD}"),
        "{description}"
    );
    let answer = get(&served, "/open311/v2/services/%3Ca%3E%26%22%01.json").await;
    let description = assert_error(&answer, 404, false);
    assert!(description.contains("<a>&\"\u{1}"), "{description}");
}

// ---------------------------------------------------------------------------------------------
// Jurisdiction and other query parameters

#[tokio::test]
async fn jurisdiction_id_must_be_this_endpoints_when_given() {
    let served = serve("o311-jurisdiction").await;
    for stem in [
        "/open311/v2/discovery",
        "/open311/v2/services",
        "/open311/v2/services/service-request",
    ] {
        // Ours, empty (the same as absent), and unknown parameters, which are ignored.
        for query in [
            "?jurisdiction_id=tonghui.yiwu",
            "?jurisdiction_id=",
            "?jurisdiction_id=tonghui%2Eyiwu&page=2&whatever=%FF",
            "?page_size=abc&extensions=true",
        ] {
            both(&served, stem, query, 200).await;
        }
        // Another jurisdiction: 404, in the format asked.
        for query in [
            "?jurisdiction_id=sf.gov",
            "?jurisdiction_id=tonghui.yiwu&jurisdiction_id=sf.gov",
            "?jurisdiction_id=%FF",
        ] {
            let xml = get(&served, &format!("{stem}.xml{query}")).await;
            let description = assert_error(&xml, 404, true);
            assert!(description.contains("jurisdiction_id"), "{description}");
            let json = get(&served, &format!("{stem}.json{query}")).await;
            assert_error(&json, 404, false);
        }
    }
}

#[tokio::test]
async fn the_jurisdiction_is_configurable() {
    let demo = DemoService::start_with("o311-jurisdiction-config", |config| {
        config.open311_jurisdiction = "elsewhere.example".into();
    });
    let served = Served::start(demo).await;
    both(
        &served,
        "/open311/v2/services",
        "?jurisdiction_id=elsewhere.example",
        200,
    )
    .await;
    let answer = get(
        &served,
        "/open311/v2/services.json?jurisdiction_id=tonghui.yiwu",
    )
    .await;
    assert_error(&answer, 404, false);
}

// ---------------------------------------------------------------------------------------------
// Malformed input

/// No malformed path or query gets a server error; under the base path, every answer is an
/// Open311 document or error in a format it declares.
#[tokio::test]
async fn malformed_paths_never_get_a_server_error() {
    let served = serve("o311-malformed").await;
    let long = "a".repeat(10_000);
    let mut paths: Vec<String> = [
        "/open311/v2/services/%FF%FE.xml",
        "/open311/v2/services/%00.json",
        "/open311/v2/services/%.xml",
        "/open311/v2/services/%%.json",
        "/open311/v2/services/%E4%B8%AD.json",
        "/open311/v2/services/%2e%2e%2F%2e%2e%2Fetc%2Fpasswd.xml",
        "/open311/v2/services/..%2F..%2Fservices.json",
        "/open311/v2/services/service-request.xml/",
        "/open311/v2/services//service-request.xml",
        "/open311/v2/services/service-request.xml?%=%&&==&jurisdiction_id",
        "/open311/v2/services.json?jurisdiction_id=%",
        "/open311/v2/services.xml?jurisdiction_id=%E4%B8",
        "/open311/v2/discovery.xml?%00=%00",
        "/open311/v2/./services.xml",
        "/open311/v2/../v2/services.json",
        "/open311/v2/%2e%2e/services.json",
        "/open311/v2/services/.json",
        "/open311/v2/services/..json",
        "/open311/v2/services/a.b.c.xml",
        "/open311/v2/\u{4e2d}.json",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    paths.push(format!("/open311/v2/services/{long}.xml"));
    paths.push(format!("/open311/v2/{long}.json"));
    paths.push(format!("/open311/v2/services.json?jurisdiction_id={long}"));
    for path in &paths {
        let response = socket::request(served.addr, "GET", path, &[], None).await;
        let Ok(response) = response else {
            // The HTTP layer may close on a request it cannot read (a raw non-ASCII byte);
            // that is not a server error.
            continue;
        };
        let answer = answer(response);
        let shown = &path[..path.len().min(80)];
        assert!(answer.status < 500, "{shown}: {answer:?}");
        if answer.status == 200 {
            continue;
        }
        if answer.content_type == XML_TYPE {
            let (root, _) = answer.xml();
            assert_eq!(root, "errors", "{shown}");
        } else if answer.content_type == JSON_TYPE {
            let json = answer.json();
            assert!(
                json.is_array(),
                "{shown}: an Open311 error, not the native one: {json}"
            );
        } else {
            // Refused by the HTTP layer before routing (it answers with an empty body).
            assert!(
                answer.status == 400 || answer.status == 414,
                "{shown}: {answer:?}"
            );
        }
    }
    // Still serving.
    both(&served, "/open311/v2/services", "", 200).await;
}
