//! Which store a command works on: the embedded store in `--data` (the default), or a shared
//! store on PostgreSQL (`--store postgres://USER@HOST:PORT/DB`), whose log and vault live in
//! the database while the instance's own parts (its read models, its deadline index, the
//! demo's files) stay in `--data`.
//!
//! This is the one place of the command that names a storage backend: every command opens
//! its log or its engine through [`StoreArgs`], and everything after that goes through the
//! core's `EventStore` and `VaultStore`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use civicflow::core::engine::{EngineConfig, Storage};
use civicflow::core::vault::{MasterKey, Vault};
use civicflow::core::{Clock, EventStore, SystemClock};
use civicflow::postgres::{Database, PgLog, PgVaultStore};

use super::store::DEFAULT_DATA;

/// Where a command's store is (flattened into every command that opens one).
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// The store's directory: the whole embedded store, or with --store this instance's own
    /// part of a shared one (its read models and deadline index).
    #[arg(long, default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// A shared store on PostgreSQL 15 or later, postgres://USER[:PASSWORD]@HOST:PORT/DB
    /// (add ?schema=NAME for another schema than civicflow): the log and the vault live there,
    /// shared by every instance given the same URL. Without it, the embedded store in --data.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

impl StoreArgs {
    /// The database URL of a shared store.
    pub fn shared(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// The store, for messages: its directory, or its database without a password.
    pub fn describe(&self) -> String {
        match &self.store {
            None => self.data.display().to_string(),
            Some(url) => civicflow::postgres::redact(url),
        }
    }

    /// The flags that name this store again, for a command a message suggests (never a
    /// password).
    pub fn flags(&self) -> String {
        match &self.store {
            None => format!("--data {}", self.data.display()),
            Some(url) => format!(
                "--data {} --store {}",
                self.data.display(),
                civicflow::postgres::redact(url)
            ),
        }
    }

    /// The instance's directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// Connects to the shared store's database (creating its tables on first use).
    fn database(&self, url: &str) -> Result<Database, String> {
        Database::connect(url).map_err(|e| e.to_string())
    }

    /// The store's log, for the offline tools.
    ///
    /// # Errors
    /// No store there, a store in use (embedded), a database that cannot be reached.
    pub fn open_log(&self) -> Result<Arc<dyn EventStore>, String> {
        match &self.store {
            None => super::store::open_log(&self.data),
            Some(url) => {
                let database = self.database(url)?;
                let log = PgLog::open(&database).map_err(|e| e.to_string())?;
                Ok(Arc::new(log))
            }
        }
    }

    /// Whether the store holds no event yet.
    ///
    /// # Errors
    /// A database that cannot be reached.
    pub fn is_empty(&self) -> Result<bool, String> {
        match &self.store {
            None => Ok(!self.data.join("log").join("db").exists()),
            Some(_) => {
                let log = self.open_log()?;
                let empty = log.head().is_none();
                super::store::close(log)?;
                Ok(empty)
            }
        }
    }

    /// How to open an engine on this store with `key`, on `clock` (the system's by default).
    ///
    /// # Errors
    /// A database that cannot be reached, a vault whose master key is another.
    pub fn engine_config(
        &self,
        key: MasterKey,
        clock: Option<Arc<dyn Clock>>,
    ) -> Result<EngineConfig, String> {
        let clock = clock.unwrap_or_else(|| Arc::new(SystemClock));
        let config = EngineConfig::new(&self.data)
            .clock(clock.clone())
            .master_key(key.clone());
        let Some(url) = &self.store else {
            return Ok(config);
        };
        let database = self.database(url)?;
        let log = PgLog::open_with_clock(&database, clock).map_err(|e| e.to_string())?;
        let vault = Vault::with_store(PgVaultStore::new(database), key).map_err(|e| {
            format!(
                "cannot open the vault of {}: {e} (every instance of a shared store uses the same master key: CIVICFLOW_MASTER_KEY, or --key-file FILE with the key the first instance made)",
                self.describe()
            )
        })?;
        Ok(config.storage(Storage {
            log: Arc::new(log),
            vault,
        }))
    }
}
