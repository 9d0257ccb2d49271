//! Security proofs (issue 7): token hygiene (hashed at rest, revocation at once, lookup by
//! hash) and crypto-shredding (no plaintext contact data in any file, before or after an
//! erasure; after it, nothing can read it back). Every scan reads the bytes of every file under
//! the data directory, and each has a positive control showing the scan finds what is there.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common::service::DemoService;
use crate::common::socket::Served;
use axum::http::{Method, StatusCode};
use civicflow::core::domain::org::Acting;
use civicflow::core::engine::{Command, Contact, Engine, EngineConfig};
use civicflow::core::{CaseId, UnitId};
use civicflow::demo;
use civicflow::http::hash_token;
use civicflow::http::{Service, ServiceConfig};
use serde_json::json;

/// Every file under `dir`, recursively.
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() || haystack.len() < needle.len() {
        return needle.is_empty();
    }
    let first = needle[0];
    let last_start = haystack.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match haystack[i..=last_start].iter().position(|&b| b == first) {
            None => return false,
            Some(p) => {
                let at = i + p;
                if &haystack[at..at + needle.len()] == needle {
                    return true;
                }
                i = at + 1;
            }
        }
    }
    false
}

/// The files under `dir` whose bytes contain `needle` (paths relative to `dir`).
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| contains(&std::fs::read(f).expect("read file"), needle))
        .map(|f| {
            f.strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string()
        })
        .collect()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn reopen_service(
    dir: &common::TempDir,
    key: &civicflow::core::vault::MasterKey,
    clock: &civicflow::core::ManualClock,
) -> Service {
    let engine = Arc::new(
        Engine::open(
            EngineConfig::new(dir.path())
                .clock(Arc::new(clock.clone()))
                .master_key(key.clone()),
        )
        .expect("reopen engine"),
    );
    Service::with_engine(engine, ServiceConfig::new(dir.path(), key.clone())).expect("service")
}

