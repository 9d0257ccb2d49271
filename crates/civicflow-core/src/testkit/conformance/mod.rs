//! The event log's conformance kit: the log's behavioural tests, written once against
//! [`EventStore`], for every storage backend.
//!
//! A backend proves it keeps the guarantees of `docs/design.md` by running every check here
//! against its own stores. The embedded backend runs the kit in civicflow's `cargo test`
//! through its factory, `civicflow_core::SledBackend`; a later backend (PostgreSQL, issue
//! 15) runs the same checks unchanged. The example below writes a backend factory from
//! scratch, as another backend would.
//!
//! # What a backend provides
//!
//! A [`Backend`]: a factory of empty *places* (where one store lives: a directory, a
//! database schema) and a way to open the store at a place, with a clock and a tuning. The
//! contract is on the trait. The kit opens the same place again to test what survives a
//! reopen, and opens several places in one check to restore from one store into another.
//!
//! # Running it
//!
//! One line turns every check into a `#[test]`: [`event_store_conformance!`](crate::event_store_conformance).
//!
//! ```
//! use std::path::PathBuf;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! use civicflow_core::testkit::conformance::Backend;
//! use civicflow_core::{Clock, EventStore, OpenError, SledLogConfig};
//!
//! /// sled stores in fresh directories under the system's temporary directory.
//! struct Sled;
//!
//! /// A directory, removed when dropped unless a check failed.
//! struct Dir(PathBuf);
//!
//! impl Drop for Dir {
//!     fn drop(&mut self) {
//!         if !std::thread::panicking() {
//!             let _ = std::fs::remove_dir_all(&self.0);
//!         }
//!     }
//! }
//!
//! impl Backend for Sled {
//!     type Place = Dir;
//!
//!     fn place(&self) -> Dir {
//!         static NEXT: AtomicU64 = AtomicU64::new(0);
//!         let n = NEXT.fetch_add(1, Ordering::Relaxed);
//!         Dir(std::env::temp_dir().join(format!("doc-kit-{}-{n}", std::process::id())))
//!     }
//!
//!     fn open(&self, place: &Dir, clock: Arc<dyn Clock>, tuning: u8)
//!         -> Result<Arc<dyn EventStore>, OpenError>
//!     {
//!         let mut config = SledLogConfig::new(&place.0).clock(clock);
//!         if tuning > 0 {
//!             config = config.index_flush_events(usize::from(tuning));
//!         }
//!         Ok(Arc::new(config.open()?))
//!     }
//! }
//!
//! civicflow_core::event_store_conformance!(Sled);
//! # fn main() {}
//! ```
//!
//! Each check is also a public function generic over the backend (`model(&backend)`, …),
//! for a backend that wants to run some of them its own way. A failing check panics with a
//! message that names the check, the backend, where its stores are (`EventStore::location`),
//! and the step, round, position or stream that went wrong; the model test names its seed.
//! The proptest cases follow `CIVICFLOW_PROPTEST_CASES` (24 by default, so that `cargo test`
//! stays fast) and `CIVICFLOW_PROPTEST_SEED` replays a seed a failure named.
//!
//! # The checks, and the guarantee each proves
//!
//! The model (`model.rs`):
//! - [`model`]: under random appends (one or several streams; right, wrong and `Any`
//!   expected versions; new, retried and misused idempotency keys; bulk appends), reads,
//!   a live subscription, clock moves and reopenings with varied tunings, the log is the
//!   in-memory model after every step: no lost, duplicated or reordered event, no gap in
//!   positions or versions, a conflict or a replay writes nothing, `recorded_at` never goes
//!   backwards, reads agree, the chain verifies, the subscription never skips or repeats,
//!   and after `close` every handle gets `Closed`.
//! - [`reopening_right_after_the_last_handle_is_gone_is_never_locked`]: closing (or dropping
//!   every handle) lets go of the place, so it opens again at once, 300 times over, with
//!   every event.
//!
//! Concurrency (`concurrency.rs`):
//! - [`racing_writers_win_each_version_of_one_stream_exactly_once`]: of many writers
//!   expecting the same version exactly one wins; the stream holds exactly the winners.
//! - [`atomic_pair_appends_stay_whole_and_contiguous`]: an atomic append to two streams is
//!   two neighbouring positions, with contiguous versions in both streams.
//! - [`async_and_thread_appends_are_all_readable_where_acknowledged`]: async and blocking
//!   appends at once are each where their answer said, covering positions 1..n once.
//!
//! Subscriptions that never skip (`subscriptions.rs`):
//! - [`a_live_subscriber_sees_every_position_once_in_order`]: a subscriber following live
//!   writers sees every position once, in order, and nothing past the last; concurrent
//!   stream reads are gap-free prefixes that never shrink.
//! - [`a_stream_subscription_sees_its_stream_only_in_order_and_live`]: a stream
//!   subscription catches up from a version, then follows live, seeing only its stream.
//! - [`a_subscriber_that_stops_reading_holds_up_no_writer`]: a stalled subscriber slows no
//!   commit, catches up in order later, and a waiting one gets `Closed` when the log closes.
//!
//! Idempotency (`idempotency.rs`):
//! - [`concurrent_retries_of_one_keyed_request_write_it_once`]: simultaneous retries of
//!   one keyed request write it once; the others get its result, a different request under
//!   the key is refused.
//! - [`a_keyed_append_retried_after_reopen_answers_the_stored_result_and_writes_nothing`]:
//!   after close and reopen (or dropping every handle), a retry answers the stored result,
//!   deduplicated, even with stale expected versions, and writes nothing.
//! - [`a_key_reused_for_another_request_is_refused_across_reopen`]: a key reused for
//!   another request is refused, naming the key, before and after reopening, writing nothing.
//! - [`a_caller_fingerprint_decides_which_retries_are_the_same_request`]: with the
//!   caller's fingerprint, other events under the key are the same request and answered the
//!   first result; another fingerprint is refused; the record keeps the fingerprint.
//!
//! What each event keeps (`metadata.rs`):
//! - [`each_event_keeps_its_own_cause_or_the_appends`]: the append's correlation id on every
//!   event; an event's own cause, or the append's.
//!
//! The chain (`chain.rs`):
//! - [`verify_and_verify_stream_are_intact_over_a_history`]: `verify` and `verify_stream`
//!   are intact over a larger history and across a reopen, counting every event and ending
//!   at the head.
//! - [`stored_hashes_chain`]: every stored hash is the chain's SHA-256 over its stored bytes
//!   and its predecessors in the log and the stream; the bytes decode to what `read_all`
//!   returns.
//!
//! Restore (`restore.rs`):
//! - [`a_restored_log_is_the_exported_one_byte_for_byte`]: exported into another store of
//!   the backend: the same records, bytes, hashes, head, stream versions and idempotency
//!   records; appends, subscriptions and a reopen go on normally.
//! - [`a_changed_export_is_refused_naming_the_position_and_leaves_the_log_empty`] (an
//!   export with a changed byte or hash, a dropped or cut-off record, or a damaged
//!   idempotency record is refused naming where, and leaves the store empty).
//! - [`a_log_that_holds_anything_is_refused`]: a restore only fills an empty store.
//! - [`a_restore_refused_after_writing_batches_removes_them`]: a restore refused after
//!   thousands of records leaves nothing, also after a reopen.
//!
//! What only one backend can do stays in its own tests (for sled: failed syncs, SIGKILL
//! during appends, damaged files).

