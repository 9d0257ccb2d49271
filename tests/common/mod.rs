//! Helpers shared by the integration tests: the `suite` binary (`tests/suite/main.rs`) and
//! `tests/projections_crash.rs` include this module; the benchmarks include `history.rs`.

#![allow(dead_code)]

pub mod alone;
pub mod cli;
pub mod history;
pub mod open311;
pub mod pages;
pub mod readmodels;
pub mod serve;
pub mod service;
pub mod socket;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A unique directory under the system's temporary directory for one store. Removed when
/// dropped, unless the test is panicking: then it stays, for a look at what went wrong.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, not yet existing directory whose name contains `tag`.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "civicflow-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
