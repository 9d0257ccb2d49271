//! Open311 GeoReport v2, following requests (`docs/open311.md`, "Following requests"):
//! `GET requests.{fmt}` with its filters, window, paging and `extensions=true` notes,
//! `GET requests/{id}.{fmt}`, and mySociety's `GET servicerequestupdates.{fmt}`, over a real
//! socket against the demo service, in XML and in JSON.
//!
//! XML is read with a real parser and turned into JSON by the spec's mirror rule; each XML
//! answer must say what the JSON answer says. Cases are opened through the native API (a grid
//! worker's token), with a requester's name, phone and email, which no Open311 answer may
//! ever show. Expected values come from the spec, the workflow files and the demo's org
//! chart, not from the service's answers.

use std::time::Duration;

use crate::common::open311::{as_text, child_names, mirror, DECLARATION, JSON_TYPE, XML_TYPE};
use crate::common::service::DemoService;
use crate::common::socket::{self, Served};
use civicflow::core::calendar::Zone;
use civicflow::core::{ManualClock, Timestamp};
use civicflow::demo;
use serde_json::{json, Value};

/// The elements of a request, in the spec's order.
const REQUEST_FIELDS: [&str; 17] = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
];

/// The elements of an update (mySociety), in order.
const UPDATE_FIELDS: [&str; 6] = [
    "update_id",
    "service_request_id",
    "status",
    "updated_datetime",
    "description",
    "media_url",
];

/// The element names whose children form a list.
const LISTS: [&str; 4] = [
    "service_requests",
    "notes",
    "service_request_updates",
    "errors",
];

/// The requester of every case the tests open: none of it may appear in any Open311 answer.
const NAME: &str = "欧阳测试者";
const PHONE: &str = "13912345678";
const EMAIL: &str = "ouyang.private@example.org";
/// A free-text note of an action that quotes the phone number.
const NOTE_WITH_PHONE: &str = "please call 13912345678 before noon";

const DAY: Duration = Duration::from_secs(86_400);

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(self.content_type, JSON_TYPE, "{self:?}");
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    fn xml(&self) -> (String, Value) {
        assert_eq!(self.content_type, XML_TYPE, "{self:?}");
        assert!(self.body.starts_with(DECLARATION), "{self:?}");
        let document = roxmltree::Document::parse(&self.body)
            .unwrap_or_else(|e| panic!("not XML ({e}): {self:?}"));
        let root = document.root_element();
        assert_eq!(root.tag_name().namespace(), None, "no namespace");
        (root.tag_name().name().to_owned(), mirror(root, &LISTS))
    }
}

/// The demo service on a socket, and its clock.
async fn serve(tag: &str) -> (Served, ManualClock) {
    // These tests read anonymously from one address far faster than any client would (150
    // reads at once in `malformed_parameters_never_get_a_5xx`): the per-address limit, which
    // `http_limits` tests, is set out of their way.
    let demo = DemoService::start_with(tag, |config| {
        config.address_rate_limit = civicflow::http::RateLimit::per_second(100_000);
    });
    let clock = demo.clock.clone();
    (Served::start(demo).await, clock)
}

async fn get(served: &Served, path: &str) -> Answer {
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        socket::request(served.addr, "GET", path, &[], None),
    )
    .await
    .unwrap_or_else(|_| panic!("GET {path}: no answer"))
    .unwrap_or_else(|e| panic!("GET {path}: {e}"));
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

/// Both formats of `{stem}.xml{query}` and `{stem}.json{query}`: the JSON answer, after
/// checking the status, the root, the content types, and that both say the same.
async fn both(served: &Served, stem: &str, query: &str, root: &str) -> Value {
    let xml = get(served, &format!("{stem}.xml{query}")).await;
    let json = get(served, &format!("{stem}.json{query}")).await;
    assert_eq!(xml.status, 200, "{stem}.xml{query}: {xml:?}");
    assert_eq!(json.status, 200, "{stem}.json{query}: {json:?}");
    let (xml_root, mirrored) = xml.xml();
    assert_eq!(xml_root, root, "{xml:?}");
    let json = json.json();
    assert!(json.is_array(), "a top-level array: {json}");
    assert_eq!(
        mirrored,
        as_text(&json),
        "{stem}{query}: XML and JSON differ"
    );
    json
}

/// The ids of a list of requests (or updates' requests), in order.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|r| {
            r["service_request_id"]
                .as_str()
                .unwrap_or_else(|| panic!("a string id: {r}"))
                .to_owned()
        })
        .collect()
}

/// An Open311 error in `format`: the status, the error list; its description.
async fn error(served: &Served, path: &str, status: u16) -> String {
    let answer = get(served, path).await;
    assert_eq!(answer.status, status, "{path}: {answer:?}");
    if path.contains(".json") && !path.contains(".json/") {
        let json = answer.json();
        assert_eq!(json[0]["code"], json!(status), "{json}");
        json[0]["description"]
            .as_str()
            .expect("a description")
            .to_owned()
    } else {
        let (root, mirrored) = answer.xml();
        assert_eq!(root, "errors", "{path}: {answer:?}");
        assert_eq!(mirrored[0]["code"], status.to_string());
        mirrored[0]["description"]
            .as_str()
            .expect("a description")
            .to_owned()
    }
}

