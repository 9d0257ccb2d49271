//! The Tonghui demo: builds the community of the seed article (通惠社区, its grids, 义乌之心,
//! 银泰百货 and 新天地 with shops under them, the department, legal aid, volunteers), runs every
//! closed loop end to end on a real store (a late step that escalates, a directive that reaches
//! every shop), prints one case's audit, and then what the read models say about it all.
//!
//! Run with `cargo run --release --example tonghui [DIR]` (DIR is kept; without it a
//! temporary store is removed at the end).

use std::sync::Arc;

use civicflow::core::engine::{Contact, Engine, EngineConfig};
use civicflow::core::vault::MasterKey;
use civicflow::core::SledReadModels;
use civicflow::core::{Clock, ManualClock};
use civicflow::demo;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keep = std::env::args().nth(1);
    let dir = keep
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("civicflow-tonghui-{}", std::process::id()))
        });
    if dir.exists() {
        return Err(format!("{} exists; give the demo a new directory", dir.display()).into());
    }
    let clock = ManualClock::new(demo::START);
    let engine = Engine::open(
        EngineConfig::new(&dir)
            .clock(Arc::new(clock.clone()))
            .master_key(MasterKey::generate()?),
    )?;
    demo::build_org(&engine)?;
    let run = demo::run_loops(&engine, &clock)?;

    println!("Tonghui demo in {}", dir.display());
    println!(
        "{} units, {} actors",
        engine.org().units().count(),
        engine.org().actors().count()
    );
    let secretary = demo::acting("wang.secretary");
    for (label, case) in [
        ("service request, in time", run.smooth_case),
        ("service request, escalated", run.escalated_case),
        ("duplicate, merged", run.duplicate_case),
        ("district affairs", run.district_case),
        ("consumer dispute", run.dispute_case),
        ("one-stop errand", run.errand_case),
    ] {
        let view = engine.case(&secretary, case)?;
        let contact = match &view.contact {
            Contact::Masked(m) => format!(
                "requester {} {}",
                m.name.as_deref().unwrap_or("-"),
                m.phone.as_deref().unwrap_or("")
            ),
            Contact::Erased => "requester erased".to_owned(),
            Contact::None => "no requester".to_owned(),
        };
        println!(
            "  {label:<28} {} — {} at {}, {}{}",
            view.state.workflow,
            view.state.stage,
            view.state.lead,
            contact,
            view.state
                .rating
                .map(|r| format!(", rated {r}/5"))
                .unwrap_or_default()
        );
    }
    let view = engine.directive(&secretary, run.directive)?;
    let (directive, progress) = (view.state, view.progress);
    println!(
        "  directive {:?}: {} units reached, {} acknowledged, {} reported, complete: {}",
        directive.title,
        progress.units,
        progress.acknowledged,
        progress.reported,
        progress.complete
    );
    for part in progress.parts.iter().filter(|p| p.parent.is_none()) {
        println!(
            "    {} : {}/{} units reported below it, complete: {}",
            part.unit, part.units_reported, part.units, part.complete
        );
    }
    let item = engine.list_item(&secretary, run.project)?;
    println!(
        "  project list: {:?} linked to {} case(s)",
        item.title,
        item.cases.len()
    );
    for shop in ["shop-yh-101", "shop-xt-033"] {
        let unit = civicflow::core::UnitId::new(shop)?;
        let standing = engine.standing(&secretary, &unit)?;
        println!(
            "  {shop}: {:?} points, flags {:?}, quarterly {:?}",
            standing.points(),
            standing.flags,
            standing.quarterly
        );
    }
    println!();
    println!("{}", engine.audit(&secretary, run.escalated_case)?);
    read_models(&engine, &dir, clock.now())?;
    let report = engine.log().verify()?;
    println!(
        "log: {} events, chain intact: {}",
        report.events_checked,
        report.is_intact()
    );
    drop(engine);
    if keep.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// Builds every read model from the log and prints what they say.
fn read_models(
    engine: &Engine,
    dir: &std::path::Path,
    now: civicflow::core::Timestamp,
) -> Result<(), Box<dyn std::error::Error>> {
    use civicflow::projections::models::{
        case_board, community_stats, overdue, page::Page, rates, unit_inbox,
    };
    use civicflow::projections::{Runner, RunnerOptions};

    let store = Arc::new(SledReadModels::open(dir.join("readmodels"))?);
    let runner = Runner::beside(engine, store, RunnerOptions::default())?;
    runner.wait_until_caught_up(std::time::Duration::from_secs(30))?;
    println!("read models, built from the log:");

    let board = runner.view(case_board::NAME)?;
    let cases = case_board::list(&board, &case_board::CaseFilter::all(), &Page::first(100))?;
    let open = cases.items.iter().filter(|c| !c.closed).count();
    println!("  case board: {} cases, {open} open", cases.items.len());

    let grid = civicflow::core::UnitId::new("grid-1")?;
    let inbox = unit_inbox::inbox(
        &runner.view(unit_inbox::NAME)?,
        &grid,
        None,
        &Page::first(20),
    )?;
    println!("  grid-1's inbox: {} item(s) to act on", inbox.items.len());

    let community = civicflow::core::UnitId::new("tonghui")?;
    let subtree = engine.org().subtree(&community);
    let late = overdue::report(&runner.view(overdue::NAME)?, &subtree, now)?;
    println!(
        "  overdue and escalations under tonghui: {} item(s)",
        late.items.len()
    );
    for item in &late.items {
        println!(
            "    {:?}: {}, due {} (stage {}){}",
            item.kind,
            item.unit,
            engine.calendar().zone().format(item.due_at),
            item.stage,
            item.to
                .as_ref()
                .map(|to| format!(", to {to}"))
                .unwrap_or_default()
        );
    }

    let rates_view = runner.view(rates::NAME)?;
    // The month the loops ran in.
    let month = engine
        .calendar()
        .zone()
        .format(demo::START)
        .get(..7)
        .unwrap_or_default()
        .to_owned();
    for ranked in rates::ranking(&rates_view, &month)?.iter().take(3) {
        let percent = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.0}%", r * 100.0));
        println!(
            "  三率 {month} #{} {}: response {}, resolution {}, satisfaction {}",
            ranked.rank,
            ranked.rates.unit,
            percent(ranked.rates.response_rate),
            percent(ranked.rates.resolution_rate),
            percent(ranked.rates.satisfaction_rate)
        );
    }

    let stats = community_stats::stats(&runner.view(community_stats::NAME)?, None)?;
    println!(
        "  community statistics: {} activities, {} beneficiaries, {} cases opened, {} closed",
        stats.activities, stats.beneficiaries, stats.opened, stats.closed
    );
    for (workflow, figures) in &stats.workflows {
        if let (Some(mean), Some(p90)) = (figures.mean_close_seconds, figures.p90_close_seconds) {
            println!(
                "    {workflow}: closed {} of {}, mean {:.1} h, p90 {:.1} h to close",
                figures.closed,
                figures.opened,
                mean as f64 / 3600.0,
                p90 as f64 / 3600.0
            );
        }
    }
    Ok(())
}
