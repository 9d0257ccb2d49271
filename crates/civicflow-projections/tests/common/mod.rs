//! Helpers shared by the projection tests.
#![allow(dead_code)]

use civicflow_core::domain::org::Acting;
use civicflow_core::{ActorId, Role, UnitId};

/// A scratch directory, removed when dropped (kept after a failure, to look at).
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "civicflow-projections-{}-{name}",
            std::process::id()
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
