//! The Tonghui demo: builds the community of the seed article (通惠社区, its grids, 义乌之心,
//! 银泰百货 and 新天地 with shops under them, the department, legal aid, volunteers), runs every
//! closed loop end to end on a real store (a late step that escalates, a directive that reaches
//! every shop), and prints one case's audit.
//!
//! Run with `cargo run --release --example tonghui [DIR]` (DIR is kept; without it a
//! temporary store is removed at the end).

use std::sync::Arc;

use civicflow::core::engine::{Contact, Engine, EngineConfig};
use civicflow::core::vault::MasterKey;
use civicflow::core::ManualClock;
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
    let (directive, progress) = engine.directive(run.directive)?;
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
    if let Some(item) = engine.list_item(run.project)? {
        println!(
            "  project list: {:?} linked to {} case(s)",
            item.title,
            item.cases.len()
        );
    }
    for shop in ["shop-yh-101", "shop-xt-033"] {
        if let Some(standing) = engine.standing(&civicflow::core::UnitId::new(shop)?)? {
            println!(
                "  {shop}: {:?} points, flags {:?}, quarterly {:?}",
                standing.points(),
                standing.flags,
                standing.quarterly
            );
        }
    }
    println!();
    println!("{}", engine.audit(run.escalated_case)?);
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
