//! Random but plausible histories: the Tonghui demo's org chart, then random commands from
//! random demo actors through the real engine (refusals are simply not written), with the
//! clock moving and the deadline scheduler running. Deterministic for a seed.

use std::sync::Arc;
use std::time::Duration;

use civicflow::core::calendar::Span;
use civicflow::core::domain::case::Channel;
use civicflow::core::domain::directive::DirectiveKind;
use civicflow::core::domain::fields::{FieldKind, FieldValue, Fields};
use civicflow::core::domain::lists::{ListCommand, ListKind};
use civicflow::core::domain::merchants::{FlagColour, StandingCommand};
use civicflow::core::domain::workflow::WorkflowId;
use civicflow::core::engine::{Command, Engine, EngineConfig, Outcome};
use civicflow::core::vault::MasterKey;
use civicflow::core::{CaseId, Durability, ManualClock, UnitId};
use civicflow::demo;

/// A small deterministic random source (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A source seeded with `seed` (0 is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Opens an engine on `dir` with a manual clock (fast durability: these are tests of
/// projections, not of the log).
pub fn open_engine(dir: &std::path::Path, clock: &ManualClock, key: &MasterKey) -> Engine {
    Engine::open(
        EngineConfig::new(dir)
            .clock(Arc::new(clock.clone()))
            .master_key(key.clone())
            .durability(Durability::Flush),
    )
    .expect("the engine opens")
}

const WORKFLOWS: &[&str] = &[
    "service-request",
    "district-affairs",
    "consumer-dispute",
    "one-stop-errand",
];

fn value_for(
    kind: FieldKind,
    choices: &[String],
    rng: &mut Rng,
    cases: &[CaseId],
    now: civicflow::core::Timestamp,
) -> Option<FieldValue> {
    Some(match kind {
        FieldKind::Text => FieldValue::Text(format!("note {}", rng.below(1000))),
        FieldKind::Number => FieldValue::Number(rng.below(500) as f64 / 2.0),
        FieldKind::Integer => FieldValue::Integer(rng.below(200) as i64),
        FieldKind::Bool => FieldValue::Bool(rng.below(2) == 0),
        FieldKind::Datetime => FieldValue::Datetime(now),
        FieldKind::Unit => FieldValue::Unit(UnitId::new(rng.pick(demo::UNITS).0).expect("valid")),
        FieldKind::Choice => FieldValue::Choice(rng.pick(choices).clone()),
        FieldKind::Choices => FieldValue::Choices(vec![rng.pick(choices).clone()]),
        FieldKind::Rating => FieldValue::Rating(1 + rng.below(5) as u8),
        FieldKind::Case => FieldValue::Case(*cases.get(rng.below(cases.len()))?),
    })
}

/// Runs `commands` random commands on `engine`, moving `clock`. Returns how many were
/// accepted. `cases` collects the cases opened so far (across calls); every case ever opened
/// stays a candidate for the next action, so the open cases pile up as the history grows.
pub fn run_random_commands(
    engine: &Engine,
    clock: &ManualClock,
    rng: &mut Rng,
    commands: usize,
    cases: &mut Vec<CaseId>,
) -> usize {
    run_commands(engine, clock, rng, commands, cases, Pace::PileUp)
}

/// A history as a running district makes it: requests are opened while fewer than
/// `in_flight` are being worked on, actions go to those, and a case leaves `cases` when its
/// loop is done (no action left), so the open cases stay about `in_flight` however long the
/// history grows. The clock moves 1 to 60 s per command (a million commands are about a
/// year): deadlines in working days fall due now and then, as they do; each year's calendar
/// is published before the year begins. Returns how many commands were accepted.
pub fn run_steady_commands(
    engine: &Engine,
    clock: &ManualClock,
    rng: &mut Rng,
    commands: usize,
    cases: &mut Vec<CaseId>,
    in_flight: usize,
) -> usize {
    run_commands(
        engine,
        clock,
        rng,
        commands,
        cases,
        Pace::Steady { in_flight },
    )
}

/// How [`run_commands`] picks cases and moves the clock.
#[derive(Clone, Copy)]
enum Pace {
    /// Any case ever opened; 1 to 240 minutes per command.
    PileUp,
    /// Only cases still in their loop, at most `in_flight` of them; 1 to 60 s per command.
    Steady { in_flight: usize },
}

