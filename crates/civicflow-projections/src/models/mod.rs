//! civicflow's read models, one module each. Every model is a [`Projection`]: it owns its
//! tables, rebuilds from the log alone, and answers its own queries through a [`View`].
//!
//! [`View`]: crate::View

use std::sync::Arc;

use civicflow_core::domain::workflow::DefinitionRegistry;
use civicflow_core::Timestamp;

use crate::Projection;

pub mod case_board;
pub mod community_stats;
pub mod directive_progress;
pub mod lists;
pub mod overdue;
pub mod page;
pub mod rates;
pub mod shop_standing;
pub mod unit_inbox;

/// Every read model, ready for [`Runner::start`](crate::Runner::start). Models that read
/// workflow definitions (step names, deadlines, what counts as resolved) share `definitions`.
pub fn all(definitions: Arc<DefinitionRegistry>) -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(case_board::CaseBoard::new(definitions.clone())),
        Box::new(unit_inbox::UnitInbox::new(definitions.clone())),
        Box::new(overdue::OverdueReports::new()),
        Box::new(rates::Rates::new()),
        Box::new(directive_progress::DirectiveProgress),
        Box::new(shop_standing::ShopStanding),
        Box::new(lists::Lists),
        Box::new(community_stats::CommunityStats::new(definitions)),
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
    ]
}

/// A time as a key component: microseconds since the Unix epoch with the sign bit flipped,
/// so that the big-endian bytes sort in time order (before 1970 too).
pub(crate) fn time_key(at: Timestamp) -> u64 {
    at.as_unix_micros().cast_unsigned() ^ (1 << 63)
}
