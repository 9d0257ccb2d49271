//! Rebuilding every read model, against a raw replay of the same log in the same run.
//!
//! Run: `cargo bench --bench projections_rebuild` (`-- --quick` for a smoke run). The history is
//! the Tonghui demo's org chart and random commands from its actors through the real engine
//! (the same generator as the projection tests), so events have realistic shapes and mixes.
//! Results are recorded in `docs/benchmarks.md`.
//!
//! - raw replay: `SledLog::read_all` over the whole log in batches of 1024 (records decoded,
//!   payloads not), events per second;
//! - rebuild: a fresh read-model store, every model of `civicflow_projections::models::all`
//!   started together, until all have caught up with the head (their rows committed);
//!   events of the log per second, the CPU time it took, and the rows written; once with the
//!   runner's default options, once as `civicflow rebuild` runs it (the service's 2,000 rows
//!   per model in memory, trimmed after each commit past that);
//! - each model alone, for the breakdown.
//!
//! Each round runs a raw replay and then a rebuild; the table gives the medians and the
//! spread of the per-round ratios. `CIVICFLOW_BENCH_KEEP=DIR` keeps the generated history in
//! `DIR` and reuses it on the next run (for profiling); `CIVICFLOW_BENCH_ONLY=MODEL` runs that
//! model alone and nothing else (`all`: all together, no breakdown).

#[path = "../tests/common/history.rs"]
#[allow(dead_code)]
mod history;

use civicflow::core::{EventStore as _, SledReadModels};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use civicflow::core::calendar::Zone;
use civicflow::core::domain::workflow::DefinitionRegistry;
use civicflow::core::readmodel::ReadModelStore;
use civicflow::core::vault::MasterKey;
use civicflow::core::{ManualClock, Position, SledLog};
use civicflow::demo;
use civicflow::http::ServiceConfig;
use civicflow::projections::{models, Projection, Runner, RunnerOptions};
use history::{open_engine, run_random_commands, Rng};

/// Events per second reading the whole log, and how many events there are.
fn raw_replay(log: &SledLog) -> (f64, u64) {
    let started = Instant::now();
    let mut from = Position::FIRST;
    let mut count = 0u64;
    let mut bytes = 0u64;
    loop {
        let batch = log.read_all(from, 1024).expect("read");
        let Some(last) = batch.last() else { break };
        from = last.position.next();
        count += batch.len() as u64;
        bytes += batch.iter().map(|e| e.payload.len() as u64).sum::<u64>();
    }
    std::hint::black_box(bytes);
    (count as f64 / started.elapsed().as_secs_f64(), count)
}

struct Rebuilt {
    /// Events of the log per second.
    rate: f64,
    /// CPU seconds the process spent meanwhile.
    cpu: f64,
    /// Rows in the store afterwards.
    rows: usize,
}

fn rebuild(
    log: &SledLog,
    dir: &Path,
    projections: Vec<Box<dyn Projection>>,
    options: RunnerOptions,
) -> Rebuilt {
    let _ = std::fs::remove_dir_all(dir);
    let store = Arc::new(SledReadModels::open(dir).expect("store"));
    let events = log.head().map_or(0, |h| h.position.get());
    let cpu_started = cpu_seconds();
    let started = Instant::now();
    let runner =
        Runner::start(Arc::new(log.clone()), store.clone(), projections, options).expect("start");
    runner
        .wait_until_caught_up(Duration::from_secs(600))
        .expect("caught up");
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_started;
    drop(runner);
    let rows = store
        .namespaces()
        .expect("namespaces")
        .iter()
        .map(|ns| store.scan(ns, b"", None, usize::MAX).expect("scan").len())
        .sum();
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
    Rebuilt {
        rate: events as f64 / wall,
        cpu,
        rows,
    }
}

/// CPU time the process's live threads have used so far, in seconds: the sum over
/// `/proc/self/task/*/schedstat` (nanoseconds; Linux only, 0 elsewhere). Threads that have
/// exited are not counted, so take both readings while the threads to measure live.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    nanos as f64 / 1e9
}

/// The options `civicflow rebuild` runs the read models with.
fn command_options() -> RunnerOptions {
    ServiceConfig::runner_options(ServiceConfig::DEFAULT_PROJECTION_ROWS_IN_MEMORY)
}

