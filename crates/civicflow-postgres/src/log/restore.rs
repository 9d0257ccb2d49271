//! Restore into an empty PostgreSQL log: every record checked by the core's `RestoreCheck`
//! (as on sled), written in batches inside one transaction on a connection of its own, and
//! made visible at once by COMMIT in `finish`. An error, or dropping the restore unfinished,
//! rolls the transaction back: the log is empty again, also for a reader that looked meanwhile
//! (it never saw anything). Appends wait for the restore: it holds the committer.

use std::sync::Arc;

use civicflow_core::backend::RestoreCheck;
use civicflow_core::{
    ChainHash, ChainHead, Position, RestoreError, RestoreSink, StoredIdempotency, StoredRecord,
    StreamId, Version,
};
use tokio::sync::OwnedMutexGuard;
use tokio_postgres::Client;

use super::commit::Committer;
use super::{hash_of, sql_int, storage as read_storage, Shared};
use crate::database::{describe, Database};

/// Records (or idempotency records) sent to the database in one statement.
const BATCH: usize = 4096;

pub(super) struct PgRestore<'a> {
    shared: &'a Shared,
    /// Held for the whole restore: no append is committed meanwhile.
    committer: Option<OwnedMutexGuard<Committer>>,
    client: Arc<Client>,
    check: RestoreCheck,
    records: Vec<StoredRecord>,
    stream_of: Vec<(String, i64)>,
    keys: Vec<StoredIdempotency>,
    key_last: Vec<i64>,
    finished: bool,
}

impl std::fmt::Debug for PgRestore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRestore")
            .field("next", &self.check.next_position())
            .finish_non_exhaustive()
    }
}

fn storage(db: &Database, e: &tokio_postgres::Error) -> RestoreError {
    RestoreError::Storage(format!("{}: {}", db.location(), describe(e)))
}

impl<'a> PgRestore<'a> {
    pub(super) fn begin(shared: &'a Shared) -> Result<Self, RestoreError> {
        let db = shared.db.clone();
        let committer_lock = shared.committer.committer.clone();
        let (committer, client) = db.run({
            let db = db.clone();
            async move {
                let committer = committer_lock.lock_owned().await;
                let (client, connection) = db.dedicated().await.map_err(RestoreError::Storage)?;
                db.spawn(async move {
                    let _ = connection.await;
                });
                client
                    .batch_execute("BEGIN")
                    .await
                    .map_err(|e| storage(&db, &e))?;
                // The head row's lock: no other instance appends during the restore either.
                let row = client
                    .query_one(
                        &format!("SELECT position FROM {} FOR UPDATE", db.table("log_head")),
                        &[],
                    )
                    .await
                    .map_err(|e| storage(&db, &e))?;
                let head: i64 = row.get(0);
                if head != 0 {
                    return Err(RestoreError::NotEmpty {
                        what: format!("its head is position {head}"),
                    });
                }
                for (table, what) in [
                    ("events", "it holds log records"),
                    ("idempotency", "it holds idempotency records"),
                ] {
                    let any = client
                        .query_opt(&format!("SELECT 1 FROM {} LIMIT 1", db.table(table)), &[])
                        .await
                        .map_err(|e| storage(&db, &e))?;
                    if any.is_some() {
                        return Err(RestoreError::NotEmpty { what: what.into() });
                    }
                }
                Ok((committer, client))
            }
        })?;
        Ok(Self {
            shared,
            committer: Some(committer),
            client: Arc::new(client),
            check: RestoreCheck::with_stream_limit(
                shared
                    .restore_streams_in_memory
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            records: Vec::new(),
            stream_of: Vec::new(),
            keys: Vec::new(),
            key_last: Vec::new(),
            finished: false,
        })
    }

    fn write_records(&mut self) -> Result<(), RestoreError> {
        if self.records.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.records);
        let streams = std::mem::take(&mut self.stream_of);
        let db = self.shared.db.clone();
        let client = self.client.clone();
        self.shared.db.run(async move {
            let positions: Vec<i64> = records.iter().map(|r| sql_int(r.position.get())).collect();
            let hashes: Vec<&[u8]> = records.iter().map(|r| r.hash.as_bytes().as_slice()).collect();
            let bytes: Vec<&[u8]> = records.iter().map(|r| r.bytes.as_slice()).collect();
            let names: Vec<&str> = streams.iter().map(|(s, _)| s.as_str()).collect();
            let versions: Vec<i64> = streams.iter().map(|(_, v)| *v).collect();
            client
                .execute(
                    &format!(
                        "INSERT INTO {} (position, stream, version, hash, record)
                         SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::bytea[], $5::bytea[])",
                        db.table("events")
                    ),
                    &[&positions, &names, &versions, &hashes, &bytes],
                )
                .await
                .map_err(|e| storage(&db, &e))
                .map(|_| ())
        })?;
        // Every record so far is in the transaction: the check may forget streams.
        self.check.written();
        Ok(())
    }

    fn write_keys(&mut self) -> Result<(), RestoreError> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let keys = std::mem::take(&mut self.keys);
        let last = std::mem::take(&mut self.key_last);
        let db = self.shared.db.clone();
        let client = self.client.clone();
        self.shared.db.run(async move {
            let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
            let bytes: Vec<&[u8]> = keys.iter().map(|k| k.bytes.as_slice()).collect();
            client
                .execute(
                    &format!(
                        "INSERT INTO {} (key, last_position, record)
                         SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[])",
                        db.table("idempotency")
                    ),
                    &[&names, &last, &bytes],
                )
                .await
                .map_err(|e| storage(&db, &e))
                .map(|_| ())
        })
    }
}

