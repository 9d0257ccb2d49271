//! The crash loop over the whole service: the real `civicflow serve` in a child process, a
//! bounded client writing through the JSON API (openings with idempotency keys, actions on the
//! cases it opened) and through Open311 (`POST requests.json`) from several connections, and
//! SIGKILL at a random moment of each round: while the store opens and the read models catch
//! up, or in the middle of the writes. Then a restart.
//!
//! Guards against a service that acknowledges what it has not made durable (a 2xx whose case,
//! action or Open311 request is gone after the kill), an idempotent retry that opens a second
//! case, a store or read models that a kill leaves unable to start or out of step with the log.
//!
//! After every restart: openings whose answer the kill swallowed are retried with their key
//! (each must answer 2xx), and everything acknowledged in the round is read back intact. At the
//! end: everything acknowledged in any round is read back again, the server stops gracefully
//! (exit 0), `civicflow verify` passes, the log holds exactly one opening per acknowledged key
//! and Open311 request (at most one per unanswered Open311 request, which has no key to retry
//! with), and the read models the service kept equal a `civicflow rebuild` of the same log.
//!
//! The control proves the check can fail: the same loop against the real binary made to
//! acknowledge before flushing (`FaultInjection::ACK_BEFORE_FLUSH_ENV`, compiled in only by
//! the `fault-injection` feature that `cargo test` turns on) must be caught losing an
//! acknowledged request within 20 rounds.
//!
//! `CIVICFLOW_SERVICE_CRASH_ROUNDS` (default 20) sets the rounds, `CIVICFLOW_CRASH_SEED`
//! replays a run (the seed is printed at the start). A round takes about a second.

use crate::common;

use civicflow::core::{EventStore as _, SledReadModels};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::cli::{civicflow, path};
use crate::common::history::Rng;
use crate::common::readmodels::snapshot;
use crate::common::serve::{assert_no_panic, Launch, ServeProcess};
use crate::common::socket;
use crate::common::TempDir;
use civicflow::core::{FaultInjection, Position, SledLog};
use serde_json::{json, Value};

const ROUNDS_ENV: &str = "CIVICFLOW_SERVICE_CRASH_ROUNDS";
const SEED_ENV: &str = "CIVICFLOW_CRASH_SEED";
const DEFAULT_ROUNDS: u64 = 20;

/// Each writer sends at most this many requests a round, pausing 1-6 ms after each answer:
/// the client is bounded, so the log (re-read in full at the end) stays small whatever the
/// machine's speed, and the kill still lands among requests in flight.
const REQUESTS_PER_WRITER: usize = 80;
const PAUSE_MS: (usize, usize) = (1, 6);
/// One round in this many kills the server while it opens (before it is ready); the others
/// kill it after a random 30-900 ms of writes.
const KILL_WHILE_OPENING_ONE_IN: usize = 5;
const KILL_AFTER_MS: (usize, usize) = (30, 900);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The control (a server that acknowledges before flushing) must be caught within this many
/// rounds.
const VARIANT_MAX_ROUNDS: u64 = 20;

const FORM: &str = "application/x-www-form-urlencoded";

