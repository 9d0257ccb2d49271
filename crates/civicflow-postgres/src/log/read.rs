//! Reads: plain queries on the pool. Everything a query sees is committed, and commits are
//! ordered by the head row's lock, so a query's snapshot always holds a prefix of the
//! positions: never N+1 without N (docs/design.md, "Positions on a shared database").

use civicflow_core::backend::{decode_idempotency, StreamHead};
use civicflow_core::{
    Appended, ChainHead, IdempotencyKey, Position, ReadError, RecordedEvent, StoredIdempotency,
    StoredRecord, StreamId, Timestamp, Version,
};

use super::{hash_of, position_of, sql_int, storage};
use crate::database::Database;

/// Rows a read asks for at most in one query, whatever `max` the caller gave.
const PAGE_MAX: usize = 4096;

fn limit(max: usize) -> i64 {
    sql_int(max.min(PAGE_MAX) as u64)
}

/// Runs one read on a pooled connection, its statement prepared once per connection (the
/// pool keeps them): the rows, or the storage error naming the database.
async fn rows(
    db: &Database,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, ReadError> {
    let client = db.client().await.map_err(ReadError::Storage)?;
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(|e| storage(db, &e))?;
    client
        .query(&statement, params)
        .await
        .map_err(|e| storage(db, &e))
}

/// The stored head and the newest recorded time, `None` for an empty log.
pub(crate) async fn stored_head(
    db: &Database,
) -> Result<Option<(ChainHead, Timestamp)>, ReadError> {
    let sql = format!(
        "SELECT position, hash, recorded_at FROM {}",
        db.table("log_head")
    );
    let rows = rows(db, &sql, &[]).await?;
    let Some(row) = rows.first() else {
        return Err(ReadError::CorruptedIndex {
            what: "the log's head row".into(),
            reason: "it is missing".into(),
        });
    };
    head_of_row(row.get(0), row.get(1), row.get(2))
}

/// A head row's columns as the core's types.
pub(crate) fn head_of_row(
    position: i64,
    hash: &[u8],
    recorded_at: i64,
) -> Result<Option<(ChainHead, Timestamp)>, ReadError> {
    if position == 0 {
        return Ok(None);
    }
    let position = position_of(position)?;
    Ok(Some((
        ChainHead {
            position,
            hash: hash_of(hash, position)?,
        },
        Timestamp::from_unix_micros(recorded_at),
    )))
}

fn decode(position: i64, hash: &[u8], record: &[u8]) -> Result<RecordedEvent, ReadError> {
    let position = position_of(position)?;
    let hash = hash_of(hash, position)?;
    RecordedEvent::from_record_bytes(record, hash).map_err(|e| ReadError::Corrupted {
        position,
        reason: e.to_string(),
    })
}

/// Up to `max` events from position `from` on: the stored records, decoded.
pub(crate) async fn all(
    db: &Database,
    from: Position,
    max: usize,
) -> Result<Vec<RecordedEvent>, ReadError> {
    stored_records(db, from, max)
        .await?
        .into_iter()
        .map(|stored| {
            RecordedEvent::from_record_bytes(&stored.bytes, stored.hash).map_err(|e| {
                ReadError::Corrupted {
                    position: stored.position,
                    reason: e.to_string(),
                }
            })
        })
        .collect()
}

/// Up to `max` events of `stream` from version `from` on.
pub(crate) async fn stream(
    db: &Database,
    stream: &StreamId,
    from: Version,
    max: usize,
) -> Result<Vec<RecordedEvent>, ReadError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT position, hash, record FROM {} WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3",
        db.table("events")
    );
    let rows = rows(
        db,
        &sql,
        &[&stream.as_str(), &sql_int(from.get()), &limit(max)],
    )
    .await?;
    rows.iter()
        .map(|row| decode(row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// The newest event of `stream`: its version and hash.
pub(crate) async fn stream_head(
    db: &Database,
    stream: &StreamId,
) -> Result<Option<StreamHead>, ReadError> {
    let sql = format!(
        "SELECT version, hash, position FROM {} WHERE stream = $1 ORDER BY version DESC LIMIT 1",
        db.table("events")
    );
    let rows = rows(db, &sql, &[&stream.as_str()]).await?;
    rows.first()
        .map(|row| {
            let position = position_of(row.get(2))?;
            Ok(StreamHead {
                version: version_of(row.get(0))?,
                hash: hash_of(row.get(1), position)?,
            })
        })
        .transpose()
}

/// A stored version column as the core's type.
pub(crate) fn version_of(value: i64) -> Result<Version, ReadError> {
    u64::try_from(value)
        .ok()
        .and_then(Version::new)
        .ok_or_else(|| ReadError::CorruptedIndex {
            what: "a stored version".into(),
            reason: format!("{value} is not a version"),
        })
}

/// The stored record of a keyed append.
pub(crate) async fn idempotency(
    db: &Database,
    key: &IdempotencyKey,
) -> Result<Option<([u8; 32], Appended)>, ReadError> {
    let sql = format!(
        "SELECT record FROM {} WHERE key = $1",
        db.table("idempotency")
    );
    let rows = rows(db, &sql, &[&key.as_str()]).await?;
    rows.first()
        .map(|row| decode_idempotency(key, row.get(0)))
        .transpose()
}

/// Up to `max` stored records from `from` on, exactly as stored.
pub(crate) async fn stored_records(
    db: &Database,
    from: Position,
    max: usize,
) -> Result<Vec<StoredRecord>, ReadError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT position, hash, record FROM {} WHERE position >= $1 ORDER BY position LIMIT $2",
        db.table("events")
    );
    let rows = rows(db, &sql, &[&sql_int(from.get()), &limit(max)]).await?;
    rows.iter()
        .map(|row| {
            let position = position_of(row.get(0))?;
            Ok(StoredRecord {
                position,
                hash: hash_of(row.get(1), position)?,
                bytes: row.get::<_, Vec<u8>>(2),
            })
        })
        .collect()
}

/// Up to `max` stored idempotency records with keys after `after`, in byte order (the order
/// sled keeps them in, whatever the database's collation).
pub(crate) async fn stored_idempotency(
    db: &Database,
    after: Option<&IdempotencyKey>,
    max: usize,
) -> Result<Vec<StoredIdempotency>, ReadError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let table = db.table("idempotency");
    let rows = match after {
        Some(after) => {
            let sql =
                format!("SELECT key, record FROM {table} WHERE key > $1 ORDER BY key LIMIT $2");
            rows(db, &sql, &[&after.as_str(), &limit(max)]).await?
        }
        None => {
            let sql = format!("SELECT key, record FROM {table} ORDER BY key LIMIT $1");
            rows(db, &sql, &[&limit(max)]).await?
        }
    };
    rows.iter()
        .map(|row| {
            let text: &str = row.get(0);
            let key = IdempotencyKey::new(text).map_err(|e| ReadError::CorruptedIndex {
                what: format!("idempotency record {text}"),
                reason: e.to_string(),
            })?;
            Ok(StoredIdempotency {
                key,
                bytes: row.get::<_, Vec<u8>>(1),
            })
        })
        .collect()
}
