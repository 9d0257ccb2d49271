//! Directives: issuing one down the chain (every unit below gets a part, in one decision),
//! and one unit's part (acknowledge, report, deadline steps).

use std::time::Duration;

use civicflow_core::calendar::Span;
use civicflow_core::domain::aggregate::{fold, Aggregate};
use civicflow_core::domain::deadline::{CalendarStamp, DeadlineBasis};
use civicflow_core::domain::directive::{
    self, DeadlineMet, DeadlineMissed, DeadlineSet, DeadlineStepReached, DirectiveCommand,
    DirectiveEvent, DirectiveIssued, DirectiveKind, LadderStep, PartAcknowledged, PartAssigned,
    PartEvent, PartInfo, PartReported, PartState,
};
use civicflow_core::domain::org::Acting;
use civicflow_core::domain::{Context, Rejection};
use civicflow_core::DirectiveId;

use super::fixture::*;
use super::scenario::{field_invalid, field_missing, invalid, role_not_allowed};
use super::spec::*;

fn directive_id() -> DirectiveId {
    DirectiveId::parse("01923a7e-0000-7000-8000-0000000000d1").expect("a UUID")
}

// Issuing -------------------------------------------------------------------------------------

/// What issuing writes, flattened: the directive's own event, then each part's events.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    Directive(DirectiveEvent),
    Part(u32, PartEvent),
}

/// Issuing a directive (it has no state before).
pub struct Issue;

impl Table for Issue {
    type State = ();
    type Command = DirectiveCommand;
    type Event = Written;

    fn fold(_: &[Written]) {}

    fn decide(
        _: &(),
        command: &DirectiveCommand,
        ctx: &Context<'_>,
    ) -> Result<Vec<Written>, Rejection> {
        let decision = directive::Directive::decide(&directive_id(), &None, command, ctx)?;
        let mut written: Vec<Written> = decision
            .events
            .into_iter()
            .map(Written::Directive)
            .collect();
        for create in &decision.creates {
            let (_, index) = DirectiveId::of_part_stream(&create.stream)
                .expect("a directive creates part streams");
            let events = create
                .events_as::<PartEvent>()
                .expect("parts open with part events");
            written.extend(events.into_iter().map(|e| Written::Part(index, e.clone())));
        }
        Ok(written)
    }
}

fn issue(title: &str, at_unit: &str, within: Span) -> DirectiveCommand {
    DirectiveCommand::Issue {
        directive: directive_id(),
        title: title.to_owned(),
        body: " 每店张贴消费维权海报 every shop puts up the consumer-rights poster ".to_owned(),
        kind: DirectiveKind::ConsumerProtection,
        unit: unit(at_unit),
        within,
    }
}

fn part(index: u32, of: &str, parent: Option<u32>) -> PartInfo {
    PartInfo {
        index,
        unit: unit(of),
        parent,
    }
}

/// Every part's two events, due at `due` (no reminder, escalation, no breach).
fn parts_written(parts: &[PartInfo], due: &str, within: Span) -> Vec<Written> {
    parts
        .iter()
        .flat_map(|p| {
            [
                Written::Part(
                    p.index,
                    PartEvent::Assigned(PartAssigned {
                        directive: directive_id(),
                        part: p.clone(),
                    }),
                ),
                Written::Part(
                    p.index,
                    PartEvent::DeadlineSet(DeadlineSet {
                        seq: 1,
                        stage: "report".into(),
                        set_at: at(NOW),
                        due_at: at(due),
                        remind_at: None,
                        escalate: true,
                        breach_at: None,
                        basis: Some(report_basis(within)),
                    }),
                ),
            ]
        })
        .collect()
}

/// What a part's deadline records: the directive's span, the 2026 data the release carries.
fn report_basis(within: Span) -> DeadlineBasis {
    DeadlineBasis {
        within,
        remind_after: None,
        breach_after: None,
        calendar: CalendarStamp {
            revision: 0,
            zone: "Asia/Shanghai".into(),
            missing_years: Vec::new(),
        },
    }
}

fn issued(title: &str, by: &str, parts: &[PartInfo], due: &str, within: Span) -> Vec<Written> {
    let mut written = vec![Written::Directive(DirectiveEvent::Issued(
        DirectiveIssued {
            directive: directive_id(),
            title: title.to_owned(),
            body: "每店张贴消费维权海报 every shop puts up the consumer-rights poster".to_owned(),
            kind: DirectiveKind::ConsumerProtection,
            issued_by: unit(by),
            parts: parts.to_vec(),
            at: at(NOW),
        },
    ))];
    written.extend(parts_written(parts, due, within));
    written
}

