//! The minimal inputs the properties found, kept as plain tests, written out by hand so that
//! they do not depend on how the generators draw. Each one fails while the library has the
//! bug it names.

use civicflow_core::calendar::BusinessCalendar;
use civicflow_core::domain::case::{CaseCommand, CaseEvent, CaseState, Channel, OpenCase};
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::org::{roles, Acting};
use civicflow_core::domain::workflow::WorkflowId;
use civicflow_core::domain::{Context, Rejection};
use civicflow_core::{Timestamp, Version};

use super::common::*;

/// One case driven by hand through the pure `decide` and `apply`.
struct Case {
    calendar: BusinessCalendar,
    now: Timestamp,
    state: Option<CaseState>,
    events: u64,
}

impl Case {
    fn open(workflow: &str, acting: &Acting, fields: &[(&str, FieldValue)]) -> Self {
        let mut case = Self {
            calendar: BusinessCalendar::china(),
            now: monday_morning(),
            state: None,
            events: 0,
        };
        case.submit(
            acting,
            CaseCommand::Open(OpenCase {
                case: case_id(1),
                workflow: WorkflowId::new(workflow).expect("valid"),
                // The built-in version (the registry also has versions made for migrating).
                version: Some(1),
                unit: unit("tonghui"),
                title: "路灯不亮 street light out".into(),
                description: String::new(),
                fields: field_map(fields),
                requester: None,
                channel: Channel::Door,
                place: None,
                new_requester: false,
            }),
        )
        .expect("the case opens");
        case
    }

    fn submit(
        &mut self,
        acting: &Acting,
        command: CaseCommand,
    ) -> Result<Vec<CaseEvent>, Rejection> {
        let ctx = Context {
            acting,
            org: &Fixture::get().org,
            definitions: registry(),
            time: &self.calendar,
            now: self.now,
        };
        let events = decide_case(&self.state, &command, &ctx)?;
        for event in &events {
            self.events += 1;
            let version = Version::new(self.events).expect("non-zero");
            apply_event::<civicflow_core::domain::case::Case>(&mut self.state, event, version);
        }
        Ok(events)
    }

    fn act(
        &mut self,
        acting: &Acting,
        action: &str,
        fields: &[(&str, FieldValue)],
    ) -> Result<Vec<CaseEvent>, Rejection> {
        self.submit(
            acting,
            CaseCommand::Act {
                action: action.into(),
                fields: field_map(fields),
                expected_version: None,
            },
        )
    }

    fn state(&self) -> &CaseState {
        self.state.as_ref().expect("opened")
    }
}

fn field_map(pairs: &[(&str, FieldValue)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn person(role_name: &str, at: &str) -> Acting {
    Acting::new(
        actor(&format!("{role_name}@{at}")),
        role(role_name),
        unit(at),
    )
}

/// Invariant: the lead is always a unit of the chart. Found by
/// `case_commands_keep_the_invariants` and by the engine property (shrunk to: open a
/// one-stop errand; `take_on` as `system/system/system`, the acting the engine's own
/// scheduler uses). The `take_lead` effect makes the acting unit the lead without checking
/// that it is a unit, and `check_acting` lets the system act for any unit at all.
#[test]
fn the_system_acting_for_no_unit_does_not_become_the_lead() {
    let mut case = Case::open(
        "one-stop-errand",
        &person(roles::OPEN311_CLIENT, "xinma"),
        &[("errand", FieldValue::Choice("business_licence".into()))],
    );
    if case.act(&scheduler(), "take_on", &[]).is_ok() {
        let lead = &case.state().lead;
        assert!(
            Fixture::get().org.unit(lead).is_some(),
            "take_on by the system for the unit `system` made {lead} the lead, \
             which is not a unit of the chart"
        );
    }
}

/// Invariant: the lead is always a unit of the chart, by the other road: a dispatch records
/// the dispatching unit (`LeadAssigned.by`) unchecked, and a send-back makes it the lead.
#[test]
fn a_send_back_does_not_return_a_case_to_no_unit() {
    let mut case = Case::open(
        "service-request",
        &person(roles::RESIDENT, "tonghui"),
        &[("category", FieldValue::Choice("public_facilities".into()))],
    );
    let dispatched = case.act(
        &scheduler(),
        "dispatch",
        &[("unit", FieldValue::Unit(unit("grid-1")))],
    );
    if dispatched.is_ok() {
        let sent_back = case.act(
            &person(roles::GRID_WORKER, "grid-1"),
            "send_back",
            &[("reason", FieldValue::Text("不归我们管 not ours".into()))],
        );
        if sent_back.is_ok() {
            let lead = &case.state().lead;
            assert!(
                Fixture::get().org.unit(lead).is_some(),
                "the send-back made {lead} the lead, which is not a unit of the chart"
            );
        }
    }
}

/// Invariant (the domain's own: `add_co_handler` refuses the lead, and `LeadAssigned`
/// removes the new lead from the co-handlers): a unit is never lead and co-handler at once.
/// Found by `case_commands_keep_the_invariants`, shrunk to the 12345 loop below: the
/// community dispatches to grid 1, grid 1 signs for it, brings the community in as a
/// co-handling unit, then sends the case back, and the community is now both. `apply` of
/// `ReturnedToSender` sets the lead without removing it from `co_handlers`.
///
/// Since issue 13 a grid may not bring in a unit above it (a hand-over reaches the acting
/// unit's subtree only), so the system (which reaches every unit) brings the community in;
/// `apply` must still keep the invariant.
#[test]
fn a_send_back_to_a_co_handler_leaves_it_lead_only() {
    let mut case = Case::open(
        "service-request",
        &person(roles::RESIDENT, "tonghui"),
        &[("category", FieldValue::Choice("public_facilities".into()))],
    );
    let admin = person(roles::COMMUNITY_ADMIN, "tonghui");
    let grid = person(roles::GRID_WORKER, "grid-1");
    case.act(
        &admin,
        "dispatch",
        &[("unit", FieldValue::Unit(unit("grid-1")))],
    )
    .expect("dispatched to grid 1");
    case.act(&grid, "sign_for", &[]).expect("signed for");
    case.act(
        &Acting::system(unit("grid-1")),
        "add_co_handler",
        &[("unit", FieldValue::Unit(unit("tonghui")))],
    )
    .expect("the community co-handles");
    case.act(
        &grid,
        "send_back",
        &[(
            "reason",
            FieldValue::Text("需社区协调 needs the community".into()),
        )],
    )
    .expect("sent back");
    let state = case.state();
    assert_eq!(state.lead, unit("tonghui"));
    assert!(
        !state.co_handlers.contains(&state.lead),
        "{} is the lead and still listed as a co-handler: {:?}",
        state.lead,
        state.co_handlers
    );
}