/// A token from the demo's `demo-tokens.json`.
#[derive(Clone)]
struct Tokens {
    /// Grid worker at grid 1 and grid 2: each opens and moves cases at their own grid.
    grids: [(String, &'static str); 2],
    /// The community administrator: reads every case, dispatches between the grids.
    admin: String,
    /// The demo's civic app, for Open311.
    open311: String,
}

impl Tokens {
    /// The other grid than `unit`, and its worker's token: cases move across.
    fn other_grid(&self, unit: &str) -> (&'static str, &str) {
        let (token, other) = if self.grids[0].1 == unit {
            &self.grids[1]
        } else {
            &self.grids[0]
        };
        (other, token)
    }
}

fn tokens(data: &Path) -> Tokens {
    let text = std::fs::read_to_string(data.join("demo-tokens.json")).expect("demo tokens");
    let all: Value = serde_json::from_str(&text).expect("demo tokens are JSON");
    let find = |role: &str, unit: &str| {
        all.as_array()
            .expect("a list")
            .iter()
            .find(|t| t["role"] == role && t["unit_id"] == unit)
            .and_then(|t| t["token"].as_str())
            .unwrap_or_else(|| panic!("no {role} token at {unit}"))
            .to_owned()
    };
    Tokens {
        grids: [
            (find("grid_worker", "grid-1"), "grid-1"),
            (find("grid_worker", "grid-2"), "grid-2"),
        ],
        admin: find("community_admin", "tonghui"),
        open311: all
            .as_array()
            .expect("a list")
            .iter()
            .find(|t| t["role"] == "open311_client")
            .and_then(|t| t["token"].as_str())
            .expect("an open311_client token")
            .to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// What the client was told.

/// An opening the client sent with an idempotency key.
#[derive(Clone)]
struct Opening {
    key: String,
    token: String,
    unit: &'static str,
}

impl Opening {
    /// The title carries the key between `<` and `>`, so the log can be searched for it.
    fn title(&self) -> String {
        format!("crash probe <{}>", self.key)
    }

    fn body(&self) -> Value {
        json!({
            "workflow": "service-request",
            "unit_id": self.unit,
            "title": self.title(),
            "fields": {"category": "public_facilities"},
            "idempotency_key": self.key,
        })
    }
}

/// A case the service acknowledged opening.
#[derive(Clone)]
struct Opened {
    opening: Opening,
    case_id: String,
}

/// The furthest acknowledged action on a case: its name and the version it answered.
#[derive(Clone)]
struct Acted {
    action: String,
    version: u64,
}

#[derive(Default)]
struct Ledger {
    /// Acknowledged openings, by key.
    opened: BTreeMap<String, Opened>,
    /// Openings sent but not answered (the kill came first): retried after the restart.
    in_doubt: Vec<Opening>,
    /// Acknowledged actions, by case id.
    acted: BTreeMap<String, Acted>,
    /// Acknowledged Open311 requests: marker → service_request_id.
    filed: BTreeMap<String, String>,
    /// Open311 requests sent but not answered: the log may hold them at most once.
    filed_in_doubt: Vec<String>,
    /// Answers that no request of this client should get (a 4xx or 5xx while the server ran).
    unexpected: Vec<String>,
    /// Keys and markers acknowledged in the current round, for the check after the restart.
    round_keys: Vec<String>,
    round_cases: Vec<String>,
    round_markers: Vec<String>,
    /// How many requests got a 2xx, over the whole run.
    acknowledged: usize,
}

type Shared = Arc<Mutex<Ledger>>;

fn ledger(shared: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The server.

/// `civicflow serve` on `data`; with `faulty`, acknowledging before flushing (the control; see
/// `FaultInjection::ACK_BEFORE_FLUSH_ENV`).
fn serve(data: &Path, demo: bool, faulty: bool) -> ServeProcess {
    let env = if faulty {
        vec![(FaultInjection::ACK_BEFORE_FLUSH_ENV, "1")]
    } else {
        Vec::new()
    };
    ServeProcess::start(
        data,
        Launch {
            demo,
            env,
            // The read-back reads every acknowledged Open311 request anonymously, thousands
            // at once from one address: the per-address limit (tests/suite/http_limits.rs)
            // is set out of its way.
            args: vec!["--address-rate-limit", "1000000"],
            ..Launch::default()
        },
    )
}

/// SIGKILL, and no panic before it.
fn kill(server: &mut ServeProcess) {
    assert_no_panic(&server.kill(), "a killed server");
}

// ---------------------------------------------------------------------------------------------
// Requests.

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".to_owned(), format!("Bearer {token}"))]
}

/// One JSON request; `Err` when there was no complete answer (the server is gone). A 429 is
/// waited out as its `Retry-After` says, as a well-behaved client does (the final read-back
/// sends more than the per-token burst).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON"));
    loop {
        let response = socket::request(
            addr,
            method,
            path,
            &bearer(token),
            bytes.as_deref().map(|b| ("application/json", b)),
        )
        .await
        .map_err(|e| e.to_string())?;
        if response.status == 429 {
            let seconds = response
                .head
                .header("retry-after")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            continue;
        }
        let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        return Ok((response.status, value));
    }
}

/// Opens a case; `Ok(None)` for an answer that is not a 2xx (recorded by the caller).
async fn open(addr: SocketAddr, opening: &Opening) -> Result<Result<String, String>, String> {
    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/cases",
        &opening.token,
        Some(&opening.body()),
    )
    .await?;
    Ok(match (status, body["id"].as_str()) {
        (200 | 201, Some(id)) => Ok(id.to_owned()),
        _ => Err(format!("opening {}: {status} {body}", opening.key)),
    })
}

/// Writes openings at `unit` until the round's budget is spent or the server is gone.
async fn opening_writer(
    addr: SocketAddr,
    shared: Shared,
    token: String,
    unit: &'static str,
    tag: String,
    mut rng: Rng,
) {
    for i in 0..REQUESTS_PER_WRITER {
        let opening = Opening {
            key: format!("{tag}-{i}"),
            token: token.clone(),
            unit,
        };
        match open(addr, &opening).await {
            Ok(Ok(case_id)) => {
                let mut l = ledger(&shared);
                l.acknowledged += 1;
                l.round_keys.push(opening.key.clone());
                l.opened
                    .insert(opening.key.clone(), Opened { opening, case_id });
            }
            Ok(Err(message)) => ledger(&shared).unexpected.push(message),
            Err(_) => {
                ledger(&shared).in_doubt.push(opening);
                return;
            }
        }
        pause(&mut rng).await;
    }
}

/// Moves acknowledged cases along: the community administrator dispatches a case filed at one
/// grid to the other, whose worker signs for it. It reads the case first, so after a kill it
/// continues from what the log holds.
async fn action_writer(addr: SocketAddr, shared: Shared, tokens: Tokens, mut rng: Rng) {
    for _ in 0..REQUESTS_PER_WRITER {
        let pick = {
            let l = ledger(&shared);
            let open: Vec<&Opened> = l
                .opened
                .values()
                .filter(|o| {
                    l.acted
                        .get(&o.case_id)
                        .is_none_or(|a| a.action != "sign_for")
                })
                .collect();
            (!open.is_empty()).then(|| open[rng.below(open.len())].clone())
        };
        let Some(opened) = pick else {
            pause(&mut rng).await;
            continue;
        };
        let (other, other_token) = tokens.other_grid(opened.opening.unit);
        let path = format!("/api/v1/cases/{}", opened.case_id);
        let Ok((status, case)) = call(addr, "GET", &path, &tokens.admin, None).await else {
            return;
        };
        if status != 200 {
            ledger(&shared)
                .unexpected
                .push(format!("reading {path}: {status} {case}"));
            continue;
        }
        let available = |a: &str| {
            case["available_actions"]
                .as_array()
                .is_some_and(|all| all.iter().any(|x| x == a || x["id"] == a))
        };
        let (body, token) = if available("dispatch") {
            (
                json!({"action": "dispatch", "expected_version": case["version"], "unit": other}),
                tokens.admin.as_str(),
            )
        } else if case["stage"] == "dispatched" {
            (
                json!({"action": "sign_for", "expected_version": case["version"]}),
                other_token,
            )
        } else {
            continue;
        };
        let action = body["action"].as_str().expect("an action").to_owned();
        match call(addr, "POST", &format!("{path}/actions"), token, Some(&body)).await {
            Ok((200 | 201, answer)) => {
                let version = answer["version"].as_u64().expect("the answer's version");
                let mut l = ledger(&shared);
                l.acknowledged += 1;
                l.round_cases.push(opened.case_id.clone());
                l.acted
                    .insert(opened.case_id.clone(), Acted { action, version });
            }
            Ok((status, answer)) => ledger(&shared)
                .unexpected
                .push(format!("{action} on {path}: {status} {answer}")),
            Err(_) => return,
        }
        pause(&mut rng).await;
    }
}

/// Files Open311 requests as the demo's civic app until the budget is spent or the server is
/// gone. The description carries a marker to find the request in the log.
async fn open311_writer(addr: SocketAddr, shared: Shared, key: String, tag: String, mut rng: Rng) {
    for i in 0..REQUESTS_PER_WRITER {
        let marker = format!("{tag}-{i}");
        let form = format!(
            "api_key={key}&service_code=service-request&attribute%5Bcategory%5D=public_facilities\
             &address_string=Tonghui+crash+probe&description=probe+%3C{marker}%3E"
        );
        let sent = socket::request(
            addr,
            "POST",
            "/open311/v2/requests.json",
            &[],
            Some((FORM, form.as_bytes())),
        )
        .await;
        let Ok(response) = sent else {
            ledger(&shared).filed_in_doubt.push(marker);
            return;
        };
        let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        match (response.status, answer[0]["service_request_id"].as_str()) {
            (200 | 201, Some(id)) => {
                let mut l = ledger(&shared);
                l.acknowledged += 1;
                l.round_markers.push(marker.clone());
                l.filed.insert(marker, id.to_owned());
            }
            (status, _) => ledger(&shared)
                .unexpected
                .push(format!("Open311 request {marker}: {status} {answer}")),
        }
        pause(&mut rng).await;
    }
}

async fn pause(rng: &mut Rng) {
    let ms = PAUSE_MS.0 + rng.below(PAUSE_MS.1 - PAUSE_MS.0 + 1);
    tokio::time::sleep(Duration::from_millis(ms as u64)).await;
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// What a read-back found wrong: something acknowledged is missing or changed (what the test
/// is for), or the server did something else it should not.
#[derive(Debug)]
enum Finding {
    Lost(String),
    Other(String),
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Lost(what) => write!(f, "acknowledged and lost: {what}"),
            Finding::Other(what) => write!(f, "{what}"),
        }
    }
}

fn unanswered(e: String) -> Finding {
    Finding::Other(format!("the restarted server did not answer: {e}"))
}

/// Reads back an acknowledged opening: the case exists at its unit with its title.
async fn check_opened(addr: SocketAddr, admin: &str, opened: &Opened) -> Result<(), Finding> {
    let path = format!("/api/v1/cases/{}", opened.case_id);
    let (status, case) = call(addr, "GET", &path, admin, None)
        .await
        .map_err(unanswered)?;
    if status != 200 {
        return Err(Finding::Lost(format!(
            "opening {} ({}) is gone: {status} {case}",
            opened.opening.key, opened.case_id
        )));
    }
    if case["title"] != opened.opening.title().as_str() || case["unit_id"] != opened.opening.unit {
        return Err(Finding::Lost(format!(
            "opening {} changed: {case}",
            opened.opening.key
        )));
    }
    Ok(())
}

/// Reads back an acknowledged action: the case is at least at the version it answered, at the
/// stage the action leads to (nothing else moves these cases).
async fn check_acted(
    addr: SocketAddr,
    admin: &str,
    opened: &Opened,
    acted: &Acted,
) -> Result<(), Finding> {
    let path = format!("/api/v1/cases/{}", opened.case_id);
    let (status, case) = call(addr, "GET", &path, admin, None)
        .await
        .map_err(unanswered)?;
    let version = case["version"].as_u64().unwrap_or(0);
    let stage = case["stage"].as_str().unwrap_or("");
    let allowed: &[&str] = match acted.action.as_str() {
        "dispatch" => &["dispatched", "in_progress"],
        _ => &["in_progress"],
    };
    if status != 200 || version < acted.version || !allowed.contains(&stage) {
        return Err(Finding::Lost(format!(
            "{} on {} answered version {}, but the case reads {status} {case}",
            acted.action, opened.case_id, acted.version
        )));
    }
    Ok(())
}

/// Reads back an acknowledged Open311 request through Open311.
async fn check_filed(addr: SocketAddr, marker: &str, id: &str) -> Result<(), Finding> {
    let path = format!("/open311/v2/requests/{id}.json");
    let response = socket::request(addr, "GET", &path, &[], None)
        .await
        .map_err(|e| unanswered(e.to_string()))?;
    let body = String::from_utf8_lossy(&response.body);
    if response.status != 200 || !body.contains(&format!("<{marker}>")) {
        return Err(Finding::Lost(format!(
            "Open311 request {marker} ({id}) is gone or changed: {} {body}",
            response.status
        )));
    }
    Ok(())
}

/// After a restart: retry the openings the kill left unanswered (same key: the same case if
/// the first attempt was made durable, a new one if not), then read back what the round
/// acknowledged. With `everything`, read back what every round acknowledged.
async fn check_after_restart(
    addr: SocketAddr,
    shared: &Shared,
    admin: &str,
    everything: bool,
) -> Result<(), Finding> {
    let in_doubt = std::mem::take(&mut ledger(shared).in_doubt);
    for opening in in_doubt {
        match open(addr, &opening).await.map_err(unanswered)? {
            Ok(case_id) => {
                let mut l = ledger(shared);
                l.round_keys.push(opening.key.clone());
                l.opened
                    .insert(opening.key.clone(), Opened { opening, case_id });
            }
            Err(message) => {
                return Err(Finding::Other(format!(
                    "a retry with the same key was refused: {message}"
                )))
            }
        }
    }
    let (openings, actions, filed) = {
        let mut l = ledger(shared);
        let keys = std::mem::take(&mut l.round_keys);
        let cases = std::mem::take(&mut l.round_cases);
        let markers = std::mem::take(&mut l.round_markers);
        let openings: Vec<Opened> = if everything {
            l.opened.values().cloned().collect()
        } else {
            keys.iter().map(|k| l.opened[k].clone()).collect()
        };
        let by_case: BTreeMap<&str, &Opened> =
            l.opened.values().map(|o| (o.case_id.as_str(), o)).collect();
        let case_ids: Vec<String> = if everything {
            l.acted.keys().cloned().collect()
        } else {
            cases
        };
        let actions: Vec<(Opened, Acted)> = case_ids
            .iter()
            .map(|c| ((*by_case[c.as_str()]).clone(), l.acted[c].clone()))
            .collect();
        let markers: Vec<String> = if everything {
            l.filed.keys().cloned().collect()
        } else {
            markers
        };
        let filed: Vec<(String, String)> = markers
            .into_iter()
            .map(|m| {
                let id = l.filed[&m].clone();
                (m, id)
            })
            .collect();
        (openings, actions, filed)
    };
    for opened in &openings {
        check_opened(addr, admin, opened).await?;
    }
    for (opened, acted) in &actions {
        check_acted(addr, admin, opened, acted).await?;
    }
    for (marker, id) in &filed {
        check_filed(addr, marker, id).await?;
    }
    let l = ledger(shared);
    if !l.unexpected.is_empty() {
        return Err(Finding::Other(format!(
            "answers no request of this client should get:\n{}",
            l.unexpected.join("\n")
        )));
    }
    Ok(())
}

/// How many streams (cases) of the log carry each `<marker>`, in any event (a native
/// opening's title, an Open311 request's description).
fn cases_by_marker(data: &Path) -> BTreeMap<String, usize> {
    let log = SledLog::open(data.join("log")).expect("the stopped store opens");
    let mut streams: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut from = Position::new(1).expect("position 1");
    loop {
        let page = log.read_all(from, 4096).expect("read");
        let Some(last) = page.last() else { break };
        from = Position::new(last.position.get() + 1).expect("a position");
        for event in &page {
            let text = String::from_utf8_lossy(&event.payload);
            let mut rest = text.as_ref();
            while let Some(start) = rest.find("<crash-") {
                let Some(end) = rest[start..].find('>') else {
                    break;
                };
                streams
                    .entry(rest[start + 1..start + end].to_owned())
                    .or_default()
                    .insert(event.stream.as_str().to_owned());
                rest = &rest[start + end..];
            }
        }
    }
    streams.into_iter().map(|(m, s)| (m, s.len())).collect()
}

fn read_model_snapshot(data: &Path) -> common::readmodels::Snapshot {
    let store = SledReadModels::open(data.join("readmodels")).expect("the read models open");
    snapshot(&store)
}

// ---------------------------------------------------------------------------------------------
// The loop.

/// A crash loop in progress or done: the store, the server now running on it, and what the
/// client was told.
struct CrashRun {
    _dir: TempDir,
    data: PathBuf,
    server: ServeProcess,
    tokens: Tokens,
    shared: Shared,
    kills_while_opening: usize,
    started: Instant,
}

/// Runs `rounds` rounds of writes and SIGKILL on a fresh demo store, and stops at the first
/// round whose read-back finds something wrong: `Err((round, finding))`. With `faulty`, every
/// server after the demo's acknowledges before flushing.
async fn crash_loop(
    tag: &str,
    rounds: u64,
    seed: u64,
    faulty: bool,
) -> (CrashRun, Result<(), (u64, Finding)>) {
    let mut rng = Rng::new(seed);
    let dir = TempDir::new(tag);
    let data = dir.path().join("data");

    // Round 0 loads the demo (and its tokens) undisturbed: the kills begin on a full store.
    let mut server = serve(&data, true, false);
    server.wait_ready(READY_TIMEOUT).await;
    if faulty {
        let (status, stderr) = server.stop();
        assert!(
            status.success(),
            "a graceful stop exits 0, not {status}:\n{stderr}"
        );
        server = serve(&data, false, true);
        server.wait_ready(READY_TIMEOUT).await;
    }
    let mut run = CrashRun {
        _dir: dir,
        tokens: tokens(&data),
        data,
        server,
        shared: Arc::default(),
        kills_while_opening: 0,
        started: Instant::now(),
    };
    let tokens = run.tokens.clone();
    let shared = run.shared.clone();

    for round in 1..=rounds {
        let kill_while_opening = round > 1 && rng.below(KILL_WHILE_OPENING_ONE_IN) == 0;
        if kill_while_opening {
            // The previous round left the server ready; kill it and start one that is killed
            // while it opens the store and the read models catch up.
            kill(&mut run.server);
            run.server = serve(&run.data, false, faulty);
            tokio::time::sleep(Duration::from_millis(rng.below(300) as u64)).await;
            kill(&mut run.server);
            run.kills_while_opening += 1;
            run.server = serve(&run.data, false, faulty);
            run.server.wait_ready(READY_TIMEOUT).await;
            if let Err(finding) =
                check_after_restart(run.server.addr(), &shared, &tokens.admin, false).await
            {
                return (run, Err((round, finding)));
            }
        }

        let addr = run.server.addr();
        let mut writers = Vec::new();
        for (w, (token, unit)) in tokens.grids.iter().enumerate() {
            writers.push(tokio::spawn(opening_writer(
                addr,
                shared.clone(),
                token.clone(),
                unit,
                format!("crash-{seed}-{round}-{w}"),
                Rng::new(rng.next()),
            )));
        }
        writers.push(tokio::spawn(action_writer(
            addr,
            shared.clone(),
            tokens.clone(),
            Rng::new(rng.next()),
        )));
        writers.push(tokio::spawn(open311_writer(
            addr,
            shared.clone(),
            tokens.open311.clone(),
            format!("crash-{seed}-{round}-o"),
            Rng::new(rng.next()),
        )));
        let kill_after = KILL_AFTER_MS.0 + rng.below(KILL_AFTER_MS.1 - KILL_AFTER_MS.0 + 1);
        tokio::time::sleep(Duration::from_millis(kill_after as u64)).await;
        kill(&mut run.server);
        for writer in writers {
            writer.await.expect("a writer task");
        }

        run.server = serve(&run.data, false, faulty);
        run.server.wait_ready(READY_TIMEOUT).await;
        if let Err(finding) =
            check_after_restart(run.server.addr(), &shared, &tokens.admin, false).await
        {
            return (run, Err((round, finding)));
        }
        let l = ledger(&shared);
        println!(
            "round {round}: killed after {kill_after} ms; acknowledged so far {} ({} openings, {} cases acted on, {} Open311)",
            l.acknowledged,
            l.opened.len(),
            l.acted.len(),
            l.filed.len()
        );
    }
    (run, Ok(()))
}

fn seed() -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_request_survives_sigkill_of_the_service() {
    let rounds = std::env::var(ROUNDS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let seed = seed();
    println!("service crash loop: {rounds} rounds, {SEED_ENV}={seed}");
    let (run, outcome) = crash_loop("crash-service", rounds, seed, false).await;
    if let Err((round, finding)) = outcome {
        panic!("round {round} ({SEED_ENV}={seed}): {finding}");
    }
    let CrashRun {
        _dir,
        data,
        server,
        shared,
        kills_while_opening,
        started,
        tokens,
    } = run;

    // Everything acknowledged in any round, read back once more; then a graceful stop.
    if let Err(finding) = check_after_restart(server.addr(), &shared, &tokens.admin, true).await {
        panic!("the final read-back ({SEED_ENV}={seed}): {finding}");
    }
    let (status, stderr) = server.stop();
    assert!(
        status.success(),
        "a graceful stop exits 0, not {status}:\n{stderr}"
    );
    assert_no_panic(&stderr, "the last server");

    let (code, stdout, stderr) = civicflow(&["verify", "--data", path(&data)]);
    let (intact, report) = (code == 0, format!("{stdout}{stderr}"));
    assert!(
        intact,
        "civicflow verify failed after the crash loop:\n{report}"
    );

    let l = ledger(&shared);
    let counts = cases_by_marker(&data);
    for key in l.opened.keys() {
        assert_eq!(
            counts.get(key).copied().unwrap_or(0),
            1,
            "acknowledged opening {key}: not exactly one case in the log"
        );
    }
    for marker in l.filed.keys() {
        assert_eq!(
            counts.get(marker).copied().unwrap_or(0),
            1,
            "acknowledged Open311 request {marker}: not exactly one case in the log"
        );
    }
    for marker in &l.filed_in_doubt {
        assert!(
            counts.get(marker).copied().unwrap_or(0) <= 1,
            "unanswered Open311 request {marker} opened more than one case"
        );
    }
    let unacknowledged_in_log = counts
        .keys()
        .filter(|m| !l.opened.contains_key(*m) && !l.filed.contains_key(*m))
        .count();
    assert!(
        l.opened.len() > rounds as usize && !l.filed.is_empty() && !l.acted.is_empty(),
        "the client hardly wrote: {} openings, {} Open311, {} actions",
        l.opened.len(),
        l.filed.len(),
        l.acted.len()
    );

    // The read models the service kept through every kill equal a rebuild from the log.
    let kept = read_model_snapshot(&data);
    let (code, stdout, stderr) = civicflow(&["rebuild", "--data", path(&data)]);
    let (rebuilt_ok, report) = (code == 0, format!("{stdout}{stderr}"));
    assert!(rebuilt_ok, "civicflow rebuild failed:\n{report}");
    let rebuilt = read_model_snapshot(&data);
    assert_eq!(kept.len(), rebuilt.len());
    for ((name, kept_rows), (_, rebuilt_rows)) in kept.iter().zip(&rebuilt) {
        assert!(
            kept_rows == rebuilt_rows,
            "read model {name} differs from its rebuild: {} rows kept, {} rebuilt",
            kept_rows.len(),
            rebuilt_rows.len()
        );
    }
    println!(
        "{rounds} rounds ({kills_while_opening} killed while opening) in {:.1} s: {} requests acknowledged \
         ({} openings, {} cases acted on, {} Open311), all intact; {} Open311 requests unanswered \
         of which {} made it into the log; verify intact; read models equal a rebuild",
        started.elapsed().as_secs_f64(),
        l.acknowledged,
        l.opened.len(),
        l.acted.len(),
        l.filed.len(),
        l.filed_in_doubt.len(),
        unacknowledged_in_log
    );
}

/// The control: the same loop against a server that acknowledges before flushing (the
/// `fault-injection` feature, on in the binary `cargo test` builds, read from the environment)
/// must be caught losing an acknowledged request within a few rounds, or the loop above proves
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_catches_a_server_that_acknowledges_before_flushing() {
    let seed = seed();
    println!("control: {VARIANT_MAX_ROUNDS} rounds at most, {SEED_ENV}={seed}");
    let (run, outcome) = crash_loop("crash-service-control", VARIANT_MAX_ROUNDS, seed, true).await;
    match outcome {
        Err((round, Finding::Lost(what))) => {
            println!("control: caught in round {round}: {what}");
        }
        Err((round, other)) => panic!(
            "control ({SEED_ENV}={seed}): round {round} failed for another reason than a lost acknowledgement: {other}"
        ),
        Ok(()) => panic!(
            "control ({SEED_ENV}={seed}): {VARIANT_MAX_ROUNDS} rounds against a server that acknowledges before flushing found nothing lost ({} acknowledged)",
            ledger(&run.shared).acknowledged
        ),
    }
}