mod chain;
mod concurrency;
mod idempotency;
mod metadata;
mod model;
mod restore;
mod subscriptions;
mod support;

#[cfg(test)]
mod mutants;

use std::sync::Arc;

use crate::{Clock, EventStore, OpenError};

pub use chain::{stored_hashes_chain, verify_and_verify_stream_are_intact_over_a_history};
pub use concurrency::{
    async_and_thread_appends_are_all_readable_where_acknowledged,
    atomic_pair_appends_stay_whole_and_contiguous,
    racing_writers_win_each_version_of_one_stream_exactly_once,
};
pub use idempotency::{
    a_caller_fingerprint_decides_which_retries_are_the_same_request,
    a_key_reused_for_another_request_is_refused_across_reopen,
    a_keyed_append_retried_after_reopen_answers_the_stored_result_and_writes_nothing,
    concurrent_retries_of_one_keyed_request_write_it_once,
};
pub use metadata::each_event_keeps_its_own_cause_or_the_appends;
pub use model::{model, reopening_right_after_the_last_handle_is_gone_is_never_locked};
pub use restore::{
    a_changed_export_is_refused_naming_the_position_and_leaves_the_log_empty,
    a_log_that_holds_anything_is_refused, a_restore_refused_after_writing_batches_removes_them,
    a_restored_log_is_the_exported_one_byte_for_byte,
};
pub use subscriptions::{
    a_live_subscriber_sees_every_position_once_in_order,
    a_stream_subscription_sees_its_stream_only_in_order_and_live,
    a_subscriber_that_stops_reading_holds_up_no_writer,
};

