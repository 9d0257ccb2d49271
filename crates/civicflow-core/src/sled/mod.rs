//! The embedded backend: everything in civicflow that knows sled.
//!
//! Each storage seam of the crate has its sled implementation here, and nowhere else does
//! code name sled (`docs/decisions/0008-one-command-path-and-storage-seam.md`):
//!
//! - `log/`: [`SledLog`], the event log ([`crate::EventStore`]) on one sled tree: group
//!   commit, the stream index, reads capped at the durable head, the chain walk, export and
//!   restore, the head a clean close leaves beside the files.
//! - `read_models/`: [`SledReadModels`], the read-model store
//!   ([`crate::readmodel::ReadModelStore`]), rows packed in pages.
//! - `vault/`: [`SledVaultStore`], the vault's store ([`crate::vault::VaultStore`]): the
//!   key file of fixed-size slots beside a sled database of the vault's own, and
//!   [`Vault::open`](crate::vault::Vault::open).
//! - `support.rs`: opening and closing sled safely, shared by all three.
//!
//! One data directory holds a whole embedded store: `log/`, `vault/` (the key file and the
//! vault's own sled database) and, for the service, `readmodels/`.

#[cfg(feature = "testkit")]
mod conformance;
mod log;
mod read_models;
pub(crate) mod support;
mod vault;

#[cfg(feature = "testkit")]
pub use conformance::{SledBackend, SledPlace};
#[cfg(feature = "fault-injection")]
pub use log::FaultInjection;
pub use log::{SledLog, SledLogConfig};
pub use read_models::{Compaction, SledReadModels};
pub use vault::SledVaultStore;

use std::sync::Arc;

use crate::engine::{EngineConfig, EngineError, Storage};
use crate::vault::Vault;

impl Storage {
    /// Creates the data directory of an embedded store (and any missing parent) readable by
    /// its owner only (0700), or makes an existing one so: it holds the log, the vault and the
    /// read models, where case titles and descriptions carry personal details. Opening the
    /// storage does the same for each directory it creates; a command that writes into the data
    /// directory before opening it (`civicflow serve`: the master key, the demo's files) calls
    /// this first.
    ///
    /// # Errors
    /// The directory cannot be created or its permissions set.
    pub fn create_data_dir(path: &std::path::Path) -> std::io::Result<()> {
        crate::private_fs::create_dir_all(path)
    }

    /// The embedded storage in `config.data_dir`: the sled log in `log/` (with the config's
    /// clock, durability and cache size) and the vault in `vault/` under its master key.
    ///
    /// # Errors
    /// [`EngineError::Config`] without a master key; [`EngineError::Open`] or
    /// [`EngineError::Vault`] when the files cannot be opened.
    pub fn embedded(config: &EngineConfig) -> Result<Self, EngineError> {
        let master_key = config.master_key.clone().ok_or_else(|| {
            EngineError::Config(
                "no master key: set EngineConfig::master_key (see docs/decisions/0004-personal-data.md)"
                    .into(),
            )
        })?;
        // The directory and what a store made before files were owner-only left in it (the
        // master key, the deadline index's snapshot, the read models).
        Self::create_data_dir(&config.data_dir)
            .and_then(|()| crate::private_fs::tighten(&config.data_dir))
            .map_err(|source| {
                EngineError::Config(format!(
                    "cannot make the data directory {} owner-only: {source}",
                    config.data_dir.display()
                ))
            })?;
        let log = SledLogConfig::new(config.data_dir.join("log"))
            .clock(config.clock.clone())
            .durability(config.durability)
            .cache_capacity_bytes(config.log_cache_bytes)
            .open()?;
        let vault = Vault::open(config.data_dir.join("vault"), master_key)?;
        Ok(Self {
            log: Arc::new(log),
            vault,
        })
    }
}
