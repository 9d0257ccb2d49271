//! How an engine is opened: where its data lives, which storage, clock, calendar and
//! workflows.

use std::path::PathBuf;
use std::sync::Arc;

use crate::calendar::{BusinessCalendar, Zone};
use crate::clock::{Clock, SystemClock};
use crate::domain::workflow::DefinitionRegistry;
use crate::store::{Durability, EventStore};
use crate::vault::{MasterKey, Vault};

/// Where an engine keeps its log and its vault.
///
/// [`Storage::embedded`] (what [`EngineConfig`] uses unless given one) opens both in the
/// data directory; an embedder with another backend builds one from its own [`EventStore`]
/// and a [`Vault`] on its own `VaultStore`.
pub struct Storage {
    /// The event log.
    pub log: Arc<dyn EventStore>,
    /// The personal-data vault.
    pub vault: Vault,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("log", &self.log)
            .field("vault", &self.vault)
            .finish()
    }
}

/// How to open an [`Engine`](super::Engine).
#[derive(Debug)]
pub struct EngineConfig {
    /// The data directory: the embedded log in `log/`, the vault in `vault/`, the deadline
    /// index's snapshot.
    pub data_dir: PathBuf,
    /// The storage, when not the embedded one in `data_dir` (see [`Storage`]).
    pub storage: Option<Storage>,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// Working time for deadlines.
    pub calendar: BusinessCalendar,
    /// The workflow definitions.
    pub definitions: DefinitionRegistry,
    /// The key that wraps every person's key (see `docs/decisions/0004-personal-data.md`).
    pub master_key: Option<MasterKey>,
    /// Durability of the log.
    pub durability: Durability,
    /// The embedded log's page cache, in bytes.
    pub log_cache_bytes: u64,
    /// The zone this configuration insists on ([`EngineConfig::time_zone`]): recorded in a
    /// store that has none yet, refused by a store that keeps another. `None`: the store's
    /// recorded zone, or the calendar's (Asia/Shanghai) for a store that never recorded one.
    pub time_zone: Option<Zone>,
}

impl EngineConfig {
    /// Defaults for `data_dir`: the system clock, China's calendar, the built-in workflows,
    /// fsync durability, and no master key yet (set one with [`EngineConfig::master_key`]).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            storage: None,
            clock: Arc::new(SystemClock),
            calendar: BusinessCalendar::china(),
            definitions: DefinitionRegistry::built_in(),
            master_key: None,
            durability: Durability::Fsync,
            log_cache_bytes: 256 * 1024 * 1024,
            time_zone: None,
        }
    }

    /// Uses this master key.
    pub fn master_key(mut self, key: MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }

    /// Uses a fresh random master key (tests and examples: the vault is unreadable after).
    ///
    /// # Panics
    /// If the operating system has no randomness to give.
    pub fn with_generated_master_key(mut self) -> Self {
        self.master_key =
            Some(MasterKey::generate().expect("the operating system gives randomness"));
        self
    }

    /// Uses this clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses this calendar.
    pub fn calendar(mut self, calendar: BusinessCalendar) -> Self {
        self.calendar = calendar;
        self
    }

    /// Counts working time, and writes every time it shows, in `zone`: the calendar's zone
    /// ([`BusinessCalendar::with_zone`]; its holidays and hours stay). The store records it
    /// (`CalendarZoneSet`) when it has no zone yet; a store that keeps another zone refuses
    /// to open with this one, since every local date in its read models was counted in its
    /// own (`docs/engine.md`, "Calendar years"). Without this, the store's recorded zone is
    /// used.
    pub fn time_zone(mut self, zone: Zone) -> Self {
        self.calendar = self.calendar.with_zone(zone.clone());
        self.time_zone = Some(zone);
        self
    }

    /// Uses these definitions.
    pub fn definitions(mut self, definitions: DefinitionRegistry) -> Self {
        self.definitions = definitions;
        self
    }

    /// Sets the log's durability.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the embedded log's page cache size in bytes (memory grows with the store up to it).
    pub fn log_cache_bytes(mut self, bytes: u64) -> Self {
        self.log_cache_bytes = bytes;
        self
    }

    /// Uses `storage` instead of the embedded storage in the data directory.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = Some(storage);
        self
    }
}
