//! civicflow's read models, one module each. Every model is a [`Projection`]: it owns its
//! tables, rebuilds from the log alone, and answers its own queries through a [`View`].
//!
//! [`View`]: crate::View

use civicflow_core::calendar::Zone;
use civicflow_core::domain::case::CaseEvent;
use civicflow_core::domain::workflow::Definitions;
use civicflow_core::{Timestamp, UnitId};

use crate::Projection;

pub mod case_board;
pub mod community_stats;
pub mod directive_progress;
pub mod lists;
pub mod open311_requests;
pub mod overdue;
pub mod page;
pub mod rates;
pub mod shop_standing;
pub mod unit_inbox;

/// Every read model, ready for [`Runner::start`](crate::Runner::start). Models that read
/// workflow definitions (step names, deadlines, what counts as resolved) share `definitions`
/// (give them `engine.shared_definitions().clone()`, which follows the definitions published
/// in the log; a plain registry is taken as it is);
/// models that count by local month or year count them in `zone` (give them the engine's
/// calendar's: `engine.calendar().zone().clone()`).
pub fn all(definitions: impl Into<Definitions>, zone: Zone) -> Vec<Box<dyn Projection>> {
    let definitions: Definitions = definitions.into();
    vec![
        Box::new(case_board::CaseBoard::new(definitions.clone())),
        Box::new(unit_inbox::UnitInbox::new(definitions.clone())),
        Box::new(overdue::OverdueReports::new()),
        Box::new(rates::Rates::new(zone.clone())),
        Box::new(directive_progress::DirectiveProgress),
        Box::new(shop_standing::ShopStanding),
        Box::new(lists::Lists),
        Box::new(community_stats::CommunityStats::new(
            definitions.clone(),
            zone,
        )),
        Box::new(open311_requests::Open311Requests::new(definitions)),
    ]
}

/// The names of [`all`]'s models, in the same order.
pub fn names() -> Vec<&'static str> {
    vec![
        case_board::NAME,
        unit_inbox::NAME,
        overdue::NAME,
        rates::NAME,
        directive_progress::NAME,
        shop_standing::NAME,
        lists::NAME,
        community_stats::NAME,
        open311_requests::NAME,
    ]
}

/// A time as a key component: microseconds since the Unix epoch with the sign bit flipped,
/// so that the big-endian bytes sort in time order (before 1970 too).
pub(crate) fn time_key(at: Timestamp) -> u64 {
    at.as_unix_micros().cast_unsigned() ^ (1 << 63)
}

/// Who handles a case, as the models that show it keep it: the lead (主办) and the
/// co-handling units (协办, in id order). Applies `event`; whether anything changed (`None`:
/// the event is not about handlers).
pub(crate) fn follow_handlers(
    event: &CaseEvent,
    lead: &mut UnitId,
    co_handlers: &mut Vec<UnitId>,
) -> Option<bool> {
    match event {
        CaseEvent::LeadAssigned(e) => {
            co_handlers.retain(|u| u != &e.unit);
            lead.clone_from(&e.unit);
        }
        CaseEvent::CoHandlerAdded(e) => match co_handlers.binary_search(&e.unit) {
            Ok(_) => return Some(false),
            Err(i) => co_handlers.insert(i, e.unit.clone()),
        },
        CaseEvent::ReturnedToSender(e) => {
            co_handlers.retain(|u| u != &e.to);
            lead.clone_from(&e.to);
        }
        CaseEvent::Reopened(e) => {
            lead.clone_from(&e.lead);
            co_handlers.clear();
        }
        _ => return None,
    }
    Some(true)
}

/// A case's running deadline, as the models that show it keep it: its due time and number
/// (0: none). Applies `event`; whether it was a deadline event of the running deadline.
pub(crate) fn follow_deadline(
    event: &CaseEvent,
    due_at: &mut Option<Timestamp>,
    seq: &mut u32,
) -> bool {
    follow_deadline_marked(event, due_at, seq, &mut false)
}

/// [`follow_deadline`], also keeping whether the running deadline is provisional (counted
/// without a year's calendar data; final once recomputed).
pub(crate) fn follow_deadline_marked(
    event: &CaseEvent,
    due_at: &mut Option<Timestamp>,
    seq: &mut u32,
    provisional: &mut bool,
) -> bool {
    match event {
        CaseEvent::DeadlineSet(e) => {
            *due_at = Some(e.due_at);
            *seq = e.seq;
            *provisional = e
                .basis
                .as_ref()
                .is_some_and(|b| b.calendar.is_provisional());
        }
        CaseEvent::DeadlineRecomputed(e) if e.seq == *seq => {
            *due_at = Some(e.due_at);
            *provisional = e.calendar.is_provisional();
        }
        CaseEvent::DeadlineMet(e) if e.seq == *seq => {
            (*due_at, *seq, *provisional) = (None, 0, false);
        }
        CaseEvent::DeadlineMissed(e) if e.seq == *seq => {
            (*due_at, *seq, *provisional) = (None, 0, false);
        }
        _ => return false,
    }
    true
}
