//! Helpers shared by the projection tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use civicflow_core::domain::org::{Acting, ActorKind, OrgCommand, Tier};
use civicflow_core::engine::{Command, Engine};
use civicflow_core::{ActorId, Role, UnitId};

/// A scratch directory, removed when dropped (kept after a failure, to look at).
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    /// A fresh directory whose name contains `name`. The modules' tests run in one process:
    /// the counter keeps their directories apart even when two use the same name.
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "civicflow-projections-{}-{name}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn unit(id: &str) -> UnitId {
    UnitId::new(id).expect("valid unit id")
}

pub fn role(name: &str) -> Role {
    Role::new(name).expect("valid role")
}

/// Someone acting: an actor, in a role, at a unit.
pub fn acting(actor: &str, role_name: &str, at: &str) -> Acting {
    Acting::new(
        ActorId::new(actor).expect("valid actor id"),
        role(role_name),
        unit(at),
    )
}

/// An org chart, built as the system: `units` (id, name, tier, parent), then `people` (actor,
/// role, unit), each registered and granted that role at that unit.
pub fn build_org(
    engine: &Engine,
    units: &[(&str, &str, Tier, Option<&str>)],
    people: &[(&str, &str, &str)],
) {
    let system = Acting::system(unit(units[0].0));
    for (id, name, tier, parent) in units {
        engine
            .submit(
                &system,
                Command::Org(OrgCommand::CreateUnit {
                    id: unit(id),
                    name: (*name).into(),
                    tier: *tier,
                    parent: parent.map(unit),
                }),
            )
            .expect("unit created");
    }
    for (actor, role_name, unit_id) in people {
        let id = ActorId::new(*actor).expect("valid");
        engine
            .submit(
                &system,
                Command::Org(OrgCommand::RegisterActor {
                    id: id.clone(),
                    name: (*actor).into(),
                    kind: ActorKind::Person,
                }),
            )
            .expect("actor registered");
        engine
            .submit(
                &system,
                Command::Org(OrgCommand::GrantRole {
                    actor: id,
                    role: role(role_name),
                    unit: unit(unit_id),
                }),
            )
            .expect("role granted");
    }
}
