//! A warning in the service's log while the business calendar is about to run out: from 45
//! days before the last year of official holiday data ends, once at start and then every day,
//! until the next year is published (`PUT /api/v1/calendar/{year}`, `civicflow calendar
//! publish`). Without the next year's data, deadlines reaching into it are counted on plain
//! weekdays and marked provisional; the service stays ready (a missing year is a data task,
//! not an outage), so the warning and the `/metrics` gauge are how an operator learns of it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use civicflow_core::calendar::Zone;
use civicflow_core::engine::Engine;
use civicflow_core::Timestamp;

/// How long before coverage ends the warning starts.
pub const WARN_DAYS: i64 = 45;

/// How often the calendar is looked at.
const EVERY: Duration = Duration::from_secs(24 * 3600);

/// The warning due at `now` when the calendar's data ends at `ends` (`None`: more than
/// [`WARN_DAYS`] away), its times written in `zone`.
pub fn coverage_warning(now: Timestamp, ends: Timestamp, zone: &Zone) -> Option<String> {
    let left = ends.as_unix_micros().saturating_sub(now.as_unix_micros());
    let days = left.div_euclid(86_400_000_000);
    if days >= WARN_DAYS {
        return None;
    }
    Some(if left <= 0 {
        format!(
            "the business calendar has no official holiday data from {} on: deadlines are counted on plain weekdays and are provisional; publish the year (PUT /api/v1/calendar/{{year}} or `civicflow calendar publish`)",
            zone.format(ends)
        )
    } else {
        format!(
            "the business calendar's official holiday data ends at {} ({days} days from now): publish the next year (PUT /api/v1/calendar/{{year}} or `civicflow calendar publish`), or deadlines reaching past it will be provisional",
            zone.format(ends)
        )
    })
}

/// Looks at the calendar now and every day after, on a thread of its own that ends with the
/// engine.
pub(crate) fn spawn(engine: &Arc<Engine>) -> std::io::Result<()> {
    let engine: Weak<Engine> = Arc::downgrade(engine);
    std::thread::Builder::new()
        .name("civicflow-calendar-watch".into())
        .spawn(move || loop {
            let Some(strong) = engine.upgrade() else {
                return;
            };
            match strong.calendar_overview() {
                Ok(overview) => {
                    if let Some(warning) = coverage_warning(
                        strong.now(),
                        overview.coverage_ends_at,
                        strong.calendar().zone(),
                    ) {
                        tracing::warn!(covered_through = ?overview.covered_through, "{warning}");
                    }
                }
                Err(e) => tracing::warn!("the business calendar cannot be read: {e}"),
            }
            drop(strong);
            // Sleep in short steps, so that the thread ends soon after the engine does.
            let mut slept = Duration::ZERO;
            while slept < EVERY {
                std::thread::sleep(Duration::from_secs(1));
                slept += Duration::from_secs(1);
                if engine.strong_count() == 0 {
                    return;
                }
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn warns_from_45_days_before_the_data_ends_and_after() {
        let ends = Timestamp::from_unix_micros(1_000 * DAY);
        let at = |days_before: i64| Timestamp::from_unix_micros(1_000 * DAY - days_before * DAY);
        assert_eq!(coverage_warning(at(46), ends, &Zone::shanghai()), None);
        assert_eq!(coverage_warning(at(45), ends, &Zone::shanghai()), None);
        let soon =
            coverage_warning(at(44), ends, &Zone::shanghai()).expect("a warning 44 days before");
        assert!(soon.contains("44 days from now"), "{soon}");
        let gone =
            coverage_warning(at(-3), ends, &Zone::shanghai()).expect("a warning after it ended");
        assert!(gone.contains("provisional"), "{gone}");
    }
}
