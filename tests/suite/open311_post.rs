//! Open311 GeoReport v2, filing a request (`POST requests.{fmt}`, `docs/open311.md` "Filing a
//! request"), over a real socket against the demo service.
//!
//! Every rule is checked in XML and in JSON. Expected values come from the spec
//! (`shared/open311.md`), the workflow files (`crates/civicflow-core/workflows/*.toml`), the
//! demo's org chart and routing rules, never from the service's own answers. A filed request
//! is then looked at through the native API, the engine, the vault and the raw log.

use std::time::Duration;

use crate::common::serve::{Launch, ServeProcess};
use crate::common::service::DemoService;
use crate::common::socket::{self, Served};
use crate::common::TempDir;
use civicflow::core::domain::access::AccessCommand;
use civicflow::core::domain::org::Acting;
use civicflow::core::engine::{Command, Engine, EngineConfig};
use civicflow::core::vault::MasterKey;
use civicflow::core::Position;
use civicflow::core::{CaseId, ManualClock, UnitId};
use civicflow::demo;
use civicflow::http::demo::DEMO_OPEN311_ROUTING;
use civicflow::http::open311::routing::ROUTING_FILE;
use civicflow::http::{Service, ServiceConfig, ServiceError};
use serde_json::{json, Value};

const XML_TYPE: &str = "text/xml; charset=utf-8";
const JSON_TYPE: &str = "application/json; charset=utf-8";
const DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const FORMATS: [&str; 2] = ["xml", "json"];

/// The demo's rules, and consumer disputes defaulting to the market regulation office (a
/// service default that differs from the civic app's own unit, the community).
fn test_routing() -> String {
    format!("{DEMO_OPEN311_ROUTING}\n[[service]]\ncode = \"consumer-dispute\"\nunit = \"market-regulation\"\n")
}

// ---------------------------------------------------------------------------------------------
// The client

/// One answer, read whole.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    allow: Option<String>,
    body: String,
}

fn answer(response: socket::Response) -> Answer {
    Answer {
        status: response.status,
        content_type: response
            .head
            .header("content-type")
            .unwrap_or("")
            .to_owned(),
        allow: response.head.header("allow").map(str::to_owned),
        body: String::from_utf8_lossy(&response.body).into_owned(),
    }
}

/// Form-encodes text: unreserved characters as they are, a space as `+`, the rest `%XX`.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A request's parameters, in order.
#[derive(Debug, Clone)]
struct Form(Vec<(String, String)>);

impl Form {
    /// A complete service request by `key`: a category and an address.
    fn request(key: &str) -> Form {
        Form(vec![
            ("api_key".into(), key.into()),
            ("service_code".into(), "service-request".into()),
            ("attribute[category]".into(), "public_facilities".into()),
            ("address_string".into(), "通惠社区 somewhere".into()),
        ])
    }