/// Each `(query, words)`: `GET requests.{xml,json}` with the query is an Open311 400 in its
/// format whose description contains `words` (the parameter at fault, or why).
async fn refused_naming(served: &Served, cases: &[(&str, &str)]) {
    for (query, words) in cases {
        for format in ["xml", "json"] {
            let description = error(
                served,
                &format!("/open311/v2/requests.{format}{query}"),
                400,
            )
            .await;
            assert!(description.contains(words), "{query}: {description}");
        }
    }
}

/// `at` as the demo's answers write it: RFC 3339 in Asia/Shanghai, the demo calendar's zone.
fn shanghai_time(at: Timestamp) -> String {
    Zone::shanghai().format(at)
}

/// A time for a query string (the `+` of the zone escaped).
fn q(at: Timestamp) -> String {
    shanghai_time(at).replace('+', "%2B")
}

fn shift(at: Timestamp, by: Duration, forward: bool) -> Timestamp {
    let micros = i64::try_from(by.as_micros()).expect("small");
    Timestamp::from_unix_micros(if forward {
        at.as_unix_micros() + micros
    } else {
        at.as_unix_micros() - micros
    })
}

/// Opens a service request through the native API, as grid 1's worker, with a requester;
/// with a place when `place` is given. Its id.
async fn open(served: &Served, description: &str, place: Option<Value>) -> String {
    let mut body = json!({
        "workflow": "service-request",
        "unit_id": "grid-1",
        "title": "Open311 reads: 路灯不亮",
        "description": description,
        "fields": {"category": "public_facilities"},
        "requester": {"name": NAME, "phone": PHONE, "email": EMAIL},
    });
    if let Some(place) = place {
        body["place"] = place;
    }
    let (status, created) = served
        .json(
            "POST",
            "/api/v1/cases",
            Some(served.token("li.grid1")),
            Some(&body),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("an id").to_owned()
}

async fn act(served: &Served, case: &str, action: &str, fields: Value) {
    let (status, answer) = served
        .json(
            "POST",
            &format!("/api/v1/cases/{case}/actions"),
            Some(served.token("li.grid1")),
            Some(&{
                let mut body = fields;
                body["action"] = json!(action);
                body
            }),
        )
        .await;
    assert!(
        status == 200 || status == 201,
        "{action}: {status} {answer}"
    );
}

fn unit_name(id: &str) -> &'static str {
    demo::UNITS
        .iter()
        .find(|(unit, ..)| *unit == id)
        .map(|(_, name, ..)| *name)
        .expect("a demo unit")
}

fn is_local_datetime(text: &str) -> bool {
    text.len() == 25 && text.ends_with("+08:00") && text.as_bytes()[10] == b'T'
}

// ---------------------------------------------------------------------------------------------
// One request: fields and formats

#[tokio::test]
async fn a_request_has_every_field_in_the_specs_order_in_both_formats() {
    let (served, _clock) = serve("o311get-fields").await;
    let place = json!({
        "lat": 29.3069, "long": 120.0751, "address": "稠城街道通惠社区 3 幢",
        "address_id": "TH-0003", "media_url": "https://example.org/photo.jpg"
    });
    let case = open(&served, "路灯不亮 & <坏了>", Some(place)).await;
    let stem = format!("/open311/v2/requests/{case}");
    let list = both(&served, &stem, "", "service_requests").await;
    assert_eq!(list.as_array().expect("a list").len(), 1, "{list}");
    let request = &list[0];
    let object = request.as_object().expect("an object");
    assert_eq!(object.len(), REQUEST_FIELDS.len(), "{request}");
    assert_eq!(request["service_request_id"], json!(case));
    assert_eq!(request["status"], "open");
    assert_eq!(request["status_notes"], "");
    assert_eq!(request["service_name"], "有事找社区 service request");
    assert_eq!(request["service_code"], "service-request");
    assert_eq!(request["description"], "路灯不亮 & <坏了>");
    assert_eq!(request["agency_responsible"], unit_name("grid-1"));
    // The first stage's deadline (`received`: 4 working hours), as POST answers it.
    assert_eq!(request["service_notice"], "expected within 4 working hours");
    for field in [
        "requested_datetime",
        "updated_datetime",
        "expected_datetime",
    ] {
        let text = request[field].as_str().expect("text");
        assert!(is_local_datetime(text), "{field}: {text}");
    }
    assert_eq!(
        request["requested_datetime"],
        json!(shanghai_time(served.engine.now()))
    );
    assert_eq!(request["address"], "稠城街道通惠社区 3 幢");
    assert_eq!(request["address_id"], "TH-0003");
    assert_eq!(request["zipcode"], "");
    assert_eq!(request["lat"], json!(29.3069), "a number");
    assert_eq!(request["long"], json!(120.0751), "a number");
    assert_eq!(request["media_url"], "https://example.org/photo.jpg");

    // The XML: the spec's element order, every element open and closed, no notes unasked.
    let xml = get(&served, &format!("{stem}.xml")).await;
    let document = roxmltree::Document::parse(&xml.body).expect("XML");
    let root = document.root_element();
    assert_eq!(child_names(root), ["request"]);
    let element = root.first_element_child().expect("a request");
    assert_eq!(child_names(element), REQUEST_FIELDS);
    assert!(xml.body.contains("<zipcode></zipcode>"), "{}", xml.body);
    assert!(xml.body.contains("&amp; &lt;坏了&gt;"), "{}", xml.body);

    // Without a place: empty elements, `null` coordinates in JSON.
    let bare = open(&served, "no place", None).await;
    let list = both(
        &served,
        &format!("/open311/v2/requests/{bare}"),
        "",
        "service_requests",
    )
    .await;
    for field in ["address", "address_id", "media_url", "zipcode"] {
        assert_eq!(list[0][field], "", "{field}");
    }
    assert_eq!(list[0]["lat"], Value::Null);
    assert_eq!(list[0]["long"], Value::Null);
}

