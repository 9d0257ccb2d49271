//! # civicflow
//!
//! Civic request handling as an event-sourced workflow engine. This facade gathers the
//! member crates; the `civicflow` command is built from `src/main.rs`.
//!
//! - [`core`] (`civicflow-core`): the engine, the pure domain (every aggregate implements
//!   `Aggregate`), the event log behind `EventStore`, the calendar, the personal-data vault,
//!   and (feature `testkit`) the scenario harness and the storage conformance kit.
//! - [`projections`] (`civicflow-projections`): the read models, run beside an engine in one
//!   call, never skipping an event, rebuilt without taking reads down.
//! - [`http`] (`civicflow-http`): the HTTP service and Open311.
//! - [`demo`]: the Tonghui demo data and a run of every closed loop.
//!
//! Embedding it: an org chart and a workflow of one's own, the read models beside the engine,
//! one's own write read back by the position it reached, and a case's audit.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use civicflow::core::prelude::*;
//! use civicflow::core::SledReadModels;
//! use civicflow::projections::models::{page::Page, unit_inbox};
//! use civicflow::projections::{Runner, RunnerOptions};
//!
//! let dir = std::env::temp_dir().join(format!("civicflow-embed-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! // A workflow of one's own: a market stall inspection, reported then done.
//! let mut workflows = DefinitionRegistry::built_in();
//! workflows.load_toml(r#"
//!     id = "stall-inspection"
//!     version = 1
//!     name = "Stall inspection"
//!     initial_stage = "requested"
//!     [open]
//!     roles = ["community_admin"]
//!     scope = "subtree"
//!     [[stages]]
//!     id = "requested"
//!     deadline = { within = "2 working days", remind_after = "1 working day" }
//!     [[stages]]
//!     id = "done"
//!     terminal = true
//!     [[actions]]
//!     id = "inspect"
//!     from = ["requested"]
//!     to = "done"
//!     roles = ["grid_worker"]
//!     scope = "subtree"
//! "#)?;
//! let engine = Engine::open(EngineConfig::new(&dir).definitions(workflows)
//!     .with_generated_master_key())?;
//! let read_models = Runner::beside(
//!     &engine,
//!     Arc::new(SledReadModels::open(dir.join("readmodels"))?),
//!     RunnerOptions::default(),
//! )?;
//!
//! // The org chart: a community with one grid, an administrator and a grid worker.
//! let unit = |id: &str| UnitId::new(id);
//! let (community, grid) = (unit("jiangbin")?, unit("jiangbin-grid-1")?);
//! let (admin, worker) = (ActorId::new("zhao")?, ActorId::new("qian")?);
//! let system = Acting::system(community.clone());
//! for command in [
//!     OrgCommand::CreateUnit { id: community.clone(), name: "江滨社区".into(),
//!                              tier: Tier::Community, parent: None },
//!     OrgCommand::CreateUnit { id: grid.clone(), name: "江滨第一网格".into(),
//!                              tier: Tier::Grid, parent: Some(community.clone()) },
//!     OrgCommand::RegisterActor { id: admin.clone(), name: "赵".into(), kind: ActorKind::Person },
//!     OrgCommand::RegisterActor { id: worker.clone(), name: "钱".into(), kind: ActorKind::Person },
//!     OrgCommand::GrantRole { actor: admin.clone(), role: Role::new("community_admin")?,
//!                             unit: community.clone() },
//!     OrgCommand::GrantRole { actor: worker.clone(), role: Role::new("grid_worker")?,
//!                             unit: grid.clone() },
//! ] {
//!     engine.submit(&system, Command::Org(command))?;
//! }
//!
//! // The administrator files an inspection at the grid; the grid's inbox has it as soon as
//! // the inbox has reached the position the opening got back.
//! let admin = Acting::new(admin, Role::new("community_admin")?, community);
//! let opened = engine.submit(&admin, Command::OpenCase {
//!     workflow: WorkflowId::new("stall-inspection")?, version: None, unit: grid.clone(),
//!     title: "夜市摊位检查 night market stalls".into(), description: String::new(),
//!     fields: Fields::new(), requester: None, channel: Channel::Door, place: None })?;
//! let Outcome::Case { case, .. } = opened else { unreachable!() };
//! let at = opened.position().expect("written");
//! let inbox = read_models.view_at_least(unit_inbox::NAME, at, Duration::from_secs(10))?;
//! let page = unit_inbox::inbox(&inbox, &grid, None, &Page::first(50))?;
//! assert!(page.items.iter().any(|item| item.subject == unit_inbox::Subject::Case(case)));
//! drop(inbox);
//!
//! // The grid worker inspects; the audit shows each step, who, in which role, and the chain.
//! let worker = Acting::new(worker, Role::new("grid_worker")?, grid);
//! engine.submit(&worker, Command::Act { case, action: "inspect".into(),
//!                                       fields: Fields::new(), expected_version: None })?;
//! let audit = engine.audit(&admin, case)?;
//! assert_eq!(audit.steps.last().map(|s| s.actor.role.as_str()), Some("grid_worker"));
//! assert!(audit.chain.is_intact());
//! # read_models.stop();
//! # drop(engine);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use civicflow_core as core;
pub use civicflow_http as http;
pub use civicflow_postgres as postgres;
pub use civicflow_projections as projections;

pub mod demo;
