//! The conformance kit's factory for PostgreSQL: every place is a fresh schema on the test
//! process's own cluster ([`Cluster::shared`]), dropped with the place.

use std::sync::Arc;

use civicflow_core::testkit::conformance::Backend;
use civicflow_core::{Clock, EventStore, OpenError};

use super::Cluster;
use crate::{Database, PgLog};

/// PostgreSQL stores, each in a schema of its own on the shared throwaway cluster.
#[derive(Debug, Default)]
pub struct PgBackend;

impl PgBackend {
    /// The factory.
    pub fn new() -> Self {
        Self
    }
}

/// A schema on the shared cluster; dropping it drops the schema (kept for a look when a
/// check failed).
#[derive(Debug)]
pub struct PgPlace {
    url: String,
}

impl PgPlace {
    /// The store URL of the place.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgPlace {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            Cluster::shared().drop_store(&self.url);
        }
    }
}

impl Backend for PgBackend {
    type Place = PgPlace;

    fn place(&self) -> PgPlace {
        PgPlace {
            url: Cluster::shared().fresh_store_url(),
        }
    }

    fn open(
        &self,
        place: &PgPlace,
        clock: Arc<dyn Clock>,
        tuning: u8,
    ) -> Result<Arc<dyn EventStore>, OpenError> {
        // The tuning asks a backend to move what it keeps in memory to storage more often;
        // this one keeps nothing in memory that a reader depends on, but a restore keeps
        // streams: a few then, so that it looks the others up in its transaction.
        let database = Database::connect(&place.url).map_err(|e| OpenError::Storage {
            path: place.url.clone().into(),
            reason: e.to_string(),
        })?;
        let log = PgLog::open_with_clock(&database, clock)?;
        Ok(Arc::new(if tuning > 0 {
            log.restore_streams_in_memory(usize::from(tuning) / 8)
        } else {
            log
        }))
    }

    fn name(&self) -> String {
        "PostgreSQL".into()
    }
}