fn run_commands(
    engine: &Engine,
    clock: &ManualClock,
    rng: &mut Rng,
    commands: usize,
    cases: &mut Vec<CaseId>,
    pace: Pace,
) -> usize {
    use civicflow::core::Clock;
    let mut accepted = 0;
    for _ in 0..commands {
        let actor = demo::acting(rng.pick(demo::ACTORS).0);
        let roll = rng.below(100);
        let room = match pace {
            Pace::PileUp => true,
            Pace::Steady { in_flight } => cases.len() < in_flight,
        };
        let command = if (roll < 25 && room) || cases.is_empty() {
            let workflow = WorkflowId::new(*rng.pick(WORKFLOWS)).expect("valid");
            let Some(definition) = engine.definitions().latest(&workflow).cloned() else {
                continue;
            };
            let mut fields = Fields::new();
            for spec in &definition.open.fields {
                if spec.required || rng.below(2) == 0 {
                    if let Some(value) =
                        value_for(spec.kind, &spec.choices, rng, cases, clock.now())
                    {
                        fields.insert(spec.name.clone(), value);
                    }
                }
            }
            Command::OpenCase {
                workflow,
                version: None,
                unit: UnitId::new(*rng.pick(&["tonghui", "grid-1", "grid-2", "grid-3"]))
                    .expect("valid"),
                title: format!("request {}", rng.below(10_000)),
                description: String::new(),
                fields,
                requester: None,
                channel: Channel::Door,
                place: None,
            }
        } else if roll < 80 {
            let pick = rng.below(cases.len());
            let case = cases[pick];
            let Ok(view) = engine.case(&actor, case) else {
                continue;
            };
            let actions: Vec<_> = view.definition.actions_from(&view.state.stage).collect();
            if actions.is_empty() {
                if let Pace::Steady { .. } = pace {
                    // Its loop is done: it leaves the cases being worked on.
                    cases.swap_remove(pick);
                }
                continue;
            }
            let action = *rng.pick(&actions);
            let mut fields = Fields::new();
            for spec in &action.fields {
                if spec.required || rng.below(3) == 0 {
                    if let Some(value) =
                        value_for(spec.kind, &spec.choices, rng, cases, clock.now())
                    {
                        fields.insert(spec.name.clone(), value);
                    }
                }
            }
            Command::Act {
                case,
                action: action.id.clone(),
                fields,
                expected_version: None,
            }
        } else if roll < 85 {
            Command::IssueDirective {
                title: format!("directive {}", rng.below(1000)),
                body: String::new(),
                kind: DirectiveKind::ConsumerProtection,
                unit: UnitId::new(*rng.pick(&["tonghui", "grid-1", "yiwu-heart"])).expect("valid"),
                within: Span::WorkingDays(1 + rng.below(3) as u32),
            }
        } else if roll < 92 {
            // A unit answers the newest directive it has a part in (refused if it has none).
            let Some(directive) = newest_directive(engine) else {
                continue;
            };
            if rng.below(2) == 0 {
                Command::AcknowledgeDirective {
                    directive,
                    note: String::new(),
                }
            } else {
                Command::ReportDirective {
                    directive,
                    note: "done".into(),
                }
            }
        } else if roll < 96 && (matches!(pace, Pace::PileUp) || rng.below(40) == 0) {
            // Steady: a shop's standing changes a few times a month, not in every 25th
            // command (three shops' streams would grow with the history, and each command
            // on one reads it whole).
            let shop = UnitId::new(*rng.pick(&["shop-yh-101", "shop-it-302", "shop-xt-033"]))
                .expect("valid");
            let command = match rng.below(4) {
                0 => StandingCommand::StartCycle {
                    cycle: "2026".into(),
                },
                1 => StandingCommand::Deduct {
                    points: 1 + rng.below(3) as u8,
                    reason: "patrol".into(),
                },
                2 => StandingCommand::AwardFlag {
                    colour: FlagColour::Red,
                    period: format!("2026-0{}", 1 + rng.below(9)),
                    reason: "good".into(),
                },
                _ => StandingCommand::RateQuarter {
                    quarter: format!("2026Q{}", 1 + rng.below(4)),
                    recommended: rng.below(2) == 0,
                    score: 80,
                },
            };
            Command::Standing {
                unit: shop,
                command,
            }
        } else {
            if rng.below(2) == 0 || cases.is_empty() {
                Command::AddListItem {
                    list: *rng.pick(&[ListKind::Resources, ListKind::Needs, ListKind::Projects]),
                    title: format!("item {}", rng.below(1000)),
                    description: String::new(),
                    unit: UnitId::new("tonghui").expect("valid"),
                }
            } else {
                continue_with_list_link(engine, rng, cases)
            }
        };
        let actor = match &command {
            Command::Standing { .. }
            | Command::AddListItem { .. }
            | Command::IssueDirective { .. }
            | Command::ListItem { .. } => demo::acting("wang.secretary"),
            _ => actor,
        };
        match engine.submit(&actor, command) {
            Ok(outcome) => {
                accepted += 1;
                if let Outcome::Case { case, .. } = outcome {
                    if !cases.contains(&case) {
                        cases.push(case);
                    }
                }
            }
            Err(civicflow::core::engine::SubmitError::Rejected(_)) => {}
            Err(civicflow::core::engine::SubmitError::Engine(e)) => {
                panic!("the engine failed: {e}")
            }
        }
        clock.advance(match pace {
            Pace::PileUp => Duration::from_secs(60 * (1 + rng.below(240) as u64)),
            Pace::Steady { .. } => Duration::from_secs(1 + rng.below(60) as u64),
        });
        if let Pace::Steady { .. } = pace {
            publish_next_year(engine, clock.now());
        }
        if rng.below(10) == 0 {
            engine.run_due_deadlines().expect("the scheduler runs");
        }
    }
    accepted
}