    /// With `name` set to `value` (replacing every earlier value).
    fn set(mut self, name: &str, value: &str) -> Form {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.into(), value.into()));
        self
    }

    /// With one more `name=value` (repeating is allowed).
    fn add(mut self, name: &str, value: &str) -> Form {
        self.0.push((name.into(), value.into()));
        self
    }

    /// Without `name`.
    fn without(mut self, name: &str) -> Form {
        self.0.retain(|(n, _)| n != name);
        self
    }

    fn body(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `POST path` with exactly this content type (none when `None`) and body.
async fn post_raw(served: &Served, path: &str, content_type: Option<&str>, body: &[u8]) -> Answer {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        served.addr,
        body.len()
    );
    if let Some(content_type) = content_type {
        request.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    let response = tokio::time::timeout(Duration::from_secs(20), socket::raw(served.addr, &bytes))
        .await
        .unwrap_or_else(|_| panic!("POST {path}: no answer"))
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    answer(response)
}

/// Files `form` as `requests.{format}`.
async fn file(served: &Served, format: &str, form: &Form) -> Answer {
    post_raw(
        served,
        &format!("/open311/v2/requests.{format}"),
        Some(FORM),
        form.body().as_bytes(),
    )
    .await
}

/// A filing's answer, after checking the spec's shape in its format: `(service_request_id,
/// service_notice, account_id)`.
fn filed(answer: &Answer, format: &str) -> (String, String, String) {
    assert_eq!(answer.status, 200, "{answer:?}");
    if format == "xml" {
        assert_eq!(answer.content_type, XML_TYPE, "{answer:?}");
        assert!(answer.body.starts_with(DECLARATION), "{answer:?}");
        let document = roxmltree::Document::parse(&answer.body).expect("XML");
        let root = document.root_element();
        assert_eq!(root.tag_name().name(), "service_requests", "{answer:?}");
        assert_eq!(root.tag_name().namespace(), None);
        let requests: Vec<_> = root.children().filter(|c| c.is_element()).collect();
        assert_eq!(requests.len(), 1, "one request: {answer:?}");
        assert_eq!(requests[0].tag_name().name(), "request");
        let fields: Vec<_> = requests[0].children().filter(|c| c.is_element()).collect();
        let names: Vec<&str> = fields.iter().map(|f| f.tag_name().name()).collect();
        assert_eq!(
            names,
            ["service_request_id", "service_notice", "account_id"],
            "{answer:?}"
        );
        let text = |i: usize| fields[i].text().unwrap_or("").to_owned();
        (text(0), text(1), text(2))
    } else {
        assert_eq!(answer.content_type, JSON_TYPE, "{answer:?}");
        let json: Value = serde_json::from_str(&answer.body).expect("JSON");
        let list = json.as_array().expect("a top-level array");
        assert_eq!(list.len(), 1, "{json}");
        let object = list[0].as_object().expect("an object");
        assert_eq!(object.len(), 3, "{json}");
        let text = |name: &str| {
            object[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} is a string: {json}"))
                .to_owned()
        };
        (
            text("service_request_id"),
            text("service_notice"),
            text("account_id"),
        )
    }
}

/// An Open311 error in `format` with `status`: its description.
fn error(answer: &Answer, status: u16, format: &str) -> String {
    assert_eq!(answer.status, status, "{answer:?}");
    if format == "xml" {
        assert_eq!(answer.content_type, XML_TYPE, "{answer:?}");
        assert!(answer.body.starts_with(DECLARATION), "{answer:?}");
        let document = roxmltree::Document::parse(&answer.body).expect("XML");
        let root = document.root_element();
        assert_eq!(root.tag_name().name(), "errors", "{answer:?}");
        let errors: Vec<_> = root.children().filter(|c| c.is_element()).collect();
        assert_eq!(errors.len(), 1, "{answer:?}");
        let parts: Vec<_> = errors[0].children().filter(|c| c.is_element()).collect();
        let names: Vec<&str> = parts.iter().map(|p| p.tag_name().name()).collect();
        assert_eq!(names, ["code", "description"], "{answer:?}");
        assert_eq!(parts[0].text(), Some(status.to_string().as_str()));
        parts[1].text().unwrap_or("").to_owned()
    } else {
        assert_eq!(answer.content_type, JSON_TYPE, "{answer:?}");
        let json: Value = serde_json::from_str(&answer.body).expect("JSON");
        let errors = json.as_array().expect("a top-level array");
        assert_eq!(errors.len(), 1, "{json}");
        assert_eq!(errors[0]["code"], json!(status), "{json}");
        assert_eq!(errors[0].as_object().map(|o| o.len()), Some(2), "{json}");
        errors[0]["description"]
            .as_str()
            .expect("a description")
            .to_owned()
    }
}

/// `form` filed in both formats must be refused with `status`, each description containing
/// `says`; nothing is written.
async fn refused(served: &Served, form: &Form, status: u16, says: &str) {
    for format in FORMATS {
        let before = served.head();
        let answer = file(served, format, form).await;
        let description = error(&answer, status, format);
        assert!(
            description.contains(says),
            "{format}: {description:?} should say {says:?} ({:?})",
            form.0
        );
        assert_eq!(
            served.head(),
            before,
            "a refused filing wrote: {:?}",
            form.0
        );
    }
}

/// A case as the native API shows it to the community's secretary (who sees every case).
async fn case(served: &Served, id: &str) -> Value {
    let (status, body) = served
        .json(
            "GET",
            &format!("/api/v1/cases/{id}"),
            Some(served.token("wang.secretary")),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The unit a filing of `form` (in both formats) lands at.
async fn routed(served: &Served, form: &Form) -> Vec<String> {
    let mut units = Vec::new();
    for format in FORMATS {
        let (id, _, _) = filed(&file(served, format, form).await, format);
        units.push(
            case(served, &id).await["unit_id"]
                .as_str()
                .expect("a unit")
                .to_owned(),
        );
    }
    units
}

async fn serve(tag: &str) -> Served {
    Served::start(DemoService::start(tag)).await
}

async fn serve_routed(tag: &str, rules: &str) -> Served {
    let rules = rules.to_owned();
    Served::start(DemoService::start_with(tag, move |config| {
        std::fs::write(config.data_dir.join(ROUTING_FILE), rules).expect("write the rules");
    }))
    .await
}

// ---------------------------------------------------------------------------------------------
// Success

/// A complete request with every optional parameter: a case of the service's workflow, at the
/// unit the point routes to, with the attributes as fields, the place, the Open311 channel, a
/// title from the service name and the description; the requester in the vault, never in the
/// log; the spec's answer with the notice from the first stage's deadline and the account id.
#[tokio::test]
async fn a_request_becomes_a_case_with_its_place_and_a_requester_in_the_vault() {
    let served = serve_routed("o311-post-ok", &test_routing()).await;
    let app = served.token("fixmystreet").to_owned();
    for (i, format) in FORMATS.into_iter().enumerate() {
        let phone = format!("138 1234 56{i:02}");
        let email = format!("li.wei{i}@Example.com");
        let form = Form::request(&app)
            .set("lat", "29.3130")
            .set("long", "120.0780")
            .set("address_string", "稠州北路 88 号")
            .set("address_id", "tonghui-g2-0088")
            .set("media_url", "https://photos.example.org/lamp.jpg")
            .set(
                "description",
                "路灯不亮 the street lamp is out\nsince Monday night",
            )
            .set("first_name", "伟")
            .set("last_name", "李")
            .set("phone", &phone)
            .set("email", &email)
            .set("device_id", "device-42")
            .set("account_id", "acct-0007")
            .set("jurisdiction_id", "tonghui.yiwu");
        let before = served.head();
        let (id, notice, account) = filed(&file(&served, format, &form).await, format);
        assert!(served.head() > before, "{format}: the filing wrote");
        // service-request.toml: the first stage `received` is due "4 working hours".
        assert_eq!(notice, "expected within 4 working hours", "{format}");
        assert_eq!(account, "acct-0007", "{format}: account_id is echoed");
        let case_id = CaseId::parse(&id).expect("the id is a case id");

        let case = case(&served, &id).await;
        assert_eq!(case["workflow"], "service-request@1", "{case}");
        assert_eq!(
            case["unit_id"], "grid-2",
            "the point lies in grid 2's box: {case}"
        );
        assert_eq!(case["channel"], "open311", "{case}");
        assert_eq!(case["stage"], "received", "{case}");
        assert_eq!(
            case["fields"],
            json!({"category": "public_facilities"}),
            "{case}"
        );
        assert_eq!(
            case["place"],
            json!({
                "lat": 29.313, "long": 120.078, "address": "稠州北路 88 号",
                "address_id": "tonghui-g2-0088",
                "media_url": "https://photos.example.org/lamp.jpg",
            }),
            "{case}"
        );
        assert_eq!(
            case["title"], "有事找社区 service request: 路灯不亮 the street lamp is out",
            "{case}"
        );
        assert_eq!(
            case["description"],
            "路灯不亮 the street lamp is out\nsince Monday night"
        );
        assert!(case["requester"].is_object(), "a requester: {case}");

        // The log holds none of the personal data, nor the device or account id.
        let events = served
            .engine
            .log()
            .read_all(Position::FIRST, usize::MAX)
            .expect("the log");
        let digits = format!("138123456{i:02}");
        for event in &events {
            for secret in [
                digits.as_str(),
                email.as_str(),
                "li.wei",
                "李伟",
                "device-42",
                "acct-0007",
            ] {
                assert!(
                    !event
                        .payload
                        .windows(secret.len())
                        .any(|w| w == secret.as_bytes()),
                    "{secret} is in the log: event {} {}",
                    event.position.get(),
                    event.event_type
                );
            }
        }
        // The vault has them, normalised.
        let details = served
            .engine
            .view_contact(&demo::acting("wang.secretary"), case_id, "open311 test")
            .expect("the secretary may see the contact")
            .expect("present");
        assert_eq!(details.name(), Some("李伟"), "family name first in Chinese");
        assert_eq!(details.phone(), Some(format!("+86{digits}").as_str()));
        assert_eq!(
            details.email(),
            Some(format!("li.wei{i}@example.com").as_str())
        );
    }
}

/// The minimal request: no description (the title is the service's name), no requester (no
/// vault entry), no account id (an empty element, `""` in JSON). Empty optional parameters
/// are the same as absent ones.
#[tokio::test]
async fn a_minimal_request_and_empty_optional_parameters() {
    let served = serve("o311-post-minimal").await;
    let app = served.token("fixmystreet").to_owned();
    for format in FORMATS {
        let form = Form::request(&app)
            .set("description", "")
            .set("first_name", "")
            .set("last_name", "")
            .set("phone", "")
            .set("email", "")
            .set("media_url", "")
            .set("lat", "")
            .set("long", "")
            .set("address_id", "")
            .set("account_id", "")
            .set("jurisdiction_id", "")
            .set("attribute[location]", "");
        let answer = file(&served, format, &form).await;
        let (id, notice, account) = filed(&answer, format);
        assert_eq!(notice, "expected within 4 working hours");
        assert_eq!(account, "", "{format}");
        if format == "xml" {
            assert!(
                answer.body.contains("<account_id></account_id>"),
                "{answer:?}"
            );
        }
        let case = case(&served, &id).await;
        assert_eq!(case["title"], "有事找社区 service request", "{case}");
        assert_eq!(case["requester"], Value::Null, "{case}");
        assert_eq!(case["fields"], json!({"category": "public_facilities"}));
        assert_eq!(
            case["place"],
            json!({"lat": null, "long": null, "address": "通惠社区 somewhere",
                   "address_id": null, "media_url": null})
        );
        // No routing file: the civic app's own unit.
        assert_eq!(case["unit_id"], "tonghui", "{case}");
    }
    // Every service takes filings; each notice is its first stage's deadline (the files).
    for (code, attribute, value, notice) in [
        (
            "consumer-dispute",
            "attribute[kind]",
            "refund",
            "expected within 1 working day",
        ),
        (
            "one-stop-errand",
            "attribute[errand]",
            "food_permit",
            "expected within 1 working day",
        ),
    ] {
        let form = Form::request(&app)
            .set("service_code", code)
            .without("attribute[category]")
            .set(attribute, value);
        for format in FORMATS {
            let (id, got, _) = filed(&file(&served, format, &form).await, format);
            assert_eq!(got, notice, "{code}");
            let case = case(&served, &id).await;
            assert_eq!(case["workflow"], format!("{code}@1"));
        }
    }
    // A number attribute, and the percent-encoding a client might choose.
    let form = Form::request(&app)
        .set("service_code", "consumer-dispute")
        .without("attribute[category]")
        .set("attribute[kind]", "price")
        .set("attribute[amount]", "128.50")
        .set("attribute[shop]", "shop-it-302");
    let (id, _, _) = filed(&file(&served, "json", &form).await, "json");
    assert_eq!(
        case(&served, &id).await["fields"],
        json!({"kind": "price", "amount": 128.5, "shop": "shop-it-302"})
    );
    let raw = format!(
        "api_key={app}&service_code=service-request&attribute%5bcategory%5d=safety&address%5Fstring=%E6%96%B0%E5%A4%A9%E5%9C%B0+1%2B1"
    );
    let (id, _, _) = filed(
        &post_raw(
            &served,
            "/open311/v2/requests.json",
            Some(FORM),
            raw.as_bytes(),
        )
        .await,
        "json",
    );
    let case = case(&served, &id).await;
    assert_eq!(case["fields"], json!({"category": "safety"}));
    assert_eq!(case["place"]["address"], "新天地 1+1");
}

/// Another role that may open the workflow may file with its own token; a description of
/// exactly 4000 characters is accepted.
#[tokio::test]
async fn any_role_the_workflow_lets_open_may_file() {
    let served = serve("o311-post-roles").await;
    let form = Form::request(served.token("sun.grid3"))
        .set("description", &"路".repeat(4000))
        .set("attribute[location]", "骆宾王公园 east gate");
    for format in FORMATS {
        let (id, _, _) = filed(&file(&served, format, &form).await, format);
        let case = case(&served, &id).await;
        assert_eq!(
            case["unit_id"], "grid-3",
            "the grid worker's own unit: {case}"
        );
        assert_eq!(case["fields"]["location"], "骆宾王公园 east gate");
        assert_eq!(
            case["description"].as_str().map(|d| d.chars().count()),
            Some(4000)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Routing

/// The first rule that matches wins: areas, address ids, address words, the service's
/// default; without a match, the key's own unit.
#[tokio::test]
async fn requests_are_routed_by_area_address_service_and_default() {
    let served = serve_routed("o311-post-routing", &test_routing()).await;
    let app = served.token("fixmystreet").to_owned();
    let base = Form::request(&app).without("address_string");
    let point = |lat: &str, long: &str| base.clone().set("lat", lat).set("long", long);
    for (form, unit, why) in [
        (point("29.3070", "120.0780"), "grid-1", "grid 1's box"),
        (point("29.3130", "120.0800"), "grid-2", "grid 2's box"),
        (point("29.3100", "120.0700"), "grid-3", "grid 3's box"),
        (
            point("29.3070", "120.0780").set("address_string", "新天地 2 号门"),
            "grid-1",
            "a point in a box wins over the address",
        ),
        (
            point("30.0000", "121.0000").set("address_string", "新天地 2 号门"),
            "grid-3",
            "outside every box, the address words decide",
        ),
        (
            base.clone().set("address_id", "tonghui-g2-0017"),
            "grid-2",
            "an address id prefix",
        ),
        (
            base.clone()
                .set("address_id", "tonghui-g1-0001")
                .set("address_string", "骆宾王公园"),
            "grid-1",
            "the address id before the address words",
        ),
        (
            base.clone().set("address_string", "稠州北路 100 号"),
            "grid-2",
            "an address word",
        ),
        (
            base.clone()
                .set("service_code", "consumer-dispute")
                .without("attribute[category]")
                .set("attribute[kind]", "quality")
                .set("address_string", "somewhere else"),
            "market-regulation",
            "the service's default",
        ),
        (
            base.clone()
                .set("service_code", "consumer-dispute")
                .without("attribute[category]")
                .set("attribute[kind]", "quality")
                .set("address_string", "义乌之心 B1"),
            "grid-1",
            "an address word before the service's default",
        ),
        (
            base.clone().set("address_string", "somewhere else"),
            "tonghui",
            "no rule: the civic app's own unit",
        ),
    ] {
        assert_eq!(routed(&served, &form).await, [unit, unit], "{why}");
    }
    // No rule: a grid worker's key files at its own grid.
    let form = Form::request(served.token("zhao.grid2")).set("address_string", "elsewhere");
    assert_eq!(routed(&served, &form).await, ["grid-2", "grid-2"]);
}

/// Without a routing file every request is filed at its key's unit.
#[tokio::test]
async fn without_a_routing_file_requests_go_to_the_keys_unit() {
    let served = serve("o311-post-norouting").await;
    let form = Form::request(served.token("fixmystreet"))
        .set("lat", "29.3070")
        .set("long", "120.0780")
        .set("address_id", "tonghui-g1-0001");
    assert_eq!(routed(&served, &form).await, ["tonghui", "tonghui"]);
}

/// A routing file that is not valid, or names a unit the org chart lacks, fails the start
/// with an error that names the file and the fault.
#[test]
fn a_bad_routing_file_fails_the_start() {
    for (rules, says) in [
        (
            "[[service]]\ncode = \"service-request\"\nunit = \"grid-9\"\n".to_owned(),
            "grid-9",
        ),
        (
            format!(
                "{DEMO_OPEN311_ROUTING}\n[[address]]\nunit = \"nowhere\"\nkeywords = [\"x\"]\n"
            ),
            "nowhere",
        ),
        (
            "[[area]]\nunit = \"grid-1\"\nsouth = 1.0\n".to_owned(),
            "missing field",
        ),
        ("not toml at all [".to_owned(), ROUTING_FILE),
    ] {
        let dir = TempDir::new("o311-post-badrouting");
        let key = MasterKey::generate().expect("randomness");
        let engine = std::sync::Arc::new(
            Engine::open(
                EngineConfig::new(dir.path())
                    .clock(std::sync::Arc::new(ManualClock::new(demo::START)))
                    .master_key(key.clone()),
            )
            .expect("engine"),
        );
        demo::build_org(&engine).expect("the demo's org chart");
        std::fs::write(dir.path().join(ROUTING_FILE), &rules).expect("write");
        let error = Service::with_engine(engine, ServiceConfig::new(dir.path(), key))
            .expect_err("a bad routing file fails the start");
        assert!(
            matches!(error, ServiceError::Open311Routing(_)),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(ROUTING_FILE), "{message}");
        assert!(message.contains(says), "{message} should say {says}");
    }
}

// ---------------------------------------------------------------------------------------------
// The key

/// 403 for a missing, empty, unknown, malformed or revoked `api_key`, and for a key whose role
/// may not open the service. A bearer header is not an api_key.
#[tokio::test]
async fn the_api_key_is_required_valid_and_allowed() {
    let demo = DemoService::start("o311-post-keys");
    let system = Acting::system(UnitId::new("tonghui").expect("valid"));
    let (revoked_id, revoked) = demo
        .service
        .issue_token(&system, demo::acting("fixmystreet"), "to revoke")
        .expect("a token");
    demo.service
        .engine()
        .submit(
            &system,
            Command::Access(AccessCommand::Revoke {
                token: revoked_id,
                reason: "test".into(),
            }),
        )
        .expect("revoked");
    // Issuing refreshes the service's index of valid tokens.
    demo.service
        .issue_token(&system, demo::acting("fixmystreet"), "another")
        .expect("a token");
    let revoked = revoked.expose().to_owned();
    let served = Served::start(demo).await;
    let app = served.token("fixmystreet").to_owned();
    let unknown = format!("cft_{}", "0".repeat(64));
    for (form, says) in [
        (
            Form::request(&app).without("api_key"),
            "api_key is required",
        ),
        (
            Form::request(&app).set("api_key", ""),
            "api_key is required",
        ),
        (
            Form::request(&app).set("api_key", "   "),
            "api_key is required",
        ),
        (
            Form::request(&app).set("api_key", &unknown),
            "unknown or revoked",
        ),
        (
            Form::request(&app).set("api_key", "not a token"),
            "unknown or revoked",
        ),
        (
            Form::request(&app).set("api_key", &revoked),
            "unknown or revoked",
        ),
        (
            Form::request(&app).set("api_key", &format!("{app}x")),
            "unknown or revoked",
        ),
        // The district's auditor may not open service requests (its role is not in [open]).
        (
            Form::request(served.token("audit.office")),
            "may not file service-request",
        ),
        // A department officer may not open a consumer dispute.
        (
            Form::request(served.token("qian.officer"))
                .set("service_code", "consumer-dispute")
                .without("attribute[category]")
                .set("attribute[kind]", "price"),
            "may not file consumer-dispute",
        ),
    ] {
        refused(&served, &form, 403, says).await;
    }
    // A valid token in the Authorization header does not stand in for the api_key.
    let body = Form::request(&app).without("api_key").body();
    let mut request = format!(
        "POST /open311/v2/requests.json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {app}\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\n\r\n",
        served.addr,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    let response = socket::raw(served.addr, &request).await.expect("an answer");
    error(&answer(response), 403, "json");
}

// ---------------------------------------------------------------------------------------------
// The request's parameters

/// `service_code` is required (400) and must be a listed service (404): a workflow civic apps
/// may not open is not one, whatever the key's role.
#[tokio::test]
async fn the_service_code_is_required_and_must_be_listed() {
    let served = serve("o311-post-service").await;
    let app = served.token("fixmystreet").to_owned();
    refused(
        &served,
        &Form::request(&app).without("service_code"),
        400,
        "service_code is required",
    )
    .await;
    refused(
        &served,
        &Form::request(&app).set("service_code", ""),
        400,
        "service_code is required",
    )
    .await;
    for code in [
        "pothole",
        "district-affairs",
        "SERVICE-REQUEST",
        "service-request ",
    ] {
        refused(
            &served,
            &Form::request(&app).set("service_code", code),
            404,
            "not found",
        )
        .await;
    }
    // The community's secretary may open district affairs natively; not through Open311.
    refused(
        &served,
        &Form::request(served.token("wang.secretary")).set("service_code", "district-affairs"),
        404,
        "service_code 'district-affairs' not found",
    )
    .await;
}

/// One location is required: `lat` and `long` together (finite numbers in range), or
/// `address_string`, or `address_id`; the place's texts are checked (the engine's rules).
#[tokio::test]
async fn a_location_is_required_and_well_formed() {
    let served = serve("o311-post-location").await;
    let app = served.token("fixmystreet").to_owned();
    let bare = Form::request(&app).without("address_string");
    let point = |lat: &str, long: &str| bare.clone().set("lat", lat).set("long", long);
    for (form, says) in [
        (bare.clone(), "a location is required"),
        (
            bare.clone()
                .set("address_string", "")
                .set("address_id", "")
                .set("lat", "")
                .set("long", ""),
            "a location is required",
        ),
        (
            bare.clone().set("address_string", "   "),
            "a location is required",
        ),
        (bare.clone().set("lat", "29.3"), "long: missing"),
        (bare.clone().set("long", "120.1"), "lat: missing"),
        (
            bare.clone().set("lat", "29.3").set("address_string", "x"),
            "long: missing",
        ),
        (point("abc", "120"), "lat must be a number"),
        (point("29.3", "east"), "long must be a number"),
        (point("NaN", "120"), "lat must be a number"),
        (point("29", "inf"), "long must be a number"),
        (point("91", "120"), "lat: 91 is not a latitude (-90 to 90)"),
        (point("-90.5", "120"), "lat: -90.5 is not a latitude"),
        (
            point("29", "180.0001"),
            "long: 180.0001 is not a longitude (-180 to 180)",
        ),
        (point("1e999", "120"), "lat must be a number"),
        (point("29,3", "120"), "lat must be a number"),
        (point("0x1D", "120"), "lat must be a number"),
        (
            bare.clone().set("address_string", &"路".repeat(501)),
            "address_string",
        ),
        (
            bare.clone().set("address_id", &"a".repeat(201)),
            "address_id",
        ),
        (
            Form::request(&app).set("media_url", "ftp://example.org/a.jpg"),
            "media_url",
        ),
    ] {
        refused(&served, &form, 400, says).await;
    }
    // Both coordinates at their limits are a place; so is an address id alone.
    for form in [
        point("-90", "180"),
        point("90.0", "-180.0"),
        point("-0", "0"),
        bare.clone().set("address_id", "tonghui-g3-0001"),
    ] {
        for format in FORMATS {
            filed(&file(&served, format, &form).await, format);
        }
    }
}

/// Attributes map to the opening fields by the advertised datatypes: list keys among the
/// values, numbers that parse, required ones present, no unknown codes, one value each
/// except a multivaluelist.
#[tokio::test]
async fn attributes_are_checked_by_their_service_definition() {
    let served = serve("o311-post-attributes").await;
    let app = served.token("fixmystreet").to_owned();
    let dispute = Form::request(&app)
        .set("service_code", "consumer-dispute")
        .without("attribute[category]")
        .set("attribute[kind]", "refund");
    for (form, says) in [
        (
            Form::request(&app).without("attribute[category]"),
            "attribute[category] is required",
        ),
        (
            Form::request(&app).set("attribute[category]", ""),
            "attribute[category] is required",
        ),
        (
            Form::request(&app).set("attribute[category]", "fire"),
            "attribute[category]: \"fire\" is not one of: public_facilities, environment",
        ),
        (
            Form::request(&app).set("attribute[category]", "Public_Facilities"),
            "attribute[category]: \"Public_Facilities\" is not one of:",
        ),
        (
            Form::request(&app).add("attribute[category]", "safety"),
            "attribute[category] is given more than once",
        ),
        (
            Form::request(&app)
                .without("attribute[category]")
                .add("attribute[category][]", "safety")
                .add("attribute[category][]", "other"),
            "takes one value",
        ),
        (
            Form::request(&app).set("attribute[colour]", "red"),
            "attribute[colour] is not an attribute of service-request",
        ),
        (
            Form::request(&app).set("attribute[category", "x"),
            "is not an attribute parameter",
        ),
        (
            Form::request(&app).set("attribute[]", "x"),
            "is not an attribute parameter",
        ),
        (
            Form::request(&app).set("attribute[location][x]", "x"),
            "is not an attribute parameter",
        ),
        (
            Form::request(&app).set("attribute[location]", &"x".repeat(4001)),
            "attribute[location] has 4001 characters",
        ),
        (
            dispute.clone().set("attribute[amount]", "twelve"),
            "attribute[amount] must be a decimal number",
        ),
        (
            dispute.clone().set("attribute[amount]", "NaN"),
            "attribute[amount] must be a decimal number",
        ),
        (
            dispute.clone().set("attribute[amount]", "1e400"),
            "attribute[amount] must be a decimal number",
        ),
        (
            dispute.clone().set("attribute[shop]", "shop-zz-999"),
            "attribute[shop]: there is no org unit 'shop-zz-999'",
        ),
        (
            dispute.clone().set("attribute[shop]", &"s".repeat(200)),
            "attribute[shop] must be the id of an org unit",
        ),
        (
            dispute.clone().set("attribute[category]", "safety"),
            "attribute[category] is not an attribute of consumer-dispute",
        ),
    ] {
        refused(&served, &form, 400, says).await;
    }
}

/// The description is at most 4000 characters; the requester's details are checked and the
/// errors name the parameter, never its value.
#[tokio::test]
async fn the_description_and_the_requester_are_checked() {
    let served = serve("o311-post-text").await;
    let app = served.token("fixmystreet").to_owned();
    refused(
        &served,
        &Form::request(&app).set("description", &"路".repeat(4001)),
        400,
        "description has 4001 characters; at most 4000",
    )
    .await;
    for (form, says, secret) in [
        (
            Form::request(&app).set("phone", "call me maybe"),
            "phone",
            "call me maybe",
        ),
        (
            Form::request(&app).set("email", "li.wei-at-example"),
            "email",
            "li.wei-at-example",
        ),
        (
            Form::request(&app).set("first_name", &"伟".repeat(101)),
            "first_name and last_name",
            "伟伟伟伟伟伟伟伟伟伟",
        ),
    ] {
        refused(&served, &form, 400, says).await;
        let answer = file(&served, "json", &form).await;
        assert!(!answer.body.contains(secret), "{answer:?}");
    }
}

/// `jurisdiction_id`, in the body or the query, is this endpoint's or empty; another is 404.
#[tokio::test]
async fn the_jurisdiction_must_be_ours() {
    let served = serve("o311-post-jurisdiction").await;
    let app = served.token("fixmystreet").to_owned();
    refused(
        &served,
        &Form::request(&app).set("jurisdiction_id", "sf.gov"),
        404,
        "unknown jurisdiction_id 'sf.gov'",
    )
    .await;
    refused(
        &served,
        &Form::request(&app)
            .add("jurisdiction_id", "tonghui.yiwu")
            .add("jurisdiction_id", "tonghui.yiwu"),
        400,
        "jurisdiction_id is given more than once",
    )
    .await;
    for format in FORMATS {
        let answer = post_raw(
            &served,
            &format!("/open311/v2/requests.{format}?jurisdiction_id=sf.gov"),
            Some(FORM),
            Form::request(&app).body().as_bytes(),
        )
        .await;
        error(&answer, 404, format);
        let answer = post_raw(
            &served,
            &format!("/open311/v2/requests.{format}?jurisdiction_id=tonghui.yiwu"),
            Some(FORM),
            Form::request(&app).body().as_bytes(),
        )
        .await;
        filed(&answer, format);
    }
}

/// The body must be a form in UTF-8: other content types, malformed escapes, bytes that are
/// not UTF-8 and repeated parameters are 400.
#[tokio::test]
async fn the_body_must_be_a_well_formed_form() {
    let served = serve("o311-post-form").await;
    let app = served.token("fixmystreet").to_owned();
    let good = Form::request(&app).body();
    for format in FORMATS {
        let path = format!("/open311/v2/requests.{format}");
        for content_type in [
            None,
            Some("application/json"),
            Some("text/plain"),
            Some("multipart/form-data; boundary=xyz"),
            Some("application/x-www-form-urlencoded; charset=iso-8859-1"),
        ] {
            let before = served.head();
            let answer = post_raw(&served, &path, content_type, good.as_bytes()).await;
            let description = error(&answer, 400, format);
            assert!(
                description.contains("form-urlencoded") || description.contains("charset"),
                "{content_type:?}: {description}"
            );
            assert_eq!(served.head(), before);
        }
        // The media type's case and a quoted charset are fine.
        for content_type in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-URLEncoded; Charset=\"UTF-8\"",
        ] {
            filed(
                &post_raw(&served, &path, Some(content_type), good.as_bytes()).await,
                format,
            );
        }
        for (body, says) in [
            (
                format!("{good}&description=100%"),
                "not followed by two hex digits",
            ),
            (
                format!("{good}&description=%G1"),
                "not followed by two hex digits",
            ),
            (format!("{good}&description=%FF%FE"), "is not UTF-8"),
            (format!("{good}&%C3=1"), "is not UTF-8"),
            (
                format!("{good}&service_code=service-request"),
                "service_code is given more than once",
            ),
            (
                format!("{good}&lat=1&lat=1&long=2"),
                "lat is given more than once",
            ),
        ] {
            let answer = post_raw(&served, &path, Some(FORM), body.as_bytes()).await;
            let description = error(&answer, 400, format);
            assert!(description.contains(says), "{body}: {description}");
        }
        // Raw (unencoded) UTF-8 is still UTF-8; unknown parameters are ignored.
        let raw = format!("{good}&description=路灯 不亮&unknown=1&unknown=2&=x&&");
        let (id, _, _) = filed(
            &post_raw(&served, &path, Some(FORM), raw.as_bytes()).await,
            format,
        );
        assert_eq!(case(&served, &id).await["description"], "路灯 不亮");
        // Invalid UTF-8 sent raw.
        let mut bytes = good.clone().into_bytes();
        bytes.extend_from_slice(b"&description=\xff\xfe");
        error(
            &post_raw(&served, &path, Some(FORM), &bytes).await,
            400,
            format,
        );
    }
}

/// Other methods on `requests.{fmt}` are Open311 errors: 405 with `Allow` naming POST (and
/// GET once reading requests is served; until then GET is an Open311 404).
#[tokio::test]
async fn other_methods_on_requests_are_open311_errors() {
    let served = serve("o311-post-methods").await;
    for format in FORMATS {
        let path = format!("/open311/v2/requests.{format}");
        let response = socket::request(served.addr, "GET", &path, &[], None)
            .await
            .expect("an answer");
        let read = answer(response);
        let reads_served = read.status == 200;
        if !reads_served {
            error(&read, 404, format);
        }
        for method in ["PUT", "DELETE", "PATCH"] {
            let response = socket::request(served.addr, method, &path, &[], None)
                .await
                .expect("an answer");
            let answer = answer(response);
            error(&answer, 405, format);
            let want = if reads_served {
                "GET, HEAD, POST"
            } else {
                "POST"
            };
            assert_eq!(answer.allow.as_deref(), Some(want), "{method} {path}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed bodies

/// No body, however malformed, gets a server error: every answer is 200, an Open311 error in
/// the path's format, or the body limit's 413 (over 64 KiB). The service keeps serving.
#[tokio::test]
async fn malformed_bodies_never_get_a_server_error() {
    let served = serve("o311-post-malformed").await;
    let app = served.token("fixmystreet").to_owned();
    let good = Form::request(&app).body();
    let mut bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"&".to_vec(),
        b"=".to_vec(),
        b"=&=&=&==".to_vec(),
        b"%%%%".to_vec(),
        b"%00=%00".to_vec(),
        b"\x00\x01\x02\xff\xfe\xfd".to_vec(),
        (0..=255u8).cycle().take(4096).collect(),
        b"api_key".to_vec(),
        b"api_key=&api_key=".to_vec(),
        b"attribute[=1".to_vec(),
        b"attribute]]=1&attribute[[x]]=2".to_vec(),
        format!("{good}&lat=1e308&long=1e308").into_bytes(),
        format!("{good}&lat=-1e-400&long=0").into_bytes(),
        format!("{good}&lat=99999999999999999999999999999999&long=1").into_bytes(),
        format!("{good}&lat=NaN&long=NaN").into_bytes(),
        format!("{good}&lat=Infinity&long=-Infinity").into_bytes(),
        format!("{good}&lat=%E2%80%8B29&long=120").into_bytes(),
        format!("{good}&description=%00%01%1B%7F%EF%BF%BE").into_bytes(),
        format!("{good}&media_url=javascript:alert(1)").into_bytes(),
        format!("{good}&phone=%2B%2B%2B&email=%40%40").into_bytes(),
        format!(
            "{}&service_code=%F0%9F%92%A9",
            Form::request(&app).without("service_code").body()
        )
        .into_bytes(),
        format!("api_key={}", "x".repeat(60_000)).into_bytes(),
    ];
    // Thousands of attributes, distinct or repeated, within the limit.
    let mut many = good.clone();
    for i in 0..3000 {
        many.push_str(&format!("&attribute[a{i}]=1"));
    }
    bodies.push(many.into_bytes());
    let mut repeated = good.clone();
    for _ in 0..2500 {
        repeated.push_str("&attribute[category][]=other");
    }
    bodies.push(repeated.into_bytes());
    // Ten thousand attributes, and a huge description: over the limit.
    let mut ten_thousand = good.clone();
    for i in 0..10_000 {
        ten_thousand.push_str(&format!("&attribute[a{i}]=1"));
    }
    bodies.push(ten_thousand.into_bytes());
    bodies.push(format!("{good}&description={}", "x".repeat(70_000)).into_bytes());
    for format in FORMATS {
        let path = format!("/open311/v2/requests.{format}");
        for body in &bodies {
            let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
            let answer = post_raw(&served, &path, Some(FORM), body).await;
            assert!(answer.status < 500, "{shown}: {answer:?}");
            match answer.status {
                200 => {
                    filed(&answer, format);
                }
                413 => {
                    // Refused by its Content-Length, still as an Open311 error in the path's
                    // format (it was the limit layer's plain text before .ci/schemathesis).
                    assert!(body.len() > 64 * 1024, "{shown}: {answer:?}");
                    error(&answer, 413, format);
                }
                status => {
                    error(&answer, status, format);
                }
            }
        }
    }
    // A chunked body over the limit (no Content-Length to refuse it by): an Open311 413.
    let mut request = format!(
        "POST /open311/v2/requests.json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked\r\n\r\n",
        served.addr
    )
    .into_bytes();
    let chunk = "x".repeat(8192);
    for _ in 0..10 {
        request.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    match socket::raw(served.addr, &request).await {
        Ok(response) => {
            let answer = answer(response);
            assert_eq!(answer.status, 413, "{answer:?}");
            error(&answer, 413, "json");
        }
        // The server may close before it has read the rest: not a server error.
        Err(e) => eprintln!("the chunked body over the limit: the connection closed ({e})"),
    }
    // Still serving and filing.
    let form = Form::request(&app);
    filed(&file(&served, "xml", &form).await, "xml");
}

// ---------------------------------------------------------------------------------------------
// The demo

/// `civicflow serve --demo` writes the demo's routing rules to the data directory and files
/// by them: the civic app's request at a point in grid 2's box is grid 2's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_writes_the_routing_file_and_files_by_it() {
    let dir = TempDir::new("o311-post-serve");
    let data = dir.path().join("data");
    // On a port it picks (see `common::serve`).
    let mut server = ServeProcess::start(
        &data,
        Launch {
            demo: true,
            ..Launch::default()
        },
    );
    server.wait_ready(Duration::from_secs(60)).await;
    let addr = server.addr();
    let outcome = async {
        let rules = std::fs::read_to_string(data.join(ROUTING_FILE)).map_err(|e| e.to_string())?;
        if rules != DEMO_OPEN311_ROUTING {
            return Err(format!("the routing file is not the demo's: {rules}"));
        }
        let tokens: Value = serde_json::from_str(
            &std::fs::read_to_string(data.join("demo-tokens.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let token = |role: &str| {
            tokens
                .as_array()
                .and_then(|all| all.iter().find(|t| t["role"] == role))
                .and_then(|t| t["token"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("no {role} token"))
        };
        let form = Form::request(&token("open311_client")?)
            .set("lat", "29.3130")
            .set("long", "120.0780");
        let response = socket::request(
            addr,
            "POST",
            "/open311/v2/requests.json",
            &[],
            Some((FORM, form.body().as_bytes())),
        )
        .await
        .map_err(|e| e.to_string())?;
        let (id, notice, _) = filed(&answer(response), "json");
        if notice != "expected within 4 working hours" {
            return Err(format!("notice {notice}"));
        }
        let response = socket::request(
            addr,
            "GET",
            &format!("/api/v1/cases/{id}"),
            &[(
                "Authorization".to_owned(),
                format!("Bearer {}", token("community_admin")?),
            )],
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
        let case: Value = serde_json::from_slice(&response.body).map_err(|e| e.to_string())?;
        if case["unit_id"] != "grid-2" {
            return Err(format!("filed at {}, not grid-2: {case}", case["unit_id"]));
        }
        Ok(())
    }
    .await;
    server.kill();
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
