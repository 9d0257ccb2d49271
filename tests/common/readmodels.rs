//! Read-model helpers shared by the projection tests: run every model to the head, and
//! snapshot every row of every model so two stores can be compared.

use std::sync::Arc;
use std::time::Duration;

use civicflow::core::domain::workflow::DefinitionRegistry;
use civicflow::core::readmodel::{Namespace, ReadModelStore};
use civicflow::core::EventStore;
use civicflow::projections::{models, Runner, RunnerOptions};

/// Every row (key, value) of every model's active version, by model name.
pub type Snapshot = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;

pub fn snapshot(store: &dyn ReadModelStore) -> Snapshot {
    models::names()
        .iter()
        .map(|name| {
            let version = store
                .active(name)
                .expect("read")
                .expect("the model is active");
            let ns = Namespace::new(name, version).expect("valid");
            (
                (*name).to_owned(),
                store.scan(&ns, b"", None, usize::MAX).expect("scan"),
            )
        })
        .collect()
}

/// Runs every model on `store` until it has applied the whole of `log`, in batches of `batch`.
pub fn run_to_head(
    log: &Arc<dyn EventStore>,
    store: Arc<dyn ReadModelStore>,
    definitions: &Arc<DefinitionRegistry>,
    batch: usize,
) {
    let runner = Runner::start(
        log.clone(),
        store,
        models::all(
            definitions.clone(),
            civicflow::core::calendar::Zone::shanghai(),
        ),
        RunnerOptions {
            batch_events_max: batch,
            idle_wait: Duration::from_millis(5),
            ..RunnerOptions::default()
        },
    )
    .expect("start");
    runner
        .wait_until_caught_up(Duration::from_secs(120))
        .expect("caught up");
}
