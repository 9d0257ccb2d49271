//! Which open cases a unit leads: what retiring a unit must know (`OrgCommand::RetireUnit`
//! is refused while the unit leads any).
//!
//! Retiring is rare and administrative, so this reads the log rather than keeping an index
//! in memory for every open case on every instance: one pass over the log finds the cases
//! that were ever led by the unit (the lead is set only by an opening, a lead assignment, a
//! send-back and a reopening), then each is loaded through the one fold, which says exactly
//! whether it is still open and still led there. Memory stays bounded by that handful of
//! cases whatever the log's size.
//!
//! A case opened at the unit in the same instant as the retirement can slip through (the
//! opening does not write to the org chart's stream, so expected versions do not order the
//! two): it stays workable, and the unit's parent can dispatch it elsewhere.

use std::collections::BTreeSet;

use super::load::{self, decode};
use super::{Engine, EngineError};
use crate::domain::case::{Case, CaseEvent};
use crate::ids::{CaseId, Position, UnitId};

/// Records read per page of the pass.
const PAGE: usize = 4096;

impl Engine {
    /// The open cases `unit` leads now, in id order.
    ///
    /// # Errors
    /// [`EngineError`] when the log cannot be read or an event does not decode.
    pub fn open_cases_led_by(&self, unit: &UnitId) -> Result<Vec<CaseId>, EngineError> {
        let mut ever_led = BTreeSet::new();
        let mut from = Position::FIRST;
        loop {
            let page = self.log.read_all(from, PAGE)?;
            let Some(last) = page.last() else { break };
            from = last.position.next();
            for record in &page {
                let Some(case) = CaseId::of_stream(&record.stream) else {
                    continue;
                };
                let led_by = match record.event_type.as_str() {
                    "CaseOpened" | "LeadAssigned" | "ReturnedToSender" | "CaseReopened" => {
                        match decode::<CaseEvent>(record)? {
                            CaseEvent::Opened(e) => e.unit,
                            CaseEvent::LeadAssigned(e) => e.unit,
                            CaseEvent::ReturnedToSender(e) => e.to,
                            CaseEvent::Reopened(e) => e.lead,
                            _ => continue,
                        }
                    }
                    _ => continue,
                };
                if &led_by == unit {
                    ever_led.insert(case);
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
        let registry = self.definitions.current();
        let mut open = Vec::new();
        for case in ever_led {
            let state = load::load::<Case>(&*self.log, &registry, &case.stream())?.state;
            if state.is_some_and(|s| !s.closed && s.merged_into.is_none() && &s.lead == unit) {
                open.push(case);
            }
        }
        Ok(open)
    }
}
