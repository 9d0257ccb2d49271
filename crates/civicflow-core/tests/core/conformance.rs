//! The event log's conformance kit (`civicflow_core::testkit::conformance`) against the
//! embedded backend, `SledLog`, and the vault's (`civicflow_core::testkit::vault`) against
//! the embedded vault store, `SledVaultStore`: every check of both kits is a test here
//! (`conformance::event_store_conformance::…`, `conformance::vault_store_conformance::…`).
//!
//! `cargo test -p civicflow-core --test core conformance::`; `CIVICFLOW_PROPTEST_CASES=1000`
//! runs the model test longer (in a release build: `--release`), `CIVICFLOW_PROPTEST_SEED=N`
//! replays the seed a failure named. What only sled does is tested beside it: failed syncs
//! (the root package's `tests/suite/sled/log_poison.rs`), SIGKILL during appends
//! (`tests/log_crash.rs`), damaged bytes (`sled::corruption` here,
//! `tests/suite/sled/damaged_files.rs`).

// The embedded backend's factory for the kit is `civicflow_core::SledBackend` (feature
// `testkit`): places in temporary directories, sled's default durability, the kit's tuning
// as sled's `index_flush_events`.
civicflow_core::event_store_conformance!(civicflow_core::SledBackend::new());

/// The embedded vault store, `SledVaultStore`, for the vault's conformance kit
/// (`civicflow_core::testkit::vault`): stores in fresh directories of their own.
mod embedded_vault {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    use civicflow_core::testkit::vault::VaultBackend;
    use civicflow_core::vault::{VaultError, VaultStore};
    use civicflow_core::SledVaultStore;

    /// `SledVaultStore`s in fresh directories under the system's temporary directory.
    pub(super) struct SledVaults;

    /// A vault's directory, removed when dropped unless a check failed (its message names
    /// the directory).
    pub(super) struct VaultDir(PathBuf);

    impl Drop for VaultDir {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    impl VaultBackend for SledVaults {
        type Place = VaultDir;

        fn place(&self) -> VaultDir {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "civicflow-conformance-vault-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            // A directory left by an earlier run of a process with the same id.
            let _ = std::fs::remove_dir_all(&dir);
            VaultDir(dir)
        }

        fn open(&self, place: &VaultDir) -> Result<Box<dyn VaultStore>, VaultError> {
            Ok(Box::new(SledVaultStore::open(&place.0)?))
        }

        /// The key file holds the check value and every key; the records and markers are
        /// in the data store beside it.
        fn lose_keys(&self, place: &VaultDir) {
            std::fs::remove_file(place.0.join("keys.bin")).expect("remove the key file");
        }

        fn name(&self) -> String {
            "sled (SledVaultStore)".to_owned()
        }
    }
}

civicflow_core::vault_store_conformance!(embedded_vault::SledVaults);