/// A storage backend under test: makes empty places and opens the store at a place.
///
/// # The contract
///
/// - **Places are fresh and never shared.** Every call of [`Backend::place`] returns a place
///   no other call returned, in this process or another one running at the same time
///   (`cargo test` runs checks on parallel threads, and test binaries may run side by side).
///   The kit asks for a place for every store it needs and never hands one to two checks.
/// - **Opening a fresh place gives an empty store**: no head, no events, no stream, no
///   idempotency record; its `verify` is intact with nothing checked. Creating whatever the
///   store needs (a directory, tables in a schema) is `open`'s job.
/// - **Opening a place again gives the store it held**, with every acknowledged append. The
///   kit reopens a place only after it closed the store (`EventStore::close`) and dropped
///   every handle, or after dropping every handle without closing; either way `open` must
///   succeed at once, never answering that the store is still in use.
/// - **The clock** stamps `recorded_at` (the store never stamps backwards, even when the
///   clock goes back). The model test moves a manual clock; other checks pass the real one.
/// - **The tuning** is a small number the backend may map to internal settings, to make it
///   move what it keeps in memory to storage more often: 0 asks for the backend's defaults,
///   1 to 255 for something smaller, the smaller the more often (sled takes it as
///   `index_flush_events`). It must never change what the store does: the kit opens one
///   place with different tunings in turn and expects the same answers.
/// - **Cleanup.** The kit drops a place after it closed and dropped every store on it, and
///   dropping a place removes everything in it. When the thread is panicking
///   (`std::thread::panicking()`: a check failed) a backend may keep it for a look; the
///   failure's message names it through the store's `location()`.
/// - **The real store**: the backend's own `EventStore` with its production durability, not
///   a test double.
pub trait Backend: Sync {
    /// Where one store lives: a directory, a database schema. Dropping it removes the store.
    type Place: Send;

    /// A fresh, empty place, never returned before.
    fn place(&self) -> Self::Place;

    /// Opens the store at `place`: an empty store on a fresh place, the store it holds on a
    /// place opened before. See the trait's contract for `clock` and `tuning`.
    ///
    /// # Errors
    /// [`OpenError`] when the store cannot be opened; every check fails on it.
    fn open(
        &self,
        place: &Self::Place,
        clock: Arc<dyn Clock>,
        tuning: u8,
    ) -> Result<Arc<dyn EventStore>, OpenError>;

    /// The backend's name in failure messages; its type's name unless it says otherwise.
    fn name(&self) -> String {
        std::any::type_name::<Self>().to_owned()
    }
}

/// Turns every check of the conformance kit into a `#[test]` for a backend, in a module of
/// its own (`event_store_conformance`, or a name given first).
///
/// `$backend` is an expression that makes the backend, evaluated once per test:
///
/// ```
/// civicflow_core::event_store_conformance!(civicflow_core::SledBackend::new());
/// // Or, for two backends in one file, each in its own module:
/// civicflow_core::event_store_conformance!(
///     sled_elsewhere: civicflow_core::SledBackend::under(std::env::temp_dir().join("kit"))
/// );
/// # fn main() {}
/// ```
///
/// The tests are named after the checks (`event_store_conformance::model`, …); every check
/// is listed, with the guarantee it proves, in [`testkit::conformance`](crate::testkit::conformance).
/// The generated module imports everything of the module it is invoked in (`use super::*`),
/// so a backend type defined beside the invocation needs no path. Invoked inside a module of a
/// test binary, as civicflow's own tests do (the `conformance` module of
/// `crates/civicflow-core/tests/core/`), the tests are named
/// `conformance::event_store_conformance::model`, …
#[macro_export]
macro_rules! event_store_conformance {
    ($module:ident : $backend:expr $(,)?) => {
        /// The event log's conformance kit (`civicflow_core::testkit::conformance`) against
        /// this backend.
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $crate::event_store_conformance!(@tests $backend;
                model,
                reopening_right_after_the_last_handle_is_gone_is_never_locked,
                racing_writers_win_each_version_of_one_stream_exactly_once,
                atomic_pair_appends_stay_whole_and_contiguous,
                async_and_thread_appends_are_all_readable_where_acknowledged,
                a_live_subscriber_sees_every_position_once_in_order,
                a_stream_subscription_sees_its_stream_only_in_order_and_live,
                a_subscriber_that_stops_reading_holds_up_no_writer,
                concurrent_retries_of_one_keyed_request_write_it_once,
                a_keyed_append_retried_after_reopen_answers_the_stored_result_and_writes_nothing,
                a_key_reused_for_another_request_is_refused_across_reopen,
                a_caller_fingerprint_decides_which_retries_are_the_same_request,
                each_event_keeps_its_own_cause_or_the_appends,
                verify_and_verify_stream_are_intact_over_a_history,
                stored_hashes_chain,
                a_restored_log_is_the_exported_one_byte_for_byte,
                a_changed_export_is_refused_naming_the_position_and_leaves_the_log_empty,
                a_log_that_holds_anything_is_refused,
                a_restore_refused_after_writing_batches_removes_them,
            );
        }
    };
    (@tests $backend:expr; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::testkit::conformance::$check(&$backend);
            }
        )+
    };
    ($backend:expr $(,)?) => {
        $crate::event_store_conformance!(event_store_conformance: $backend);
    };
}
