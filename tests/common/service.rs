//! A running service on the Tonghui demo, for the HTTP tests: in-process (`call`, through the
//! router with `oneshot`) or on a real socket (`Served`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use civicflow::core::calendar::Zone;
use civicflow::core::domain::org::Acting;
use civicflow::core::engine::{Engine, EngineConfig};
use civicflow::core::vault::MasterKey;
use civicflow::core::{ManualClock, UnitId};
use civicflow::demo;
use civicflow::http::{Service, ServiceConfig};
use serde_json::Value;
use tower::ServiceExt;

use super::TempDir;

/// The demo's store behind a service, with a token for every demo actor.
pub struct DemoService {
    /// The service (its router answers `call`).
    pub service: Service,
    /// Token by demo actor id (`li.grid1`, `audit.office`, …).
    pub tokens: BTreeMap<&'static str, String>,
    /// The demo's run: the cases and directive it made.
    pub run: demo::DemoRun,
    /// The clock the engine runs on (at the end of the demo's run).
    pub clock: ManualClock,
    /// Keep the directory alive as long as the service.
    pub dir: TempDir,
    /// The vault's master key (to reopen the store after a stop).
    pub key: MasterKey,
}

impl DemoService {
    /// The demo loaded into a fresh store, the service opened on it, tokens issued.
    pub fn start(tag: &str) -> Self {
        Self::start_with(tag, |_| {})
    }

    /// As [`DemoService::start`], with the service's settings changed by `configure`.
    pub fn start_with(tag: &str, configure: impl FnOnce(&mut ServiceConfig)) -> Self {
        Self::start_in(tag, Zone::shanghai(), configure)
    }

    /// As [`DemoService::start_with`], the engine's calendar (and so the demo's deadlines and
    /// every time the service writes) in `zone`.
    pub fn start_in(tag: &str, zone: Zone, configure: impl FnOnce(&mut ServiceConfig)) -> Self {
        let dir = TempDir::new(tag);
        let key = MasterKey::generate().expect("randomness");
        let clock = ManualClock::new(demo::START);
        let engine = Arc::new(
            Engine::open(
                EngineConfig::new(dir.path())
                    .clock(Arc::new(clock.clone()))
                    .master_key(key.clone())
                    .time_zone(zone),
            )
            .expect("engine"),
        );
        demo::build_org(&engine).expect("demo org");
        let run = demo::run_loops(&engine, &clock).expect("demo loops");
        let mut config = ServiceConfig::new(dir.path(), key.clone());
        configure(&mut config);
        let service = Service::with_engine(engine, config).expect("service");
        let system = Acting::system(UnitId::new("tonghui").expect("valid"));
        let mut tokens = BTreeMap::new();
        for (actor, name, _, _) in demo::ACTORS {
            let (_, secret) = service
                .issue_token(&system, demo::acting(actor), name)
                .expect("token");
            tokens.insert(*actor, secret.expose().to_owned());
        }
        Self {
            service,
            tokens,
            run,
            clock,
            dir,
            key,
        }
    }

    /// The token of a demo actor.
    pub fn token(&self, actor: &str) -> &str {
        self.tokens
            .get(actor)
            .unwrap_or_else(|| panic!("no demo actor {actor}"))
    }

    /// Calls the router in-process: `(status, JSON body or Null)`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, bytes) = self
            .call_raw(method, path, token, body.map(|b| b.to_string()))
            .await;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    /// Calls the router in-process with a raw body: `(status, body bytes)`.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("request");
        let (status, _, bytes) = self.send(request).await;
        (status, bytes)
    }

    /// Calls the router in-process with exactly these headers and these body bytes (which
    /// need not be UTF-8): `(status, response headers, body bytes)`.
    pub async fn call_bytes(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::from(body)).expect("request");
        self.send(request).await
    }

    /// Sends a request through the router in-process: `(status, headers, body)`.
    async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = self
            .service
            .router()
            .oneshot(request)
            .await
            .expect("answer");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, headers, bytes.to_vec())
    }

    /// Calls the router in-process with exactly these headers (no Authorization unless one
    /// is among them) and no body: `(status, response headers, JSON body or Null)`.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty()).expect("request");
        let (status, headers, bytes) = self.send(request).await;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }
}