/// Stops the service, runs `scan` on the closed directory, and reopens it.
fn with_stopped<T>(demo: DemoService, scan: impl FnOnce(&Path) -> T) -> (DemoService, T) {
    let DemoService {
        service,
        tokens,
        run,
        clock,
        dir,
        key,
    } = demo;
    let engine = service.engine().clone();
    drop(service);
    for _ in 0..500 {
        if Arc::strong_count(&engine) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(Arc::strong_count(&engine), 1, "the engine is still held");
    drop(engine);
    let found = scan(dir.path());
    let service = reopen_service(&dir, &key, &clock);
    (
        DemoService {
            service,
            tokens,
            run,
            clock,
            dir,
            key,
        },
        found,
    )
}

#[test]
fn tokens_are_stored_only_as_hashes() {
    let demo = DemoService::start("sec-tokens");
    let tokens = demo.tokens.clone();
    assert!(!tokens.is_empty());
    let (demo, ()) = with_stopped(demo, |dir| {
        let all = files(dir);
        assert!(all.len() > 3, "the scan sees the store's files: {all:?}");
        for (actor, secret) in &tokens {
            let hex = &secret[4..];
            assert_eq!(hex.len(), 64);
            for (what, needle) in [
                ("the full token", secret.as_bytes().to_vec()),
                ("its 64 hex digits", hex.as_bytes().to_vec()),
                ("its 32 raw bytes", unhex(hex)),
            ] {
                let found = files_containing(dir, &needle);
                assert!(
                    found.is_empty(),
                    "{what} of {actor}'s token is stored in {found:?}"
                );
            }
            // Positive control: the SHA-256 hash is in the log (raw bytes in the
            // TokenIssued payload), so the scan reads the files that hold the tokens.
            let hash = hash_token(secret);
            let found = files_containing(dir, &hash.0);
            assert!(
                found.iter().any(|f| f.starts_with("log")),
                "the hash of {actor}'s token is in no log file: {found:?}"
            );
        }
    });
    drop(demo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_by_the_very_next_request() {
    let served = Served::start(DemoService::start("sec-revoke")).await;
    let token = served.token("li.grid1").to_owned();
    let other = served.token("zhao.grid2").to_owned();
    let (status, _) = served
        .json("GET", "/api/v1/cases", Some(&token), None)
        .await;
    assert_eq!(status, 200, "the token works before");

    // Revoked through the API by the community administrator, as an operator would.
    let id = civicflow::core::domain::access::TokenId::of_hash(&hash_token(&token));
    let admin = served.token("wang.secretary").to_owned();
    let (status, revoked) = served
        .json(
            "POST",
            &format!("/api/v1/tokens/{id}/revoke"),
            Some(&admin),
            Some(&json!({"reason": "lost phone"})),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");

    // The very next request: no restart, no wait.
    let (status, body) = served
        .json("GET", "/api/v1/cases", Some(&token), None)
        .await;
    assert_eq!(status, 401, "revoked token still accepted: {body}");
    let (status, _) = served
        .json("GET", "/api/v1/cases", Some(&other), None)
        .await;
    assert_eq!(status, 200, "another token is untouched");
    served
        .shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
}

#[tokio::test]
async fn a_token_one_character_off_is_refused() {
    let demo = DemoService::start("sec-near");
    let token = demo.token("li.grid1").to_owned();
    let (status, _) = demo
        .call(Method::GET, "/api/v1/cases", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let flip = |c: char| if c == '0' { '1' } else { '0' };
    let body = &token[4..];
    let first = format!(
        "cft_{}{}",
        flip(body.chars().next().expect("c")),
        &body[1..]
    );
    let last = format!(
        "cft_{}{}",
        &body[..63],
        flip(body.chars().last().expect("c"))
    );
    for (what, near) in [("first", first), ("last", last)] {
        assert_ne!(near, token);
        let (status, _) = demo
            .call(Method::GET, "/api/v1/cases", Some(&near), None)
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a token differing in the {what} character"
        );
    }
    // The index holds hashes only: a presented hash (hex) is no token either.
    let hashed = format!("cft_{}", hash_token(&token).to_hex());
    let (status, _) = demo
        .call(Method::GET, "/api/v1/cases", Some(&hashed), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

pub(crate) const NAME: &str = "SHRED-NAME-9f3a";
pub(crate) const PHONE: &str = "13912345678";
pub(crate) const EMAIL: &str = "shred-9f3a@example.org";
pub(crate) const ADDRESS: &str = "SHRED-ADDR-9f3a Fountain Lane 7";
pub(crate) const MARKER: &str = "SCAN-MARKER-77";

fn plaintexts() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("name", NAME.as_bytes().to_vec()),
        ("phone", PHONE.as_bytes().to_vec()),
        ("phone (E.164)", format!("+86{PHONE}").into_bytes()),
        ("email", EMAIL.as_bytes().to_vec()),
        ("address", ADDRESS.as_bytes().to_vec()),
    ]
}

/// Every (value, file) where a plaintext is found.
pub(crate) fn leaks(dir: &Path) -> Vec<(&'static str, String)> {
    plaintexts()
        .into_iter()
        .flat_map(|(what, needle)| {
            files_containing(dir, &needle)
                .into_iter()
                .map(move |f| (what, f))
        })
        .collect()
}

fn assert_no_plaintext(text: &str, where_: &str) {
    for (what, needle) in plaintexts() {
        let needle = String::from_utf8(needle).expect("utf-8");
        assert!(!text.contains(&needle), "{where_} shows the {what}: {text}");
    }
}

/// Opens a case at grid 1 titled `MARKER` (found in the log by the scans' positive control)
/// whose requester is the plaintexts above; its id. The answer holds none of them.
async fn open_with_requester(demo: &DemoService, token: &str) -> String {
    let (status, created) = demo
        .call(
            Method::POST,
            "/api/v1/cases",
            Some(token),
            Some(json!({
                "workflow": "service-request",
                "unit_id": "grid-1",
                "title": MARKER,
                "description": "The bench by the fountain is broken.",
                "fields": {"category": "public_facilities"},
                "requester": {"name": NAME, "phone": PHONE, "email": EMAIL, "address": ADDRESS},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_no_plaintext(&created.to_string(), "the opening's answer");
    created["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_contact_data_is_in_no_file_and_reads_as_erased() {
    let demo = DemoService::start("sec-shred");
    let grid = demo.token("li.grid1").to_owned();
    let admin = demo.token("wang.secretary").to_owned();
    let id = open_with_requester(&demo, &grid).await;
    let case_path = format!("/api/v1/cases/{id}");
    let case_id = CaseId::parse(&id).expect("case id");

    // Staff read: masked, for every staff role that sees the case.
    for token in [&grid, &admin] {
        let (status, case) = demo.call(Method::GET, &case_path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{case}");
        let requester = &case["requester"];
        assert!(requester["phone"].is_string(), "{case}");
        assert!(
            requester["phone"].as_str().expect("phone").contains('*'),
            "masked: {requester}"
        );
        assert_no_plaintext(&case.to_string(), "a staff read");
    }

    // The unmasked view (no HTTP route: the engine's `view_contact`) gives the plaintext to a
    // contact role, and records a ContactViewed event.
    let engine = demo.service.engine().clone();
    let grid_acting = demo::acting("li.grid1");
    let details = engine
        .view_contact(&grid_acting, case_id, "callback")
        .expect("view")
        .expect("present");
    assert_eq!(details.name(), Some(NAME));
    assert_eq!(details.email(), Some(EMAIL));
    assert!(details.phone().expect("phone").ends_with(PHONE));
    let (status, history) = demo
        .call(
            Method::GET,
            &format!("{case_path}/history"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        history["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["type"] == "ContactViewed"),
        "no ContactViewed: {history}"
    );
    assert_no_plaintext(&history.to_string(), "the history");
    let person = engine
        .case(
            &Acting::system(UnitId::new("tonghui").expect("unit")),
            case_id,
        )
        .expect("case")
        .state
        .requester
        .expect("a requester");
    drop(engine);

    // Before erasure: the vault encrypts, so no file holds the plaintext; the marker in the
    // title (not personal data) is found in the log, so the scan does read it.
    let (demo, (before, marker)) = with_stopped(demo, |dir| {
        (leaks(dir), files_containing(dir, MARKER.as_bytes()))
    });
    assert!(before.is_empty(), "plaintext before erasure: {before:?}");
    assert!(
        marker.iter().any(|f| f.starts_with("log")),
        "the scan did not find the marker in the log: {marker:?}"
    );
    // …and it is still readable through the vault (after a restart).
    let engine = demo.service.engine().clone();
    let again = engine
        .view_contact(&grid_acting, case_id, "callback")
        .expect("view")
        .expect("present");
    assert_eq!(again.name(), Some(NAME));

    // Erase, as the community administrator (the grid worker may not).
    let refused = engine.submit(
        &grid_acting,
        Command::ErasePerson {
            person,
            reason: "PIPL art. 47 request".into(),
        },
    );
    assert!(refused.is_err(), "a grid worker erased a person");
    engine
        .submit(
            &demo::acting("wang.secretary"),
            Command::ErasePerson {
                person,
                reason: "PIPL art. 47 request".into(),
            },
        )
        .expect("erase");
    assert!(engine
        .view_contact(&grid_acting, case_id, "callback")
        .expect("view")
        .is_none());
    drop(engine);

    let (demo, (after, marker)) = with_stopped(demo, |dir| {
        (leaks(dir), files_containing(dir, MARKER.as_bytes()))
    });
    assert!(after.is_empty(), "plaintext after erasure: {after:?}");
    assert!(marker.iter().any(|f| f.starts_with("log")), "{marker:?}");

    // Reopened: the chain verifies, the case shows the contact as erased, the audit shows no
    // plaintext.
    let engine = demo.service.engine().clone();
    let report = engine.log().verify().expect("verify");
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert!(matches!(
        engine
            .case(
                &Acting::system(UnitId::new("tonghui").expect("unit")),
                case_id
            )
            .expect("case")
            .contact,
        Contact::Erased
    ));
    drop(engine);
    let (status, case) = demo.call(Method::GET, &case_path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{case}");
    // Erased, and still the person's id, which says nothing without the vault.
    assert_eq!(
        case["requester"],
        json!({"erased": true, "person_id": person.to_string()}),
        "{case}"
    );
    let (status, audit) = demo
        .call(
            Method::GET,
            &format!("{case_path}/audit"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert!(
        audit.to_string().contains(MARKER),
        "the audit shows the case: {audit}"
    );
    assert_no_plaintext(&audit.to_string(), "the audit");
}

/// Erases the requester of case `id`, as the community administrator; the person.
fn erase_requester(demo: &DemoService, id: &str) -> civicflow::core::PersonId {
    let engine = demo.service.engine();
    let person = engine
        .case(
            &Acting::system(UnitId::new("tonghui").expect("unit")),
            CaseId::parse(id).expect("case id"),
        )
        .expect("case")
        .state
        .requester
        .expect("a requester on file");
    engine
        .submit(
            &demo::acting("wang.secretary"),
            Command::ErasePerson {
                person,
                reason: "PIPL art. 47 request".into(),
            },
        )
        .expect("erase");
    person
}

/// Reads each Open311 `path`: a 200 that lists `id` with its description and no plaintext.
async fn read_open311(demo: &DemoService, paths: &[String], id: &str) {
    for path in paths {
        let (status, _, body) = demo.call_bytes(Method::GET, path, &[], Vec::new()).await;
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        assert!(text.contains(id), "{path} does not list {id}: {text}");
        assert!(text.contains(MARKER), "{path} lost the description: {text}");
        assert_no_plaintext(&text, path);
    }
}

/// A requester who filed through Open311 (a civic app's `first_name`, `phone`, `email`): every
/// demo caller who may read the case sees the contact masked or not at all; Open311's own reads
/// (one request, the list, with and without `extensions=true`, JSON and XML) never carry it;
/// after erasure those reads still answer with the request's public fields, the native read
/// says `{"erased": true}`, and no file holds the plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open311_requester_is_masked_to_everyone_and_erased_everywhere() {
    // The demo's routing rules put this point in grid 2, so grid 2's worker reads it too.
    let demo = DemoService::start_with("sec-o311-shred", |config| {
        std::fs::write(
            config.data_dir.join("open311-routing.toml"),
            civicflow::http::demo::DEMO_OPEN311_ROUTING,
        )
        .expect("write the routing rules");
    });
    let app = demo.token("fixmystreet").to_owned();
    let admin = demo.token("wang.secretary").to_owned();
    let form = format!(
        "api_key={app}&service_code=service-request&attribute%5Bcategory%5D=public_facilities\
         &lat=29.3130&long=120.0780&description={MARKER}+bench+broken\
         &first_name={NAME}&phone={PHONE}&email={}",
        EMAIL.replace('@', "%40")
    );
    let (status, _, body) = demo
        .call_bytes(
            Method::POST,
            "/open311/v2/requests.json",
            &[("content-type", "application/x-www-form-urlencoded")],
            form.into_bytes(),
        )
        .await;
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = answer[0]["service_request_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert_no_plaintext(&answer.to_string(), "the Open311 answer");
    let case_path = format!("/api/v1/cases/{id}");

    // Every demo caller: those who may read the case see the contact masked (or not at all).
    let mut readers = Vec::new();
    for (actor, token) in &demo.tokens {
        let (status, case) = demo.call(Method::GET, &case_path, Some(token), None).await;
        assert_no_plaintext(&case.to_string(), &format!("{actor}'s read"));
        if status == StatusCode::OK {
            if let Some(phone) = case["requester"]["phone"].as_str() {
                assert!(phone.contains('*'), "{actor} sees {phone} unmasked");
            }
            readers.push(*actor);
        }
    }
    assert!(
        readers.contains(&"wang.secretary") && readers.contains(&"zhao.grid2"),
        "too few readers to prove anything: {readers:?}"
    );
    println!(
        "{} of {} demo callers may read the case, all masked: {readers:?}",
        readers.len(),
        demo.tokens.len()
    );
    let (_, case) = demo.call(Method::GET, &case_path, Some(&admin), None).await;
    assert!(
        case["requester"]["phone"]
            .as_str()
            .is_some_and(|p| p.contains('*')),
        "the community admin's read has no masked phone: {case}"
    );

    // Open311's reads, keyless.
    let open311_reads = [
        format!("/open311/v2/requests/{id}.json?extensions=true"),
        format!("/open311/v2/requests/{id}.xml?extensions=true"),
        format!("/open311/v2/requests/{id}.json"),
        "/open311/v2/requests.json?extensions=true".to_owned(),
        "/open311/v2/requests.xml".to_owned(),
    ];
    read_open311(&demo, &open311_reads, &id).await;

    // Erase the requester, as the community administrator.
    let case_id = CaseId::parse(&id).expect("case id");
    let details = demo
        .service
        .engine()
        .view_contact(&demo::acting("wang.secretary"), case_id, "callback")
        .expect("view")
        .expect("present");
    assert_eq!(details.name(), Some(NAME), "the vault holds what was filed");
    let person = erase_requester(&demo, &id);

    let (demo, after) = with_stopped(demo, leaks);
    assert!(after.is_empty(), "plaintext after erasure: {after:?}");
    read_open311(&demo, &open311_reads, &id).await;
    let (status, case) = demo.call(Method::GET, &case_path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert_eq!(
        case["requester"],
        json!({"erased": true, "person_id": person.to_string()}),
        "{case}"
    );
}

/// Tokens on a running service: only a community administrator issues, lists and revokes;
/// the secret is in the issuing answer only (no-store), never in a list; a new token works at
/// once and a revoked one fails at once; a token id that is not a token is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_listed_and_revoked_by_administrators_only() {
    let demo = DemoService::start("sec-token-api");
    let admin = demo.token("wang.secretary").to_owned();
    let grid = demo.token("li.grid1").to_owned();
    let body = json!({"actor": "li.grid1", "role": "grid_worker", "unit_id": "grid-1", "name": "tablet 7"});

    for refused in [&grid, demo.token("fixmystreet"), demo.token("audit.office")] {
        let (status, answer) = demo
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(refused),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        let (status, _) = demo
            .call(Method::GET, "/api/v1/tokens", Some(refused), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // A grant the actor does not hold is refused by the core, naming why.
    let (status, answer) = demo
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({"actor": "li.grid1", "role": "community_admin", "unit_id": "tonghui", "name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");

    let (status, headers, bytes) = demo
        .call_bytes(
            Method::POST,
            "/api/v1/tokens",
            &[
                ("authorization", &format!("Bearer {admin}")),
                ("content-type", "application/json"),
            ],
            body.to_string().into_bytes(),
        )
        .await;
    let issued: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let secret = issued["token"].as_str().expect("the secret").to_owned();
    let id = issued["id"].as_str().expect("an id").to_owned();
    assert!(secret.starts_with("cft_"), "{issued}");
    let (status, _) = demo
        .call(Method::GET, "/api/v1/units", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::OK, "the new token works at once");

    let (status, list) = demo
        .call(Method::GET, "/api/v1/tokens", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let listed = list["tokens"].as_array().expect("tokens");
    assert_eq!(listed.len(), demo.tokens.len() + 1, "{list}");
    assert!(listed
        .iter()
        .any(|t| t["id"] == id.as_str() && t["name"] == "tablet 7"));
    let text = list.to_string();
    assert!(!text.contains("cft_"), "a list shows a secret: {text}");
    assert!(
        !text.contains(&hash_token(&secret).to_hex()),
        "a list shows a hash"
    );

    let (status, _) = demo
        .call(
            Method::POST,
            "/api/v1/tokens/0123456789abcdef/revoke",
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = demo
        .call(
            Method::POST,
            &format!("/api/v1/tokens/{id}/revoke"),
            Some(&grid),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a grid worker may not revoke"
    );
    let (status, revoked) = demo
        .call(
            Method::POST,
            &format!("/api/v1/tokens/{id}/revoke"),
            Some(&admin),
            Some(json!({"reason": "tablet lost"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let (status, _) = demo
        .call(Method::GET, "/api/v1/units", Some(&secret), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the revoked token fails at once"
    );
    // Revoking again changes nothing and says so the same way.
    let (status, again) = demo
        .call(
            Method::POST,
            &format!("/api/v1/tokens/{id}/revoke"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
}

/// The unmasked view through the service: only the workflow's contact roles within scope get
/// the details (no-store), each view is a `ContactViewed` event naming its purpose, a refused
/// view writes nothing, and after erasure the view says erased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmasked_view_is_for_contact_roles_only_and_is_an_event() {
    let demo = DemoService::start("sec-contact-view");
    let grid = demo.token("li.grid1").to_owned();
    let admin = demo.token("wang.secretary").to_owned();
    let id = open_with_requester(&demo, &grid).await;
    let view_path = format!("/api/v1/cases/{id}/contact");
    let head = || demo.service.engine().log().head().map(|h| h.position.get());

    // Everyone who is not a contact role in scope: refused, and nothing is written.
    let mut granted = Vec::new();
    for (actor, token) in &demo.tokens {
        let before = head();
        let (status, answer) = demo
            .call(
                Method::POST,
                &view_path,
                Some(token),
                Some(json!({"purpose": "probe"})),
            )
            .await;
        if status == StatusCode::OK {
            granted.push(*actor);
            continue;
        }
        assert!(
            [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&status),
            "{actor}: {status} {answer}"
        );
        assert_no_plaintext(&answer.to_string(), actor);
        assert_eq!(head(), before, "{actor}'s refused view wrote to the log");
    }
    assert_eq!(
        granted,
        ["li.grid1", "wang.secretary"],
        "who may see the contact"
    );

    let (status, headers, bytes) = demo
        .call_bytes(
            Method::POST,
            &view_path,
            &[
                ("authorization", &format!("Bearer {grid}")),
                ("content-type", "application/json"),
            ],
            json!({"purpose": "callback about the bench"})
                .to_string()
                .into_bytes(),
        )
        .await;
    let details: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(status, StatusCode::OK, "{details}");
    assert_eq!(details["name"], NAME);
    assert_eq!(details["email"], EMAIL);
    assert_eq!(details["erased"], false);
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let (_, history) = demo
        .call(
            Method::GET,
            &format!("/api/v1/cases/{id}/history"),
            Some(&admin),
            None,
        )
        .await;
    let views = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "ContactViewed")
        .count();
    assert_eq!(
        views, 3,
        "one event per granted view (two probes, one callback): {history}"
    );
    assert_no_plaintext(&history.to_string(), "the history");

    // A purpose is required; an unknown field is refused.
    for body in [
        json!({}),
        json!({"purpose": ""}),
        json!({"purpose": "x", "why": "y"}),
    ] {
        let (status, answer) = demo
            .call(Method::POST, &view_path, Some(&grid), Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }

    // After erasure the view says erased, and shows nothing.
    erase_requester(&demo, &id);
    let (status, answer) = demo
        .call(
            Method::POST,
            &view_path,
            Some(&admin),
            Some(json!({"purpose": "after"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"case": id, "erased": true}));
}

// ---------------------------------------------------------------------------------------------
// Owner-only files (issue 13): nobody else on the machine reads the store

/// Every directory under `dir` (itself included) and every file, with its permission bits,
/// whose group or other bits are set.
#[cfg(unix)]
fn readable_by_others(dir: &Path) -> Vec<(PathBuf, String)> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if mode(&d) & 0o077 != 0 {
            found.push((d.clone(), format!("{:o}", mode(&d))));
        }
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if mode(&path) & 0o077 != 0 {
                found.push((path.clone(), format!("{:o}", mode(&path))));
            }
        }
    }
    found
}

#[cfg(unix)]
#[test]
fn the_store_is_owner_only_while_open_and_after_a_stop() {
    use std::os::unix::fs::PermissionsExt;
    // The demo opened on a store that did not exist (the log, the vault, the read models, the
    // deadline index), written to by the demo's loops.
    let demo = DemoService::start("security-owner-only");
    let data = demo.dir.path().to_path_buf();
    let mode = std::fs::metadata(&data)
        .expect("the data directory")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "the data directory");
    assert!(
        files(&data).len() >= 6,
        "the scan reads the store: {:?}",
        files(&data)
    );
    let open = readable_by_others(&data);
    assert!(open.is_empty(), "readable by others while open: {open:?}");

    let DemoService { service, dir, .. } = demo;
    service.stop();
    let stopped = readable_by_others(dir.path());
    assert!(
        stopped.is_empty(),
        "readable by others after a stop: {stopped:?}"
    );

    // Positive control: a file the store did not make, with the usual 0644, is found.
    let stray = dir.path().join("log").join("stray");
    std::fs::write(&stray, b"x").expect("written");
    std::fs::set_permissions(&stray, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(
        readable_by_others(dir.path()),
        vec![(stray, "644".to_owned())]
    );
}

#[cfg(unix)]
#[test]
fn an_older_store_with_open_permissions_is_made_owner_only_when_opened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::TempDir::new("security-owner-only-old");
    let key = civicflow::core::vault::MasterKey::generate().expect("randomness");
    let open =
        || Engine::open(EngineConfig::new(dir.path()).master_key(key.clone())).expect("opened");
    drop(open());
    // What a store made before looked like: every directory 0755, every file 0644.
    let mut todo = vec![dir.path().to_path_buf()];
    while let Some(d) = todo.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                    .expect("chmod");
            }
        }
    }
    assert!(!readable_by_others(dir.path()).is_empty(), "the control");
    let engine = open();
    let left = readable_by_others(dir.path());
    assert!(
        left.is_empty(),
        "readable by others after opening: {left:?}"
    );
    drop(engine);
}