#[tokio::test]
async fn a_single_request_that_is_not_there_is_a_404() {
    let (served, _clock) = serve("o311get-404").await;
    let run = &served.run;
    for (path, xml) in [
        (
            "/open311/v2/requests/0192f3a0-0000-7000-8000-00000000dead.json".to_owned(),
            false,
        ),
        (
            "/open311/v2/requests/0192f3a0-0000-7000-8000-00000000dead.xml".to_owned(),
            true,
        ),
        ("/open311/v2/requests/not-an-id.json".to_owned(), false),
        ("/open311/v2/requests/%FF%FE.xml".to_owned(), true),
        ("/open311/v2/requests/.json".to_owned(), false),
        // A case of a workflow that is not an Open311 service is no request.
        (
            format!("/open311/v2/requests/{}.json", run.district_case),
            false,
        ),
        // No format, or another one.
        (format!("/open311/v2/requests/{}", run.smooth_case), true),
        (
            format!("/open311/v2/requests/{}.html", run.smooth_case),
            true,
        ),
        (
            format!("/open311/v2/requests/{}.JSON", run.smooth_case),
            true,
        ),
    ] {
        let answer = get(&served, &path).await;
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        if xml {
            assert_eq!(answer.xml().0, "errors", "{path}");
        } else {
            assert_eq!(answer.json()[0]["code"], 404, "{path}");
        }
    }
    // A real one answers; the demo's smooth request is closed, with the reply as its notes.
    let list = both(
        &served,
        &format!("/open311/v2/requests/{}", run.smooth_case),
        "",
        "service_requests",
    )
    .await;
    assert_eq!(ids(&list), [run.smooth_case.to_string()]);
    assert_eq!(list[0]["status"], "closed");
    assert_eq!(list[0]["expected_datetime"], "", "no deadline runs");
    // Other jurisdictions are not here; ours is.
    let description = error(
        &served,
        &format!(
            "/open311/v2/requests/{}.json?jurisdiction_id=elsewhere",
            run.smooth_case
        ),
        404,
    )
    .await;
    assert!(description.contains("jurisdiction_id"), "{description}");
    both(
        &served,
        &format!("/open311/v2/requests/{}", run.smooth_case),
        "?jurisdiction_id=tonghui.yiwu",
        "service_requests",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The list: filters

#[tokio::test]
async fn the_list_is_newest_first_and_only_open311_services() {
    let (served, clock) = serve("o311get-list").await;
    clock.advance(Duration::from_secs(60));
    let first = open(&served, "first", None).await;
    clock.advance(Duration::from_secs(60));
    let second = open(&served, "second", None).await;
    let list = both(&served, "/open311/v2/requests", "", "service_requests").await;
    let got = ids(&list);
    assert_eq!(got[..2], [second.clone(), first.clone()], "newest first");
    let run = &served.run;
    for case in [run.smooth_case, run.dispute_case, run.errand_case] {
        assert!(got.contains(&case.to_string()), "{case} is a request");
    }
    assert!(
        !got.contains(&run.district_case.to_string()),
        "district affairs are not an Open311 service"
    );
    for request in list.as_array().expect("a list") {
        assert_eq!(
            request.as_object().expect("object").len(),
            REQUEST_FIELDS.len()
        );
        assert!(
            ["service-request", "consumer-dispute", "one-stop-errand"]
                .contains(&request["service_code"].as_str().expect("code")),
            "{request}"
        );
    }
    let times: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["requested_datetime"].as_str().expect("a time"))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    // The XML list: `request` elements of the spec's fields.
    let xml = get(&served, "/open311/v2/requests.xml").await;
    let document = roxmltree::Document::parse(&xml.body).expect("XML");
    for request in document
        .root_element()
        .children()
        .filter(|c| c.is_element())
    {
        assert_eq!(request.tag_name().name(), "request");
        assert_eq!(child_names(request), REQUEST_FIELDS);
    }
}

#[tokio::test]
async fn service_code_and_status_filter_and_combine() {
    let (served, _clock) = serve("o311get-filters").await;
    let open_case = open(&served, "an open one", None).await;
    let run = &served.run;
    let all = ids(&both(&served, "/open311/v2/requests", "", "service_requests").await);

    let disputes = both(
        &served,
        "/open311/v2/requests",
        "?service_code=consumer-dispute",
        "service_requests",
    )
    .await;
    assert_eq!(ids(&disputes), [run.dispute_case.to_string()]);

    // A comma list, with spaces and an empty item; or the parameter repeated.
    for query in [
        "?service_code=consumer-dispute,%20one-stop-errand,",
        "?service_code=consumer-dispute&service_code=one-stop-errand",
    ] {
        let list = both(&served, "/open311/v2/requests", query, "service_requests").await;
        let mut got = ids(&list);
        got.sort();
        let mut want = vec![run.dispute_case.to_string(), run.errand_case.to_string()];
        want.sort();
        assert_eq!(got, want, "{query}");
    }
    // A code that is no Open311 service matches nothing.
    for query in [
        "?service_code=district-affairs",
        "?service_code=nothing-here",
        "?service_code=%00%FF",
    ] {
        let list = both(&served, "/open311/v2/requests", query, "service_requests").await;
        assert_eq!(ids(&list), Vec::<String>::new(), "{query}");
    }

    let open_list = both(
        &served,
        "/open311/v2/requests",
        "?status=open",
        "service_requests",
    )
    .await;
    let closed_list = both(
        &served,
        "/open311/v2/requests",
        "?status=closed",
        "service_requests",
    )
    .await;
    assert!(open_list
        .as_array()
        .expect("list")
        .iter()
        .all(|r| r["status"] == "open"));
    assert!(closed_list
        .as_array()
        .expect("list")
        .iter()
        .all(|r| r["status"] == "closed"));
    assert!(ids(&open_list).contains(&open_case));
    assert!(ids(&closed_list).contains(&run.smooth_case.to_string()));
    assert_eq!(
        ids(&open_list).len() + ids(&closed_list).len(),
        all.len(),
        "open and closed partition the list"
    );
    // Both statuses (any case, a comma list or repeated) and an empty status: every request.
    for query in [
        "?status=open,closed",
        "?status=OPEN&status=Closed",
        "?status=",
        "?status=open,",
    ] {
        let list = both(&served, "/open311/v2/requests", query, "service_requests").await;
        let want = if query == "?status=open," {
            ids(&open_list)
        } else {
            all.clone()
        };
        assert_eq!(ids(&list), want, "{query}");
    }
    // Combined: every filter must match.
    let list = both(
        &served,
        "/open311/v2/requests",
        "?service_code=service-request&status=closed",
        "service_requests",
    )
    .await;
    assert!(ids(&list).contains(&run.smooth_case.to_string()));
    assert!(list
        .as_array()
        .expect("list")
        .iter()
        .all(|r| r["status"] == "closed" && r["service_code"] == "service-request"));
    let list = both(
        &served,
        "/open311/v2/requests",
        "?service_code=consumer-dispute&status=open&status=closed",
        "service_requests",
    )
    .await;
    assert_eq!(ids(&list), [run.dispute_case.to_string()]);

    // Bad values: 400 naming the parameter, in the format asked for.
    refused_naming(
        &served,
        &[
            ("?status=pending", "status"),
            ("?status=open,maybe", "status"),
            ("?extensions=yes", "extensions"),
            ("?service_request_id=12,x", "service_request_id"),
        ],
    )
    .await;
}

#[tokio::test]
async fn service_request_id_overrides_every_other_filter() {
    let (served, _clock) = serve("o311get-ids").await;
    let run = &served.run;
    let open_case = open(&served, "open", None).await;
    let smooth = run.smooth_case.to_string();
    // Filters that would exclude both, and a window long past: the ids win.
    let query = format!(
        "?service_request_id={open_case},{smooth},0192f3a0-0000-7000-8000-00000000dead,{open_case}\
         &service_code=consumer-dispute&status=closed\
         &start_date=2001-01-01T00:00:00Z&end_date=2001-01-02T00:00:00Z"
    );
    let list = both(&served, "/open311/v2/requests", &query, "service_requests").await;
    let mut got = ids(&list);
    got.sort();
    let mut want = vec![open_case.clone(), smooth.clone()];
    want.sort();
    assert_eq!(got, want, "unknown ids and repeats are left out");
    // Newest first here too.
    assert_eq!(ids(&list)[0], open_case);
    // A case of another workflow is not a request, even by id.
    let list = both(
        &served,
        "/open311/v2/requests",
        &format!("?service_request_id={}", run.district_case),
        "service_requests",
    )
    .await;
    assert_eq!(ids(&list), Vec::<String>::new());
    // Paging still applies to the ids.
    let list = both(
        &served,
        "/open311/v2/requests",
        &format!("?service_request_id={open_case},{smooth}&page_size=1&page=2"),
        "service_requests",
    )
    .await;
    assert_eq!(ids(&list), vec![smooth.clone()]);
}

// ---------------------------------------------------------------------------------------------
// The window

#[tokio::test]
async fn the_window_defaults_to_the_last_90_days_and_spans_at_most_90() {
    let (served, clock) = serve("o311get-window").await;
    let run = &served.run;
    let old = open(&served, "old", None).await;
    let old_time = served.engine.now();
    clock.advance(DAY * 91);
    let new = open(&served, "new", None).await;
    let now = served.engine.now();

    // Default: the last 90 days.
    let got = ids(&both(&served, "/open311/v2/requests", "", "service_requests").await);
    assert_eq!(got, vec![new.clone()], "only the last 90 days");

    // Both bounds, inclusive; exactly 90 days is allowed.
    let query = format!(
        "?start_date={}&end_date={}",
        q(shift(old_time, DAY * 90, false)),
        q(old_time)
    );
    let got = ids(&both(&served, "/open311/v2/requests", &query, "service_requests").await);
    assert_eq!(got[0], old, "end_date is inclusive");
    assert!(got.contains(&run.smooth_case.to_string()));
    assert!(!got.contains(&new));
    // Only start_date: the 90 days from it.
    let query = format!("?start_date={}", q(old_time));
    let got = ids(&both(&served, "/open311/v2/requests", &query, "service_requests").await);
    assert_eq!(
        got,
        vec![old.clone()],
        "start_date is inclusive; 90 days on"
    );
    // Only end_date: the 90 days up to it.
    let query = format!("?end_date={}", q(shift(now, Duration::from_secs(1), false)));
    let got = ids(&both(&served, "/open311/v2/requests", &query, "service_requests").await);
    assert_eq!(got, Vec::<String>::new(), "{query}");
    let query = format!("?end_date={}", q(old_time));
    let got = ids(&both(&served, "/open311/v2/requests", &query, "service_requests").await);
    assert_eq!(got[0], old);
    // UTC, a lost `+` (a space), minutes without seconds: the same instant.
    for start in [
        shanghai_time(old_time).replace('+', "%20"),
        shanghai_time(old_time)
            .get(..16)
            .map(|m| format!("{m}%2B08:00"))
            .expect("a time"),
    ] {
        let query = format!("?start_date={start}&end_date={}", q(old_time));
        let got = ids(&both(&served, "/open311/v2/requests", &query, "service_requests").await);
        // Minutes drop the seconds, so the window may start a little earlier; `old` is in.
        assert_eq!(got[0], old, "{query}");
    }

    // More than 90 days, an end before the start, a malformed or zoneless time: 400.
    let too_wide = format!(
        "?start_date={}&end_date={}",
        q(shift(now, DAY * 90 + Duration::from_secs(1), false)),
        q(now)
    );
    let backwards = format!("?start_date={}&end_date={}", q(now), q(old_time));
    refused_naming(
        &served,
        &[
            (too_wide.as_str(), "90 days"),
            (backwards.as_str(), "before"),
            ("?start_date=yesterday", "start_date"),
            ("?end_date=2026-04-01", "end_date"),
            ("?start_date=2026-04-01T09:30:00", "start_date"),
            ("?start_date=2026-02-30T09:30:00Z", "start_date"),
            (
                "?start_date=2026-04-01T00:00:00Z&start_date=2026-04-02T00:00:00Z",
                "start_date",
            ),
        ],
    )
    .await;
    // An empty value is no value.
    let got = ids(&both(
        &served,
        "/open311/v2/requests",
        "?start_date=&end_date=&service_code=&service_request_id=&page=&page_size=&extensions=",
        "service_requests",
    )
    .await);
    assert_eq!(got, [new]);
}

// ---------------------------------------------------------------------------------------------
// Paging

#[tokio::test]
async fn page_and_page_size_page_through_newest_first() {
    let (served, clock) = serve("o311get-pages").await;
    let mut made = Vec::new();
    for i in 0..5 {
        clock.advance(Duration::from_secs(10));
        made.push(open(&served, &format!("request {i}"), None).await);
    }
    made.reverse();
    let all = ids(&both(&served, "/open311/v2/requests", "", "service_requests").await);
    assert_eq!(all[..5], made[..], "newest first");
    assert!(all.len() <= 1000, "the default limit");

    let mut paged = Vec::new();
    for page in 1..=3 {
        let list = both(
            &served,
            "/open311/v2/requests",
            &format!("?page_size=2&page={page}"),
            "service_requests",
        )
        .await;
        assert_eq!(ids(&list).len(), 2);
        paged.extend(ids(&list));
    }
    assert_eq!(paged[..], all[..6], "pages follow one another");
    // Page 1 is the default; a page past the end is empty.
    let first = ids(&both(
        &served,
        "/open311/v2/requests",
        "?page_size=3",
        "service_requests",
    )
    .await);
    assert_eq!(first[..], all[..3]);
    let past = both(
        &served,
        "/open311/v2/requests",
        "?page_size=1000&page=99",
        "service_requests",
    )
    .await;
    assert_eq!(ids(&past), Vec::<String>::new());
    // With a filter.
    let list = both(
        &served,
        "/open311/v2/requests",
        "?service_code=service-request&status=open&page_size=1&page=2",
        "service_requests",
    )
    .await;
    assert_eq!(ids(&list), [made[1].clone()]);

    refused_naming(
        &served,
        &[
            ("?page=0", "page"),
            ("?page=-1", "page"),
            ("?page=one", "page"),
            ("?page_size=0", "page_size"),
            ("?page_size=1001", "page_size"),
            ("?page_size=2.5", "page_size"),
            ("?page_size=99999999999999999999999", "page_size"),
            ("?page=99999999999999999999999", "page"),
        ],
    )
    .await;
    // The largest page size is 1000.
    both(
        &served,
        "/open311/v2/requests",
        "?page_size=1000",
        "service_requests",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Notes and personal data

#[tokio::test]
async fn extensions_add_notes_and_no_answer_shows_personal_data() {
    let (served, clock) = serve("o311get-private").await;
    let case = open(
        &served,
        "路灯不亮",
        Some(json!({"lat": 29.3, "long": 120.07, "address": "新马路 5 号"})),
    )
    .await;
    clock.advance(Duration::from_secs(60));
    act(
        &served,
        &case,
        "dispatch",
        json!({"unit": "yiwu-heart", "note": NOTE_WITH_PHONE}),
    )
    .await;
    clock.advance(Duration::from_secs(60));
    act(
        &served,
        &case,
        "urge_sign_for",
        json!({"note": NOTE_WITH_PHONE}),
    )
    .await;
    // The native API does hold the requester (masked) and the note: the test's data is real.
    let (status, history) = served
        .json(
            "GET",
            &format!("/api/v1/cases/{case}/history"),
            Some(served.token("li.grid1")),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        history.to_string().contains(PHONE),
        "the native history quotes the note"
    );

    let list = both(
        &served,
        &format!("/open311/v2/requests/{case}"),
        "?extensions=true",
        "service_requests",
    )
    .await;
    let request = &list[0];
    assert_eq!(request["agency_responsible"], unit_name("yiwu-heart"));
    let notes = request["notes"].as_array().expect("notes");
    let kinds: Vec<&str> = notes
        .iter()
        .map(|n| n["type"].as_str().expect("a type"))
        .collect();
    assert_eq!(kinds.first(), Some(&"opened"), "{notes:?}");
    assert!(kinds.contains(&"action"), "{kinds:?}");
    assert!(kinds.contains(&"assigned"), "{kinds:?}");
    assert!(kinds.contains(&"deadline_set"), "{kinds:?}");
    for note in notes {
        assert_eq!(
            note.as_object().expect("an object").keys().count(),
            3,
            "{note}"
        );
        assert!(is_local_datetime(
            note["datetime"].as_str().expect("datetime")
        ));
        assert!(!note["description"]
            .as_str()
            .expect("description")
            .is_empty());
    }
    assert!(
        notes
            .iter()
            .any(|n| n["description"] == "派单 dispatch: 受理 received → 派单 dispatched"),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n["description"] == "催签收 urge to sign for"),
        "{notes:?}"
    );
    // The XML: notes last, `note` elements of datetime, description, type.
    let xml = get(
        &served,
        &format!("/open311/v2/requests/{case}.xml?extensions=true"),
    )
    .await;
    let document = roxmltree::Document::parse(&xml.body).expect("XML");
    let request = document
        .root_element()
        .first_element_child()
        .expect("a request");
    let mut with_notes: Vec<String> = REQUEST_FIELDS.iter().map(|f| (*f).to_owned()).collect();
    with_notes.push("notes".to_owned());
    assert_eq!(child_names(request), with_notes);
    let notes = request.last_element_child().expect("notes");
    for note in notes.children().filter(|c| c.is_element()) {
        assert_eq!(note.tag_name().name(), "note");
        assert_eq!(child_names(note), ["datetime", "description", "type"]);
    }
    // extensions=false (any case) is the same as none.
    for query in ["", "?extensions=false", "?extensions=FALSE"] {
        let list = both(
            &served,
            &format!("/open311/v2/requests/{case}"),
            query,
            "service_requests",
        )
        .await;
        assert!(list[0].get("notes").is_none(), "{query}");
    }

    // Nothing anywhere shows the requester, nor the notes' free text.
    let now = served.engine.now();
    let window = format!(
        "start_date={}&end_date={}",
        q(shift(now, DAY, false)),
        q(now)
    );
    let mut paths = Vec::new();
    for format in ["xml", "json"] {
        paths.extend([
            format!("/open311/v2/requests.{format}"),
            format!("/open311/v2/requests.{format}?extensions=true"),
            format!("/open311/v2/requests.{format}?extensions=true&service_request_id={case}"),
            format!("/open311/v2/requests/{case}.{format}?extensions=true"),
            format!("/open311/v2/servicerequestupdates.{format}"),
            format!("/open311/v2/servicerequestupdates.{format}?{window}"),
            format!("/open311/v2/services.{format}"),
            format!("/open311/v2/discovery.{format}"),
        ]);
    }
    for path in paths {
        let answer = get(&served, &path).await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        for private in [NAME, PHONE, EMAIL, "ouyang", "please call"] {
            assert!(
                !answer.body.contains(private),
                "{path} shows {private}: {}",
                answer.body
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The updates feed

#[tokio::test]
async fn the_updates_feed_lists_status_changes_and_answers() {
    let (served, clock) = serve("o311get-updates").await;
    let run = &served.run;
    // The demo's smooth request went the whole way: its updates end closed, and the reply to
    // the requester is an update's description.
    let start = demo::START;
    let end = shift(start, DAY * 60, true);
    let query = format!("?start_date={}&end_date={}", q(start), q(end));
    let updates = both(
        &served,
        "/open311/v2/servicerequestupdates",
        &query,
        "service_request_updates",
    )
    .await;
    let list = updates.as_array().expect("a list");
    assert!(!list.is_empty());
    let mut seen = std::collections::BTreeSet::new();
    for update in list {
        assert_eq!(
            update.as_object().expect("object").len(),
            UPDATE_FIELDS.len(),
            "{update}"
        );
        assert!(seen.insert(
            update["update_id"]
                .as_str()
                .expect("a string id")
                .to_owned()
        ));
        assert!(["open", "closed"].contains(&update["status"].as_str().expect("status")));
        assert!(is_local_datetime(
            update["updated_datetime"].as_str().expect("a time")
        ));
        assert_eq!(update["media_url"], "");
        assert_ne!(
            update["service_request_id"],
            json!(run.district_case.to_string()),
            "only Open311 services"
        );
    }
    let times: Vec<&str> = list
        .iter()
        .map(|u| u["updated_datetime"].as_str().expect("time"))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted, "oldest first");
    let smooth: Vec<&Value> = list
        .iter()
        .filter(|u| u["service_request_id"] == json!(run.smooth_case.to_string()))
        .collect();
    assert!(smooth.len() >= 3, "{smooth:?}");
    assert_eq!(smooth.last().expect("updates")["status"], "closed");
    assert!(smooth[..smooth.len() - 1]
        .iter()
        .all(|u| u["status"] == "open"));
    let single = both(
        &served,
        &format!("/open311/v2/requests/{}", run.smooth_case),
        "",
        "service_requests",
    )
    .await;
    let notes = single[0]["status_notes"].as_str().expect("notes");
    assert!(!notes.is_empty(), "the demo replied");
    assert!(smooth.iter().any(|u| u["description"] == json!(notes)));

    // XML layout.
    let xml = get(
        &served,
        &format!("/open311/v2/servicerequestupdates.xml{query}"),
    )
    .await;
    let document = roxmltree::Document::parse(&xml.body).expect("XML");
    for update in document
        .root_element()
        .children()
        .filter(|c| c.is_element())
    {
        assert_eq!(update.tag_name().name(), "request_update");
        assert_eq!(child_names(update), UPDATE_FIELDS);
    }

    // A new action is in the default window (the last 24 hours); a stage change is an update,
    // an urge that leaves the stage is not.
    clock.advance(DAY * 2);
    let case = open(&served, "a new one", None).await;
    clock.advance(Duration::from_secs(60));
    act(&served, &case, "dispatch", json!({"unit": "yiwu-heart"})).await;
    act(&served, &case, "urge_sign_for", json!({"note": "hurry"})).await;
    let updates = both(
        &served,
        "/open311/v2/servicerequestupdates",
        "",
        "service_request_updates",
    )
    .await;
    let list = updates.as_array().expect("a list");
    assert_eq!(
        list.len(),
        1,
        "only the dispatch, in the last 24 hours: {updates}"
    );
    assert_eq!(list[0]["service_request_id"], json!(case));
    assert_eq!(list[0]["status"], "open");
    assert_eq!(
        list[0]["description"],
        "派单 dispatch: 受理 received → 派单 dispatched"
    );
    assert_eq!(
        list[0]["updated_datetime"],
        json!(shanghai_time(served.engine.now()))
    );
    // Only start_date: until now. Only end_date: the 24 hours up to it.
    let since = format!("?start_date={}", q(shift(served.engine.now(), DAY, false)));
    let got = both(
        &served,
        "/open311/v2/servicerequestupdates",
        &since,
        "service_request_updates",
    )
    .await;
    assert_eq!(got, updates);
    let until = format!("?end_date={}", q(shift(served.engine.now(), DAY, false)));
    let got = both(
        &served,
        "/open311/v2/servicerequestupdates",
        &until,
        "service_request_updates",
    )
    .await;
    assert_eq!(got, json!([]));
    // Errors: a window over 90 days, a bad time, another jurisdiction.
    let now = served.engine.now();
    let wide = format!(
        "?start_date={}&end_date={}",
        q(shift(now, DAY * 91, false)),
        q(now)
    );
    for format in ["xml", "json"] {
        let description = error(
            &served,
            &format!("/open311/v2/servicerequestupdates.{format}{wide}"),
            400,
        )
        .await;
        assert!(description.contains("90 days"), "{description}");
        let description = error(
            &served,
            &format!("/open311/v2/servicerequestupdates.{format}?end_date=now"),
            400,
        )
        .await;
        assert!(description.contains("end_date"), "{description}");
        error(
            &served,
            &format!("/open311/v2/servicerequestupdates.{format}?jurisdiction_id=x"),
            404,
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Reading one's own writes, and never a 5xx

#[tokio::test]
async fn a_client_reads_its_own_writes_at_once() {
    let (served, clock) = serve("o311get-fresh").await;
    for i in 0..5 {
        clock.advance(Duration::from_secs(1));
        let case = open(&served, &format!("fresh {i}"), None).await;
        let list = both(
            &served,
            "/open311/v2/requests",
            &format!("?service_request_id={case}"),
            "service_requests",
        )
        .await;
        assert_eq!(ids(&list), vec![case.clone()]);
        let list = both(
            &served,
            "/open311/v2/requests",
            "?page_size=1",
            "service_requests",
        )
        .await;
        assert_eq!(ids(&list), [case]);
    }
}

#[tokio::test]
async fn malformed_parameters_never_get_a_5xx() {
    let (served, _clock) = serve("o311get-fuzz").await;
    let long = "x".repeat(20_000);
    let ids_many = (0..1001)
        .map(|i| format!("0192f3a0-0000-7000-8000-{i:012x}"))
        .collect::<Vec<_>>()
        .join(",");
    let queries = [
        "?start_date=%ZZ".to_owned(),
        "?start_date=%E4%B8".to_owned(),
        "?start_date=9999-12-31T23:59:59Z".to_owned(),
        "?start_date=0000-01-01T00:00:00Z&end_date=0000-01-02T00:00:00Z".to_owned(),
        "?end_date=-0001-01-01T00:00:00Z".to_owned(),
        "?start_date=2026-04-01T24:00:00Z".to_owned(),
        "?start_date=2026-04-01T09:30:00%2B99:99".to_owned(),
        "?start_date=2026-04-01T09:30:00.1234567Z".to_owned(),
        "?start_date=2026-04-01T09:30:00%E4%B8%AD".to_owned(),
        "?start_date=%E4%B8%AD%E4%B8%AD%E4%B8%AD%E4%B8%AD%E4%B8%AD%E4%B8%AD".to_owned(),
        "?status=%00".to_owned(),
        "?status=,,,".to_owned(),
        "?service_code=,,,".to_owned(),
        "?service_code=a%00b".to_owned(),
        format!("?service_code={long}"),
        format!("?service_request_id={long}"),
        format!("?service_request_id={ids_many}"),
        "?service_request_id=%FF".to_owned(),
        "?page=18446744073709551615&page_size=1000".to_owned(),
        "?page=1e3".to_owned(),
        "?page_size=%2B5".to_owned(),
        "?extensions=true&extensions=false".to_owned(),
        "?jurisdiction_id=%FF".to_owned(),
        "?&&&=&==&".to_owned(),
        format!("?{long}={long}"),
    ];
    let stems = [
        "/open311/v2/requests".to_owned(),
        format!("/open311/v2/requests/{}", served.run.smooth_case),
        "/open311/v2/servicerequestupdates".to_owned(),
    ];
    for stem in &stems {
        for format in ["xml", "json"] {
            for query in &queries {
                let path = format!("{stem}.{format}{query}");
                let answer = get(&served, &path).await;
                assert!(
                    answer.status < 500,
                    "{}: {answer:?}",
                    &path[..path.len().min(200)]
                );
                let expected = if format == "json" {
                    JSON_TYPE
                } else {
                    XML_TYPE
                };
                assert_eq!(
                    answer.content_type,
                    expected,
                    "{}",
                    &path[..path.len().min(200)]
                );
                if answer.status != 200 {
                    assert!(
                        [400, 404].contains(&answer.status),
                        "{}: {answer:?}",
                        &path[..path.len().min(200)]
                    );
                }
            }
        }
    }
    // The deepest page is empty, not a failure.
    let list = both(
        &served,
        "/open311/v2/requests",
        "?page=18446744073709551615&page_size=1000",
        "service_requests",
    )
    .await;
    assert_eq!(list, json!([]));
    // More than 1000 ids: 400 naming the parameter.
    let description = error(
        &served,
        &format!("/open311/v2/requests.xml?service_request_id={ids_many}"),
        400,
    )
    .await;
    assert!(description.contains("service_request_id"), "{description}");
}
