//! `verify` and `verify_stream` on PostgreSQL: the stored bytes and hashes walked with the
//! core's checks (`ChainWalk`, `check_stream_record`), exactly as on sled.

use civicflow_core::backend::{check_stream_record, ChainWalk};
use civicflow_core::{
    ChainBreak, ChainHash, ChainHead, Position, ReadError, StreamId, VerifyReport, Version,
};

use super::{hash_of, position_of, sql_int, storage, Shared};
use crate::database::Database;

/// Records read per page of a walk.
const PAGE: i64 = 4096;

/// Walks the whole log up to the head as it is when the walk starts.
pub(super) fn log(shared: &Shared) -> Result<VerifyReport, ReadError> {
    let db = shared.db.clone();
    let head_db = db.clone();
    let head = db
        .run(async move { super::read::stored_head(&head_db).await })?
        .map(|(h, _)| h.position);
    let mut walk = ChainWalk::new();
    let Some(head) = head else {
        return Ok(walk.finish(None));
    };
    let mut previous_in_stream = |stream: &StreamId, version: Version, before: Position| {
        let db2 = db.clone();
        let stream = stream.clone();
        db.run(async move { hash_of_version(&db2, &stream, version, before).await })
    };
    let mut after = 0i64;
    'pages: loop {
        let page_db = db.clone();
        let last = sql_int(head.get());
        let rows = db.run(async move {
            let client = page_db.client().await.map_err(ReadError::Storage)?;
            let sql = format!(
                "SELECT position, hash, record FROM {} WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3",
                page_db.table("events")
            );
            client
                .query(&sql, &[&after, &last, &PAGE])
                .await
                .map_err(|e| storage(&page_db, &e))
                .map(|rows| {
                    rows.iter()
                        .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1), r.get::<_, Vec<u8>>(2)))
                        .collect::<Vec<_>>()
                })
        })?;
        if rows.is_empty() {
            break;
        }
        for (position, hash, record) in rows {
            after = position;
            let position = position_of(position)?;
            let hash = match hash_of(&hash, position) {
                Ok(hash) => hash,
                Err(e) => {
                    walk.broken(
                        position,
                        civicflow_core::ChainBreakReason::Undecodable {
                            reason: e.to_string(),
                        },
                    );
                    break 'pages;
                }
            };
            if !walk.step(position, hash, &record, &mut previous_in_stream)? {
                break 'pages;
            }
        }
    }
    Ok(walk.finish(Some(head)))
}

/// The stored hash of `stream`'s event at `version`, stored before `before`.
async fn hash_of_version(
    db: &Database,
    stream: &StreamId,
    version: Version,
    before: Position,
) -> Result<Option<ChainHash>, ReadError> {
    let client = db.client().await.map_err(ReadError::Storage)?;
    let sql = format!(
        "SELECT position, hash FROM {} WHERE stream = $1 AND version = $2 AND position < $3",
        db.table("events")
    );
    let row = client
        .query_opt(
            &sql,
            &[
                &stream.as_str(),
                &sql_int(version.get()),
                &sql_int(before.get()),
            ],
        )
        .await
        .map_err(|e| storage(db, &e))?;
    row.map(|row| hash_of(row.get(1), position_of(row.get(0))?))
        .transpose()
}

/// Walks one stream in version order: each event's hash from its stream predecessor and the
/// log's event before it.
pub(super) fn stream(shared: &Shared, stream: &StreamId) -> Result<VerifyReport, ReadError> {
    let db = shared.db.clone();
    let mut report = VerifyReport {
        events_checked: 0,
        last_good: None,
        first_break: None,
    };
    let mut prev_stream = ChainHash::GENESIS;
    let mut from = Version::FIRST;
    loop {
        let page_db = db.clone();
        let page_stream = stream.clone();
        // Each event with the hash of the log's event before it, in one query.
        let rows = db.run(async move {
            let client = page_db.client().await.map_err(ReadError::Storage)?;
            let events = page_db.table("events");
            let sql = format!(
                "SELECT e.version, e.position, e.hash, e.record, p.hash
                   FROM {events} e LEFT JOIN {events} p ON p.position = e.position - 1
                  WHERE e.stream = $1 AND e.version >= $2 ORDER BY e.version LIMIT $3"
            );
            client
                .query(&sql, &[&page_stream.as_str(), &sql_int(from.get()), &PAGE])
                .await
                .map_err(|e| storage(&page_db, &e))
                .map(|rows| {
                    rows.iter()
                        .map(|r| {
                            (
                                r.get::<_, i64>(0),
                                r.get::<_, i64>(1),
                                r.get::<_, Vec<u8>>(2),
                                r.get::<_, Vec<u8>>(3),
                                r.get::<_, Option<Vec<u8>>>(4),
                            )
                        })
                        .collect::<Vec<_>>()
                })
        })?;
        if rows.is_empty() {
            return Ok(report);
        }
        for (version, position, hash, record, prev_log) in rows {
            let position = position_of(position)?;
            let version = super::read::version_of(version)?;
            let stored = hash_of(&hash, position)?;
            let prev_log = match (position.prev(), prev_log) {
                (None, _) => ChainHash::GENESIS,
                (Some(_), Some(bytes)) => hash_of(&bytes, position)?,
                (Some(before), None) => {
                    report.first_break = Some(ChainBreak {
                        position,
                        reason: civicflow_core::ChainBreakReason::PositionGap { expected: before },
                    });
                    return Ok(report);
                }
            };
            match check_stream_record(
                stream,
                version,
                position,
                prev_log,
                prev_stream,
                stored,
                &record,
            ) {
                Ok(hash) => {
                    prev_stream = hash;
                    from = version.next();
                    report.events_checked += 1;
                    report.last_good = Some(ChainHead { position, hash });
                }
                Err(reason) => {
                    report.first_break = Some(ChainBreak { position, reason });
                    return Ok(report);
                }
            }
        }
    }
}