const ISSUERS: &[&str] = &["community_admin", "grid_worker", "enterprise_liaison"];

pub fn issue_table() -> Vec<SpecRow<Issue>> {
    let grid1_parts = [
        part(1, "yiwu-heart", None),
        part(2, "shop-yh-101", Some(1)),
        part(3, "shop-yh-102", Some(1)),
    ];
    // The whole community: grids, enterprises and shops, parents before children; the
    // department, the federation and the volunteer team are not in the chain.
    let community_parts = [
        part(1, "grid-1", None),
        part(2, "yiwu-heart", Some(1)),
        part(3, "shop-yh-101", Some(2)),
        part(4, "shop-yh-102", Some(2)),
        part(5, "grid-2", None),
        part(6, "intime", Some(5)),
        part(7, "shop-it-201", Some(6)),
    ];
    let heart_parts = [part(1, "shop-yh-101", None), part(2, "shop-yh-102", None)];
    vec![
        // Three working days: Monday 28 to Wednesday 30 September.
        ok(
            Spec::new().when(
                grid1(),
                issue(" 3·15 消费维权 ", "grid-1", Span::WorkingDays(3)),
            ),
            issued(
                "3·15 消费维权",
                "grid-1",
                &grid1_parts,
                "2026-09-30 17:30",
                Span::WorkingDays(3),
            ),
        ),
        // Eight working hours: 1.5 on Thursday, 6.5 on Monday 28 September.
        ok(
            Spec::new().when(
                admin(),
                issue("节前安全检查", "tonghui", Span::WorkingHours(8)),
            ),
            issued(
                "节前安全检查",
                "tonghui",
                &community_parts,
                "2026-09-28 16:30",
                Span::WorkingHours(8),
            ),
        ),
        ok(
            Spec::new().when(
                liaison(),
                issue("员工培训", "yiwu-heart", Span::WorkingDays(1)),
            ),
            issued(
                "员工培训",
                "yiwu-heart",
                &heart_parts,
                "2026-09-28 17:30",
                Span::WorkingDays(1),
            ),
        ),
        ok(
            Spec::new().when(system(), issue("防疫", "beimen", Span::WorkingDays(1))),
            issued(
                "防疫",
                "beimen",
                &[part(1, "grid-b1", None)],
                "2026-09-28 17:30",
                Span::WorkingDays(1),
            ),
        ),
        no(
            Spec::new().when(
                shop101(),
                issue("自查", "shop-yh-101", Span::WorkingDays(1)),
            ),
            role_not_allowed(&shop101(), "issue a directive", ISSUERS),
        ),
        no(
            Spec::new().when(grid2(), issue("检查", "grid-1", Span::WorkingDays(1))),
            Rejection::OutOfScope {
                unit: unit("grid-2"),
                action: "issue a directive".into(),
                scope: "the acting unit or a unit below it".into(),
                target: unit("grid-1"),
            },
        ),
        no(
            Spec::new().when(
                liaison(),
                issue("自查", "shop-yh-101", Span::WorkingDays(1)),
            ),
            invalid(
                "unit",
                "no unit of the chain lies below shop-yh-101: a directive needs someone to reach",
            ),
        ),
        no(
            Spec::new().when(
                admin(),
                issue("执法", "market-regulation", Span::WorkingDays(1)),
            ),
            invalid(
                "unit",
                "no unit of the chain lies below market-regulation: a directive needs someone to reach",
            ),
        ),
        no(
            Spec::new().when(grid1(), issue("  ", "grid-1", Span::WorkingDays(1))),
            field_invalid("title", "must be 1 to 200 characters"),
        ),
        no(
            Spec::new().when(
                grid1(),
                DirectiveCommand::Issue {
                    directive: directive_id(),
                    title: "检查".into(),
                    body: "查".repeat(4001),
                    kind: DirectiveKind::Other,
                    unit: unit("grid-1"),
                    within: Span::WorkingDays(1),
                },
            ),
            field_invalid("body", "at most 4000 characters"),
        ),
        // A span of zero would be due, and escalate, at once; past a year the due time lands
        // beyond what a time holds. Each kind at its bound is accepted, one past it refused.
        no(
            Spec::new().when(grid1(), issue("检查", "grid-1", Span::Calendar(Duration::ZERO))),
            invalid(
                "within",
                "must be more than zero (a deadline of zero falls due at once)",
            ),
        ),
        no(
            Spec::new().when(grid1(), issue("检查", "grid-1", Span::WorkingDays(0))),
            invalid(
                "within",
                "must be more than zero (a deadline of zero falls due at once)",
            ),
        ),
        no(
            Spec::new().when(grid1(), issue("检查", "grid-1", Span::WorkingDays(99_999_999))),
            invalid(
                "within",
                "must be at most a year: 366 days, 260 working days, 2080 working hours or 124800 working minutes (99999999 working days is longer)",
            ),
        ),
        no(
            Spec::new().when(grid1(), issue("检查", "grid-1", Span::WorkingDays(261))),
            invalid(
                "within",
                "must be at most a year: 366 days, 260 working days, 2080 working hours or 124800 working minutes (261 working days is longer)",
            ),
        ),
        no(
            Spec::new().when(
                grid1(),
                issue("检查", "grid-1", Span::Calendar(Duration::from_secs(367 * 86_400))),
            ),
            invalid(
                "within",
                "must be at most a year: 366 days, 260 working days, 2080 working hours or 124800 working minutes (367 days is longer)",
            ),
        ),
        no(
            Spec::new().when(admin(), issue("检查", "grid-9", Span::WorkingDays(1))),
            Rejection::NotFound {
                what: "unit",
                id: "grid-9".into(),
            },
        ),
        no(
            Spec::new().when(
                Acting::new(actor("chen.liaison"), role("grid_worker"), unit("grid-1")),
                issue("检查", "grid-1", Span::WorkingDays(1)),
            ),
            Rejection::NotGranted {
                actor: actor("chen.liaison"),
                role: role("grid_worker"),
                unit: unit("grid-1"),
            },
        ),
    ]
}

