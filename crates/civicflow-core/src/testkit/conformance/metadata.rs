//! What the log keeps about each event besides its payload: the append's correlation id on
//! every event of it, and each event's cause: its own when the request gave one (a
//! directive's parts are caused by its issuing, in the same append), otherwise the
//! append's.

use super::support::{actor, correlation, event, run, stream, system_clock};
use super::Backend;
use crate::{
    AppendRequest, CausationId, EventId, EventStore, ExpectedVersion, Position, StreamWrite,
};

/// One append to two streams: the first event carries an id chosen by the caller, the
/// second event of each stream the cause given for it alone, the others none; the append
/// has a correlation id and a cause. Read back, before and after a reopen: every event has
/// the append's correlation id, the events with a cause of their own keep it, the others the
/// append's; the chosen id is kept.
///
/// # Panics
/// When a read event's correlation, cause or id is not the one written: names the event,
/// when, and the store.
pub fn each_event_keeps_its_own_cause_or_the_appends<B: Backend>(backend: &B) {
    run(
        backend,
        "each_event_keeps_its_own_cause_or_the_appends",
        |check| {
            let place = check.place();
            let log = check.open_empty(&place, system_clock(), 2);
            let issued = EventId::new_v7(crate::Timestamp::from_unix_micros(1_000_000));
            let own_cause = CausationId::from(issued);
            let append_cause = CausationId::from(EventId::new_v7(
                crate::Timestamp::from_unix_micros(2_000_000),
            ));
            let correlation = correlation();
            let writes = vec![
                StreamWrite::new(
                    stream("directive-metadata"),
                    ExpectedVersion::NoStream,
                    vec![
                        event(b"issued").with_id(issued),
                        event(b"part of the issuing").caused_by(own_cause),
                    ],
                ),
                StreamWrite::new(
                    stream("directive-metadata.1"),
                    ExpectedVersion::NoStream,
                    vec![
                        event(b"a part"),
                        event(b"its deadline").caused_by(own_cause),
                    ],
                ),
            ];
            let request =
                AppendRequest::to_streams(writes, actor(), correlation).caused_by(append_cause);
            log.append(request)
                .expect("the append")
                .expect("no conflict");
            let expected = [
                (Some(issued), append_cause),
                (None, own_cause),
                (None, append_cause),
                (None, own_cause),
            ];
            let check_log = |log: &dyn EventStore, when: &str| {
                let events = log.read_all(Position::FIRST, 10).expect("read_all");
                assert_eq!(events.len(), 4, "{when}: four events");
                for (i, (recorded, (id, cause))) in events.iter().zip(expected).enumerate() {
                    assert_eq!(
                        recorded.correlation_id, correlation,
                        "{when}: event {i} must carry the append's correlation id"
                    );
                    assert_eq!(
                        recorded.causation_id,
                        Some(cause),
                        "{when}: event {i} must carry {}",
                        if cause == own_cause {
                            "the cause given for it"
                        } else {
                            "the append's cause"
                        }
                    );
                    if let Some(id) = id {
                        assert_eq!(recorded.event_id, id, "{when}: the id chosen is kept");
                    }
                }
            };
            check_log(&*log, "before a reopen");
            let log = check.reopen(&place, log, system_clock(), 0);
            check_log(&*log, "after a reopen");
            check.close(log);
        },
    );
}
