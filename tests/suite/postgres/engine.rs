//! Two engines on one PostgreSQL store, as two service instances run them: the deadline
//! scheduler takes each due step exactly once across both, and a change one makes to the org
//! chart is what the other decides with.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Barrier};

use civicflow::core::domain::case::{CaseEvent, Channel};
use civicflow::core::domain::fields::{FieldValue, Fields};
use civicflow::core::domain::org::{roles, OrgCommand, Tier};
use civicflow::core::domain::workflow::WorkflowId;
use civicflow::core::engine::{Command, Engine, EngineConfig, Outcome, Storage};
use civicflow::core::vault::{MasterKey, Vault};
use civicflow::core::{EventStore, ManualClock, Position, UnitId};
use civicflow::demo;
use civicflow::postgres::{Database, PgLog, PgVaultStore};
use civicflow_postgres::testing::Cluster;

use crate::common::TempDir;

/// An engine on the shared store at `url`, with its own directory (its deadline index) and
/// clock, as one instance opens it.
fn instance(url: &str, dir: &Path, clock: &ManualClock, key: &MasterKey) -> Engine {
    let database = Database::connect(url).expect("the database answers");
    let log = PgLog::open_with_clock(&database, Arc::new(clock.clone())).expect("the log opens");
    let vault =
        Vault::with_store(PgVaultStore::new(database), key.clone()).expect("the vault opens");
    Engine::open(
        EngineConfig::new(dir)
            .clock(Arc::new(clock.clone()))
            .master_key(key.clone())
            .storage(Storage {
                log: Arc::new(log),
                vault,
            }),
    )
    .expect("the engine opens")
}

fn open_case(engine: &Engine, title: &str) {
    let mut fields = Fields::new();
    fields.insert(
        "category".into(),
        FieldValue::Choice("public_facilities".into()),
    );
    let outcome = engine
        .submit(
            &demo::acting("li.grid1"),
            Command::OpenCase {
                workflow: WorkflowId::new("service-request").expect("valid"),
                version: None,
                unit: UnitId::new("tonghui").expect("valid"),
                title: title.into(),
                description: String::new(),
                fields,
                requester: None,
                channel: Channel::Door,
                place: None,
            },
        )
        .expect("the case opens");
    assert!(matches!(outcome, Outcome::Case { .. }), "{outcome:?}");
}

/// Every deadline step event in the log: (stream, seq, step) → how many times.
fn steps_in(log: &dyn EventStore) -> BTreeMap<(String, u32, String), usize> {
    let mut steps = BTreeMap::new();
    let mut from = Position::FIRST;
    loop {
        let page = log.read_all(from, 1000).expect("read");
        let Some(last) = page.last() else { break };
        from = last.position.next();
        for event in &page {
            if event.event_type.as_str() == "DeadlineStepReached"
                && event.stream.as_str().starts_with("case-")
            {
                let CaseEvent::DeadlineStepReached(step) =
                    event.decode::<CaseEvent>().expect("decodes")
                else {
                    panic!("a DeadlineStepReached event decodes as one");
                };
                *steps
                    .entry((
                        event.stream.to_string(),
                        step.seq,
                        format!("{:?}", step.step),
                    ))
                    .or_insert(0) += 1;
            }
        }
    }
    steps
}

#[test]
fn the_scheduler_takes_each_due_step_once_across_two_instances() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_store_url();
    let scratch = TempDir::new("pg-scheduler");
    let key = MasterKey::generate().expect("a key");
    let clock_a = ManualClock::new(demo::START);
    let clock_b = ManualClock::new(demo::START);
    let a = instance(&url, &scratch.path().join("a"), &clock_a, &key);
    demo::build_org(&a).expect("the demo's chart");
    for i in 0..12 {
        open_case(&a, &format!("lamp {i}"));
    }
    let b = instance(&url, &scratch.path().join("b"), &clock_b, &key);

    // Weeks later on both clocks: every reminder, escalation and breach is due at once, and
    // both instances' schedulers run at the same moment.
    let later = demo::START.saturating_add(std::time::Duration::from_secs(40 * 24 * 3600));
    clock_a.set(later);
    clock_b.set(later);
    let barrier = Barrier::new(2);
    let run = |engine: &Engine| {
        barrier.wait();
        engine.run_due_deadlines().expect("the scheduler runs")
    };
    let (taken_a, taken_b) = std::thread::scope(|scope| {
        let run = &run;
        let (a, b) = (&a, &b);
        let a_run = scope.spawn(move || run(a));
        let b_run = scope.spawn(move || run(b));
        (a_run.join().expect("a"), b_run.join().expect("b"))
    });
    assert!(!taken_a.is_empty() || !taken_b.is_empty(), "steps were due");
    let steps = steps_in(&**a.log());
    assert!(!steps.is_empty());
    for (step, count) in &steps {
        assert_eq!(*count, 1, "step {step:?} was taken {count} times");
    }
    // Running again on either finds nothing left to do.
    assert!(a.run_due_deadlines().expect("again").is_empty());
    assert!(b.run_due_deadlines().expect("again").is_empty());
    assert_eq!(steps_in(&**b.log()), steps);
    assert!(a.log().verify().expect("verify").is_intact());
    drop((a, b));
    cluster.drop_store(&url);
}

#[test]
fn a_unit_added_through_one_instance_is_known_to_the_other_at_its_next_decision() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_store_url();
    let scratch = TempDir::new("pg-org");
    let key = MasterKey::generate().expect("a key");
    let clock = ManualClock::new(demo::START);
    let a = instance(&url, &scratch.path().join("a"), &clock, &key);
    demo::build_org(&a).expect("the demo's chart");
    let b = instance(&url, &scratch.path().join("b"), &clock, &key);
    assert!(b
        .org()
        .unit(&UnitId::new("grid-9").expect("valid"))
        .is_none());

    // A adds a grid; B, which opened before, dispatches a case to it.
    a.submit(
        &demo::acting("wang.secretary"),
        Command::Org(OrgCommand::CreateUnit {
            id: UnitId::new("grid-9").expect("valid"),
            name: "第九网格 grid 9".into(),
            tier: Tier::Grid,
            parent: Some(UnitId::new("tonghui").expect("valid")),
        }),
    )
    .expect("the unit is created through A");
    let _ = roles::GRID_WORKER;
    let mut fields = Fields::new();
    fields.insert(
        "category".into(),
        FieldValue::Choice("public_facilities".into()),
    );
    let opened = b.submit(
        &demo::acting("wang.secretary"),
        Command::OpenCase {
            workflow: WorkflowId::new("service-request").expect("valid"),
            version: None,
            unit: UnitId::new("grid-9").expect("valid"),
            title: "opened at the new grid through B".into(),
            description: String::new(),
            fields,
            requester: None,
            channel: Channel::Door,
            place: None,
        },
    );
    assert!(
        opened.is_ok(),
        "B decides with the chart A changed: {opened:?}"
    );
    assert!(b
        .org()
        .unit(&UnitId::new("grid-9").expect("valid"))
        .is_some());
    drop((a, b));
    cluster.drop_store(&url);
}
