//! A small store for the audit-bundle tests (`bundle`, `bundle_fuzz`): a chart of the
//! community, grid 1 and a grid worker, and a case of several events with a second case
//! between them in the log (so the case's events are not neighbours there).

use std::sync::atomic::{AtomicU64, Ordering};

use civicflow_core::domain::case::Channel;
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::org::{Acting, ActorKind, OrgCommand, Tier};
use civicflow_core::domain::workflow::WorkflowId;
use civicflow_core::engine::{Command, Engine, EngineConfig, Outcome};
use civicflow_core::{ActorId, CaseId, Role, UnitId};

/// The store's directory, removed when dropped (kept when a test panics).
pub struct Scratch(pub std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The store, its engine and the case, opened with `title` and `description`.
pub fn store(name: &str, title: &str, description: &str) -> (Scratch, Engine, CaseId) {
    // Both modules' tests run in this one process: a counter keeps their directories apart
    // even if they use the same name.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "civicflow-bundle-{}-{name}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Engine::open(EngineConfig::new(&dir).with_generated_master_key()).expect("open");
    let tonghui = UnitId::new("tonghui").expect("valid");
    let grid = UnitId::new("grid-1").expect("valid");
    let system = Acting::system(tonghui.clone());
    for (id, name, tier, parent) in [
        (&tonghui, "通惠社区", Tier::Community, None),
        (&grid, "第一网格", Tier::Grid, Some(tonghui.clone())),
    ] {
        engine
            .submit(
                &system,
                Command::Org(OrgCommand::CreateUnit {
                    id: id.clone(),
                    name: name.into(),
                    tier,
                    parent,
                }),
            )
            .expect("unit");
    }
    let li = ActorId::new("li.grid1").expect("valid");
    engine
        .submit(
            &system,
            Command::Org(OrgCommand::RegisterActor {
                id: li.clone(),
                name: "李网格员".into(),
                kind: ActorKind::Person,
            }),
        )
        .expect("actor");
    engine
        .submit(
            &system,
            Command::Org(OrgCommand::GrantRole {
                actor: li.clone(),
                role: Role::new("grid_worker").expect("valid"),
                unit: grid.clone(),
            }),
        )
        .expect("grant");
    let worker = Acting::new(li, Role::new("grid_worker").expect("valid"), grid.clone());
    let open = || {
        let category = Fields::from([("category".to_owned(), FieldValue::Choice("safety".into()))]);
        match engine
            .submit(
                &worker,
                Command::OpenCase {
                    workflow: WorkflowId::new("service-request").expect("valid"),
                    version: None,
                    unit: grid.clone(),
                    title: title.into(),
                    description: description.into(),
                    fields: category,
                    requester: None,
                    channel: Channel::Door,
                    place: None,
                },
            )
            .expect("open")
        {
            Outcome::Case { case, .. } => case,
            other => panic!("a case outcome, got {other:?}"),
        }
    };
    let case = open();
    let _other = open();
    let version = engine
        .history(
            &Acting::system(UnitId::new("tonghui").expect("a unit")),
            case,
        )
        .expect("history")
        .last()
        .map(|e| e.recorded.version)
        .expect("events");
    assert!(version.get() >= 2, "the case has several events");
    (Scratch(dir), engine, case)
}
