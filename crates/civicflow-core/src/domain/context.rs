//! What a decision may look at besides the aggregate's own state.
//!
//! Domain logic is pure: it never reads the clock, the disk or the network. The engine hands
//! it everything else it needs in a [`Context`]: who is acting, the org chart, the workflow
//! definitions, working time, and the moment of the decision.

use super::org::{Acting, OrgChart};
use super::workflow::{DefinitionRegistry, TimeLimit};
use crate::clock::Timestamp;

/// Adds time limits to moments, in wall-clock or working time. The business calendar is the
/// real one; tests may use [`WallClockOnly`].
pub trait WorkingTime: Send + Sync {
    /// The moment `limit` after `start`.
    fn add(&self, start: Timestamp, limit: TimeLimit) -> Timestamp;
}

/// Working time that is simply wall-clock time (every minute of every day works).
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClockOnly;

impl WorkingTime for WallClockOnly {
    fn add(&self, start: Timestamp, limit: TimeLimit) -> Timestamp {
        let minutes = match limit {
            TimeLimit::Minutes(m) | TimeLimit::WorkingMinutes(m) => u64::from(m),
            TimeLimit::Days(d) | TimeLimit::WorkingDays(d) => u64::from(d) * 24 * 60,
        };
        start.saturating_add(std::time::Duration::from_secs(minutes * 60))
    }
}

/// Everything a decision may consult.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Who is acting.
    pub acting: &'a Acting,
    /// The org chart now.
    pub org: &'a OrgChart,
    /// The workflow definitions.
    pub definitions: &'a DefinitionRegistry,
    /// Working time (the business calendar).
    pub time: &'a dyn WorkingTime,
    /// The moment of the decision.
    pub now: Timestamp,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("acting", self.acting)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}