/// The lowest and the highest of `v`.
fn spread(v: &[f64]) -> (f64, f64) {
    (
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(0.0, f64::max),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The history to replay: generated once (kept in `CIVICFLOW_BENCH_KEEP` if set).
fn history(base: &Path, commands: usize, reuse: bool) {
    if reuse {
        return;
    }
    let clock = ManualClock::new(demo::START);
    let key = MasterKey::generate().expect("randomness");
    let engine = open_engine(&base.join("data"), &clock, &key);
    demo::build_org(&engine).expect("demo chart");
    let mut rng = Rng::new(20_261_127);
    let mut cases = Vec::new();
    let generated = Instant::now();
    let accepted = run_random_commands(&engine, &clock, &mut rng, commands, &mut cases);
    println!(
        "history: {accepted} accepted of {commands} commands, {} cases, {} events (generated in {:.1?})",
        cases.len(),
        engine.log().head().map_or(0, |h| h.position.get()),
        generated.elapsed()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (commands, rounds) = if quick { (2_000, 1) } else { (30_000, 5) };
    let keep = std::env::var_os("CIVICFLOW_BENCH_KEEP").map(PathBuf::from);
    let base = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "civicflow-bench-projections-{}",
            std::process::id()
        ))
    });
    let reuse = keep.is_some() && base.join("data").join("log").exists();
    if !reuse {
        let _ = std::fs::remove_dir_all(&base);
    }
    history(&base, commands, reuse);
    let definitions = Arc::new(DefinitionRegistry::built_in());
    let log = SledLog::open(base.join("data").join("log")).expect("log");

    let only = std::env::var("CIVICFLOW_BENCH_ONLY").ok();
    let together = only.as_deref().is_none_or(|only| only == "all");
    let (mut raw, mut all, mut cpu, mut ratios) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut command, mut command_ratios) = (Vec::new(), Vec::new());
    let mut events = 0;
    let mut rows = 0;
    for _ in 0..rounds {
        // On a thread of its own, as the rebuild's workers are (a thread's first allocations
        // are cheaper than the main thread's after generating the history).
        let (rate, count) = std::thread::scope(|s| {
            s.spawn(|| raw_replay(&log))
                .join()
                .expect("the replay thread")
        });
        raw.push(rate);
        events = count;
        if together {
            let rebuilt = rebuild(
                &log,
                &base.join("rm-all"),
                models::all(definitions.clone(), Zone::shanghai()),
                RunnerOptions::default(),
            );
            ratios.push(rebuilt.rate / rate);
            all.push(rebuilt.rate);
            cpu.push(rebuilt.cpu);
            rows = rebuilt.rows;
            let as_command = rebuild(
                &log,
                &base.join("rm-command"),
                models::all(definitions.clone(), Zone::shanghai()),
                command_options(),
            );
            command_ratios.push(as_command.rate / rate);
            command.push(as_command.rate);
        }
    }
    let raw = median(raw);
    println!("\n## rebuild of every read model, {events} events, {rounds} rounds");
    println!("| what | events/s | ratio to raw replay |");
    println!("|---|---:|---:|");
    println!("| raw replay (read_all, batches of 1024) | {raw:.0} | 1.00 |");
    if together {
        let (low, high) = spread(&ratios);
        println!(
            "| rebuild of all {} models together ({rows} rows, {:.3} s CPU) | {:.0} | **{:.2}** ({low:.2} to {high:.2}) |",
            models::names().len(),
            median(cpu),
            median(all),
            median(ratios),
        );
        let (low, high) = spread(&command_ratios);
        println!(
            "| the same as `civicflow rebuild` runs it ({} rows per model in memory) | {:.0} | {:.2} ({low:.2} to {high:.2}) |",
            command_options().rows_in_memory_max,
            median(command),
            median(command_ratios),
        );
    }
    for (i, name) in models::names()
        .iter()
        .enumerate()
        .filter(|(_, name)| only.as_deref().is_none_or(|only| only == **name))
    {
        let alone: Vec<Box<dyn Projection>> = models::all(definitions.clone(), Zone::shanghai())
            .into_iter()
            .skip(i)
            .take(1)
            .collect();
        let rebuilt = rebuild(
            &log,
            &base.join(format!("rm-{name}")),
            alone,
            RunnerOptions::default(),
        );
        println!(
            "| rebuild of {name} alone ({} rows) | {:.0} | {:.2} |",
            rebuilt.rows,
            rebuilt.rate,
            rebuilt.rate / raw
        );
    }
    drop(log);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
}