/// As a district does each November: the next year's calendar published before deadlines
/// reach into it, so that they are not computed provisionally (and kept until a
/// publication). The days are synthetic (New Year, Labour Day, National Day; no make-up
/// working days): the official ones are published a year at a time.
fn publish_next_year(engine: &Engine, now: civicflow::core::Timestamp) {
    use civicflow::core::calendar::YearSchedule;
    const YEAR_MICROS: i64 = 31_556_952_000_000;
    // The year sixty days from now (near enough: publishing a few days early is harmless).
    let year = 1970 + (now.as_unix_micros() + 60 * 86_400_000_000) / YEAR_MICROS;
    let year = i32::try_from(year).expect("a year");
    if engine.calendar().covers(year) {
        return;
    }
    let text = format!(
        "[{year}]\nsource = \"synthetic, for generated histories\"\noff = [[\"{year}-01-01\", \"{year}-01-01\"], [\"{year}-05-01\", \"{year}-05-03\"], [\"{year}-10-01\", \"{year}-10-07\"]]\nwork = []\n"
    );
    let schedule = YearSchedule::parse_document(&text)
        .expect("a valid year")
        .pop()
        .expect("one year");
    engine
        .submit(
            &civicflow::core::domain::org::Acting::system(UnitId::new("system").expect("valid")),
            Command::PublishCalendarYear { schedule },
        )
        .expect("the year is published");
}

fn newest_directive(engine: &Engine) -> Option<civicflow::core::DirectiveId> {
    let head = engine.log().head()?.position;
    let from = civicflow::core::Position::new(head.get().saturating_sub(400).max(1))?;
    engine
        .log()
        .read_all(from, 400)
        .ok()?
        .iter()
        .rev()
        .find(|e| e.event_type.as_str() == "DirectiveIssued")
        .and_then(|e| {
            e.stream
                .as_str()
                .strip_prefix("directive-")
                .and_then(|id| civicflow::core::DirectiveId::parse(id).ok())
        })
}

fn continue_with_list_link(engine: &Engine, rng: &mut Rng, cases: &[CaseId]) -> Command {
    let head = engine.log().head().map_or(1, |h| h.position.get());
    let from = civicflow::core::Position::new(head.saturating_sub(2000).max(1)).expect("not zero");
    let item = engine.log().read_all(from, 2000).ok().and_then(|events| {
        events
            .iter()
            .rev()
            .find(|e| e.event_type.as_str() == "ListItemAdded")
            .and_then(|e| {
                e.stream
                    .as_str()
                    .strip_prefix("list-")
                    .and_then(|id| civicflow::core::ListItemId::parse(id).ok())
            })
    });
    match item {
        Some(item) => Command::ListItem {
            item,
            command: ListCommand::Link {
                case: *rng.pick(cases),
            },
        },
        None => Command::AddListItem {
            list: ListKind::Projects,
            title: "item".into(),
            description: String::new(),
            unit: UnitId::new("tonghui").expect("valid"),
        },
    }
}