/// The last version and stored hash of `stream` among the records the restore has written,
/// read inside its own transaction (nothing of it is visible to other connections yet).
fn last_restored(
    db: &Database,
    client: Arc<Client>,
    stream: StreamId,
) -> Result<Option<(Version, ChainHash)>, RestoreError> {
    let db2 = db.clone();
    db.run(async move {
        let row = client
            .query_opt(
                &format!(
                    "SELECT version, position, hash FROM {} WHERE stream = $1 ORDER BY version DESC LIMIT 1",
                    db2.table("events")
                ),
                &[&stream.as_str()],
            )
            .await
            .map_err(|e| read_storage(&db2, &e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (version, position, hash): (i64, i64, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
        let position = super::position_of(position)?;
        let version = u64::try_from(version)
            .ok()
            .and_then(Version::new)
            .ok_or_else(|| civicflow_core::ReadError::Corrupted {
                position,
                reason: format!("stored version {version}"),
            })?;
        Ok(Some((version, hash_of(&hash, position)?)))
    })
}

impl RestoreSink for PgRestore<'_> {
    fn next_position(&self) -> Position {
        self.check.next_position()
    }

    fn push_record(&mut self, record: StoredRecord) -> Result<(), RestoreError> {
        let (db, client) = (self.shared.db.clone(), self.client.clone());
        let event = self.check.record(&record, &mut |stream| {
            last_restored(&db, client.clone(), stream.clone())
        })?;
        self.stream_of.push((
            event.stream.as_str().to_owned(),
            sql_int(event.version.get()),
        ));
        self.records.push(record);
        // Written at least as often as the check may forget streams (only after a write).
        if self.records.len() >= BATCH.min(self.check.stream_limit()) {
            self.write_records()?;
        }
        Ok(())
    }

    fn push_idempotency(&mut self, record: StoredIdempotency) -> Result<(), RestoreError> {
        let last = self.check.idempotency(&record)?;
        self.write_records()?;
        self.key_last.push(sql_int(last.get()));
        self.keys.push(record);
        if self.keys.len() >= BATCH {
            self.write_keys()?;
        }
        Ok(())
    }

    fn finish(
        mut self: Box<Self>,
        expected_head: Option<ChainHead>,
    ) -> Result<Option<ChainHead>, RestoreError> {
        let head = self.check.head(expected_head)?;
        self.write_records()?;
        self.write_keys()?;
        let db = self.shared.db.clone();
        let client = self.client.clone();
        let recorded_at = self.check.last_recorded_at().as_unix_micros();
        self.shared.db.run(async move {
            if let Some(head) = head {
                client
                    .execute(
                        &format!(
                            "UPDATE {} SET position = $1, hash = $2, recorded_at = $3",
                            db.table("log_head")
                        ),
                        &[
                            &sql_int(head.position.get()),
                            &head.hash.as_bytes().as_slice(),
                            &recorded_at,
                        ],
                    )
                    .await
                    .map_err(|e| storage(&db, &e))?;
            }
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| storage(&db, &e))
        })?;
        self.finished = true;
        if let Some(mut committer) = self.committer.take() {
            committer.forget();
        }
        if let Some(head) = head {
            self.shared.learn_head(head);
        }
        Ok(head)
    }
}

impl Drop for PgRestore<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // Ends the transaction: nothing of it was ever visible.
            let client = self.client.clone();
            self.shared.db.run(async move {
                let _ = client.batch_execute("ROLLBACK").await;
            });
        }
    }
}