#[test]
fn issuing_directives() {
    run_specs("issue directive", &issue_table());
}

// One unit's part ---------------------------------------------------------------------------

/// The part of one unit.
pub struct Part;

impl Table for Part {
    type State = Option<PartState>;
    type Command = DirectiveCommand;
    type Event = PartEvent;

    fn fold(events: &[PartEvent]) -> Option<PartState> {
        fold::<directive::Part>(events, built_in())
    }

    fn decide(
        state: &Option<PartState>,
        command: &DirectiveCommand,
        ctx: &Context<'_>,
    ) -> Result<Vec<PartEvent>, Rejection> {
        assert!(state.is_some(), "a part is given");
        directive::Part::decide(&(directive_id(), 2), state, command, ctx).map(|d| d.events)
    }
}

/// Shop 101's part of a directive grid 1 issued at T0, to report within three working days
/// (by Wednesday 30 September 17:30).
fn assigned() -> Vec<PartEvent> {
    vec![
        PartEvent::Assigned(PartAssigned {
            directive: directive_id(),
            part: part(2, "shop-yh-101", Some(1)),
        }),
        PartEvent::DeadlineSet(DeadlineSet {
            seq: 1,
            stage: "report".into(),
            set_at: at(T0),
            due_at: at("2026-09-30 17:30"),
            remind_at: None,
            escalate: true,
            breach_at: None,
            basis: Some(report_basis(Span::WorkingDays(3))),
        }),
    ]
}

fn acknowledged(note: &str, local: &str) -> PartEvent {
    PartEvent::Acknowledged(PartAcknowledged {
        note: note.to_owned(),
        at: at(local),
    })
}

fn reported(note: &str, local: &str) -> PartEvent {
    PartEvent::Reported(PartReported {
        note: note.to_owned(),
        at: at(local),
    })
}

fn ack(note: &str) -> DirectiveCommand {
    DirectiveCommand::Acknowledge {
        note: note.to_owned(),
    }
}

fn report(note: &str) -> DirectiveCommand {
    DirectiveCommand::Report {
        note: note.to_owned(),
    }
}

fn step(step: LadderStep) -> DirectiveCommand {
    DirectiveCommand::ReachDeadlineStep { seq: 1, step }
}

const RESPONDERS: &[&str] = &[
    "community_admin",
    "grid_worker",
    "enterprise_liaison",
    "shop_owner",
    "party_member",
];

fn not_for(acting: &Acting) -> Rejection {
    Rejection::OutOfScope {
        unit: acting.unit.clone(),
        action: "respond to a directive".into(),
        scope: "the unit the part is for".into(),
        target: unit("shop-yh-101"),
    }
}

