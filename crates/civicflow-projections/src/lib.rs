//! # civicflow-projections
//!
//! Read models of the civicflow log, built with nothing but `civicflow-core`'s public API.
//!
//! - [`Runner`] runs [`Projection`]s: each from its checkpoint, committing its rows and its
//!   checkpoint together, catching up and then following the log live, rebuilding a new
//!   version blue/green, stopping at an event it cannot apply without holding the others up.
//! - [`Table`], [`Tx`] and [`View`] are the typed rows projections write and readers read.
//! - `models` holds civicflow's nine read models: the case board, unit inboxes, the overdue
//!   and escalation report, directive progress, the 三率 rates, shop standing, the three
//!   lists, community statistics and the Open311 requests.
//!
//! The design is in `docs/projections.md` of the repository.
//!
//! Beside an engine, in one call, and reading one's own write by the position the command
//! reached:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use civicflow_core::prelude::*;
//! use civicflow_core::SledReadModels;
//! use civicflow_projections::models::case_board;
//! use civicflow_projections::{Runner, RunnerOptions};
//!
//! let dir = std::env::temp_dir().join(format!("civicflow-projections-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let engine = Engine::open(EngineConfig::new(&dir).with_generated_master_key())?;
//! let store = Arc::new(SledReadModels::open(dir.join("readmodels"))?);
//! let read_models = Runner::beside(&engine, store, RunnerOptions::default())?;
//!
//! // A community and its administrator, who files a request at the door.
//! let tonghui = UnitId::new("tonghui")?;
//! let system = Acting::system(tonghui.clone());
//! let admin = ActorId::new("wang.admin")?;
//! for command in [
//!     OrgCommand::CreateUnit { id: tonghui.clone(), name: "通惠社区".into(),
//!                              tier: Tier::Community, parent: None },
//!     OrgCommand::RegisterActor { id: admin.clone(), name: "王".into(), kind: ActorKind::Person },
//!     OrgCommand::GrantRole { actor: admin.clone(), role: Role::new("community_admin")?,
//!                             unit: tonghui.clone() },
//! ] {
//!     engine.submit(&system, Command::Org(command))?;
//! }
//! let acting = Acting::new(admin, Role::new("community_admin")?, tonghui.clone());
//! let category = Fields::from([("category".to_owned(), FieldValue::Choice("safety".into()))]);
//! let opened = engine.submit(&acting, Command::OpenCase {
//!     workflow: WorkflowId::new("service-request")?, version: None, unit: tonghui,
//!     title: "消防通道堵塞".into(), description: String::new(), fields: category,
//!     requester: None, channel: Channel::Door, place: None })?;
//! let Outcome::Case { case, .. } = opened else { unreachable!() };
//!
//! // The case board has the case as soon as it has reached the opening's position.
//! let position = opened.position().expect("written");
//! let board = read_models.view_at_least(case_board::NAME, position, Duration::from_secs(10))?;
//! let row = case_board::get(&board, case)?.expect("on the board");
//! assert_eq!(row.title, "消防通道堵塞");
//! # drop(board);
//! # read_models.stop();
//! # drop(engine);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod event;
mod feed;
pub mod models;
mod runner;
mod table;

pub use event::{decode_event, Decoded, Event};
pub use runner::{FreshnessError, Phase, Projection, Runner, RunnerOptions, Status};
pub use table::{ProjectionError, Row, RowEntry, Table, Tx, View};
