//! The kit can fail: sled stores wrapped in deliberately broken `EventStore`s make the
//! checks that guard against each fault panic, naming the check and the store, while the
//! same wrapper without a fault passes them.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::support::panic_text;
use super::Backend;
use crate::error::ReadError;
use crate::store::AppendResult;
use crate::testkit::{Intercept, Intercepted};
use crate::{
    AppendRequest, Clock, Completion, EventStore, ExpectedVersion, OpenError, Position,
    RecordedEvent,
};

/// What a broken store does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing: the control.
    None,
    /// `read_all` leaves out every event whose position is a multiple of 50.
    DropsEvery50th,
    /// A keyed append whose key already has a result is written again, as a new append.
    RewritesRetries,
    /// An append that conflicts is written anyway, with every expectation made `Any`.
    WritesConflicts,
}

/// A store that passes everything to `inner`, except what its fault breaks.
#[derive(Debug)]
struct Broken {
    inner: Arc<dyn EventStore>,
    fault: Fault,
}

impl Broken {
    fn broken_append(&self, request: AppendRequest) -> AppendResult {
        match self.fault {
            Fault::RewritesRetries => {
                if let Some(key) = &request.idempotency_key {
                    if self.inner.idempotent_result(key).ok().flatten().is_some() {
                        let mut again = request;
                        again.idempotency_key = None;
                        return self.inner.append(again);
                    }
                }
                self.inner.append(request)
            }
            Fault::WritesConflicts => match self.inner.append(request.clone())? {
                Err(_conflict) => {
                    let mut anyway = request;
                    for write in &mut anyway.writes {
                        write.expected = ExpectedVersion::Any;
                    }
                    self.inner.append(anyway)
                }
                answer => Ok(answer),
            },
            Fault::None | Fault::DropsEvery50th => self.inner.append(request),
        }
    }

    fn broken_read_all(&self, events: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
        match self.fault {
            Fault::DropsEvery50th => events
                .into_iter()
                .filter(|e| e.position.get() % 50 != 0)
                .collect(),
            _ => events,
        }
    }
}

impl Intercept for Broken {
    fn inner(&self) -> &dyn EventStore {
        &*self.inner
    }
    fn append(&self, request: AppendRequest) -> AppendResult {
        self.broken_append(request)
    }
    fn append_async(&self, request: AppendRequest) -> Completion<AppendResult> {
        match self.fault {
            Fault::None | Fault::DropsEvery50th => self.inner.append_async(request),
            Fault::RewritesRetries | Fault::WritesConflicts => {
                Completion::ready(self.broken_append(request))
            }
        }
    }
    fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        Ok(self.broken_read_all(self.inner.read_all(from, max)?))
    }
}

/// sled stores, each wrapped in a [`Broken`] with `fault`, under a root of their own that is
/// removed afterwards (every run with a fault fails on purpose, which keeps its places).
struct Mutant {
    fault: Fault,
    sled: crate::SledBackend,
    root: PathBuf,
}

impl Mutant {
    fn new(fault: Fault) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "civicflow-kit-mutant-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        Self {
            fault,
            sled: crate::SledBackend::under(&root),
            root,
        }
    }
}

impl Drop for Mutant {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Backend for Mutant {
    type Place = crate::SledPlace;

    fn place(&self) -> crate::SledPlace {
        self.sled.place()
    }

    fn open(
        &self,
        place: &crate::SledPlace,
        clock: Arc<dyn Clock>,
        tuning: u8,
    ) -> Result<Arc<dyn EventStore>, OpenError> {
        Ok(Arc::new(Intercepted(Broken {
            inner: Arc::new(self.sled.open_log(place, clock, tuning)?),
            fault: self.fault,
        })))
    }

    fn name(&self) -> String {
        format!("sled with fault {:?}", self.fault)
    }
}

/// Runs `check` against sled with `fault` and returns its panic message, if it panicked.
fn failure(fault: Fault, check: impl FnOnce(&Mutant)) -> Option<String> {
    let backend = Mutant::new(fault);
    let result = panic::catch_unwind(AssertUnwindSafe(|| check(&backend)));
    result.err().map(|payload| panic_text(&*payload))
}

/// Asserts that `check` passes without a fault and fails with `fault`, naming itself
/// (`name`), the fault and a store of the run. Returns the failure's message.
fn caught(fault: Fault, name: &str, check: impl Fn(&Mutant)) -> String {
    if let Some(message) = failure(Fault::None, &check) {
        panic!("the control (no fault) failed `{name}`: {message}");
    }
    let Some(message) = failure(fault, &check) else {
        panic!("`{name}` passed a store with fault {fault:?}: the check cannot fail");
    };
    assert!(
        message.contains(&format!("conformance check `{name}` failed")),
        "the failure does not name the check: {message}"
    );
    assert!(
        message.contains(&format!("{fault:?}")),
        "the failure does not name the backend: {message}"
    );
    assert!(
        message.contains("civicflow-kit-mutant-"),
        "the failure does not name where the store is: {message}"
    );
    println!("`{name}` on a store with fault {fault:?} failed, as it must:\n{message}");
    message
}

#[test]
fn a_store_whose_read_all_drops_every_50th_event_fails_the_live_subscriber_check() {
    let _ = caught(
        Fault::DropsEvery50th,
        "a_live_subscriber_sees_every_position_once_in_order",
        super::a_live_subscriber_sees_every_position_once_in_order,
    );
}

#[test]
fn a_store_that_writes_a_retry_again_fails_the_idempotency_across_reopen_check() {
    let _ = caught(
        Fault::RewritesRetries,
        "a_keyed_append_retried_after_reopen_answers_the_stored_result_and_writes_nothing",
        |backend| {
            super::a_keyed_append_retried_after_reopen_answers_the_stored_result_and_writes_nothing(
                backend,
            )
        },
    );
}

#[test]
fn a_store_that_writes_conflicting_appends_fails_the_model() {
    // Without shrinking, so that the first failing case is reported at once.
    let message = caught(Fault::WritesConflicts, "model", |backend| {
        super::model::model_with(backend, 12, false);
    });
    assert!(
        message.contains("CIVICFLOW_PROPTEST_SEED="),
        "the model's failure does not name its seed: {message}"
    );
    assert!(
        message.contains("step "),
        "the model's failure does not name the step: {message}"
    );
}