pub fn part_table() -> Vec<SpecRow<Part>> {
    let given = || Spec::<Part>::new().given(assigned());
    vec![
        ok(
            given().when(shop101(), ack("  收到 received  ")),
            vec![acknowledged("收到 received", NOW)],
        ),
        // Acknowledged once only.
        ok(
            given()
                .given([acknowledged("收到", T0)])
                .when(shop101(), ack("again")),
            vec![],
        ),
        // Reporting without acknowledging first acknowledges too; in time, the deadline is met.
        ok(
            given().when(shop101(), report(" 海报已张贴 posters up ")),
            vec![
                acknowledged("", NOW),
                reported("海报已张贴 posters up", NOW),
                PartEvent::DeadlineMet(DeadlineMet {
                    seq: 1,
                    at: at(NOW),
                }),
            ],
        ),
        ok(
            given()
                .given([acknowledged("收到", T0)])
                .at("2026-09-30 17:30")
                .when(shop101(), report("海报已张贴")),
            vec![
                reported("海报已张贴", "2026-09-30 17:30"),
                PartEvent::DeadlineMet(DeadlineMet {
                    seq: 1,
                    at: at("2026-09-30 17:30"),
                }),
            ],
        ),
        // Reported after the holiday: missed.
        ok(
            given()
                .given([acknowledged("收到", T0)])
                .at("2026-10-08 09:00")
                .when(shop101(), report("海报已张贴")),
            vec![
                reported("海报已张贴", "2026-10-08 09:00"),
                PartEvent::DeadlineMissed(DeadlineMissed {
                    seq: 1,
                    at: at("2026-10-08 09:00"),
                    due_at: at("2026-09-30 17:30"),
                }),
            ],
        ),
        no(
            given()
                .given([
                    reported("海报已张贴", T0),
                    PartEvent::DeadlineMet(DeadlineMet { seq: 1, at: at(T0) }),
                ])
                .when(shop101(), report("again")),
            invalid("part", "shop-yh-101 already reported done"),
        ),
        no(
            given().when(shop101(), report("  ")),
            field_missing("report", "note"),
        ),
        no(
            given().when(shop101(), report(&"贴".repeat(4001))),
            field_invalid("note", "at most 4000 characters"),
        ),
        no(
            given().when(requester(), ack("收到")),
            role_not_allowed(&requester(), "respond to a directive", RESPONDERS),
        ),
        no(given().when(shop102(), ack("收到")), not_for(&shop102())),
        // The enterprise above does not report for its shop.
        no(given().when(liaison(), report("done")), not_for(&liaison())),
        // Ladder steps: escalated to the enterprise above the shop once it is due.
        ok(
            given()
                .at("2026-10-08 09:00")
                .when(system(), step(LadderStep::Escalate)),
            vec![PartEvent::DeadlineStepReached(DeadlineStepReached {
                seq: 1,
                step: LadderStep::Escalate,
                unit: unit("yiwu-heart"),
                due: at("2026-09-30 17:30"),
                at: at("2026-10-08 09:00"),
            })],
        ),
        no(
            given()
                .at("2026-09-30 17:29")
                .when(system(), step(LadderStep::Escalate)),
            invalid(
                "deadline",
                // In the calendar's zone, with its offset (not UTC).
                "step escalate of deadline 1 is due at 2026-09-30T17:30:00+08:00, not yet",
            ),
        ),
        no(
            given()
                .given([PartEvent::DeadlineStepReached(DeadlineStepReached {
                    seq: 1,
                    step: LadderStep::Escalate,
                    unit: unit("yiwu-heart"),
                    due: at("2026-09-30 17:30"),
                    at: at("2026-10-08 09:00"),
                })])
                .at("2026-10-08 09:01")
                .when(system(), step(LadderStep::Escalate)),
            invalid("deadline", "step escalate of deadline 1 was already taken"),
        ),
        no(
            given()
                .at("2026-10-08 09:00")
                .when(system(), step(LadderStep::Remind)),
            invalid("deadline", "deadline 1 has no remind step"),
        ),
        no(
            given()
                .given([
                    reported("海报已张贴", T0),
                    PartEvent::DeadlineMet(DeadlineMet { seq: 1, at: at(T0) }),
                ])
                .at("2026-10-08 09:00")
                .when(system(), step(LadderStep::Escalate)),
            invalid("deadline", "deadline 1 is not the running one"),
        ),
        no(
            given()
                .at("2026-10-08 09:00")
                .when(shop101(), step(LadderStep::Escalate)),
            role_not_allowed(&shop101(), "take a deadline step", &["system"]),
        ),
        no(
            given().when(shop101(), issue("检查", "grid-1", Span::WorkingDays(1))),
            invalid("command", "not a command for a directive's part"),
        ),
    ]
}

#[test]
fn directive_parts() {
    run_specs("directive part", &part_table());
}
