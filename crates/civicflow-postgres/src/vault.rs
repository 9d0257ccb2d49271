//! [`PgVaultStore`]: the vault's storage ([`VaultStore`]) in the store's PostgreSQL schema.
//!
//! ```text
//! vault_check    the master key's check value (one row)
//! vault_keys     per person: the wrapped data key, its nonce, the phone tag
//! vault_records  per person: the ciphertext record
//! vault_erased   the ids of erased people, kept forever
//! ```
//!
//! Unlike the embedded store, which one process has to itself, one schema serves every
//! service instance on the database: each has a vault of its own on it. The vault serializes
//! its calls per person within one process only, so the store does it across processes:
//! every change to a person runs in a transaction holding a transaction-scoped advisory lock
//! on that person, and a key or record written for a person already marked erased is
//! refused inside that same transaction. An erasure on one instance and a store on another
//! can therefore never leave a record or a key behind the marker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use civicflow_core::vault::{PersonId, VaultError, VaultStore, WrappedKey, CHECK_VALUE_LEN};
use subtle::ConstantTimeEq;
use tokio_postgres::Row;

use crate::database::{describe, Database};

/// The vault of one store, on its PostgreSQL schema. Cheap to clone; open one per vault
/// (`Vault::with_store(PgVaultStore::new(database), master)`).
///
/// Every change is committed before its method returns (PostgreSQL's `synchronous_commit`
/// default: the commit record is flushed to the write-ahead log), so it survives a crash of
/// the server. Nothing is kept in memory but the SQL.
#[derive(Clone)]
pub struct PgVaultStore {
    database: Database,
    sql: Arc<Statements>,
}

impl std::fmt::Debug for PgVaultStore {
    // Where it is; never keys, tags or records.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgVaultStore")
            .field("location", &self.database.location())
            .finish_non_exhaustive()
    }
}

/// The store's SQL, with the schema's table names in it. Person ids travel as text and are
/// cast to `uuid` by the server, so the driver needs no UUID support of its own.
struct Statements {
    /// The text the advisory-lock keys are hashed from starts with this (the schema is in
    /// it, so stores in different schemas never wait for each other).
    lock_prefix: String,
    keys_table: String,
    lock: String,
    select_check: String,
    insert_check: String,
    holds_people: String,
    key: String,
    upsert_key: String,
    insert_key: String,
    delete_key: String,
    current_xid: String,
    older_snapshots: String,
    vacuum_keys: String,
    may_vacuum_keys: String,
    find_by_tag: String,
    key_count: String,
    record: String,
    upsert_record: String,
    has_record: String,
    is_erased: String,
    insert_erased: String,
    delete_record: String,
    erased: String,
}

impl Statements {
    fn new(database: &Database) -> Self {
        let check = database.table("vault_check");
        let keys = database.table("vault_keys");
        let records = database.table("vault_records");
        let erased = database.table("vault_erased");
        Self {
            lock_prefix: format!("civicflow vault {} ", database.schema()),
            lock: "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))".to_owned(),
            select_check: format!("SELECT check_value FROM {check} WHERE one FOR UPDATE"),
            insert_check: format!("INSERT INTO {check} (one, check_value) VALUES (true, $1)"),
            holds_people: format!(
                "SELECT EXISTS (SELECT 1 FROM {records}) OR EXISTS (SELECT 1 FROM {erased})"
            ),
            key: format!(
                "SELECT nonce, wrapped, phone_tag FROM {keys} WHERE person = $1::text::uuid"
            ),
            upsert_key: format!(
                "INSERT INTO {keys} (person, nonce, wrapped, phone_tag)
                 VALUES ($1::text::uuid, $2, $3, $4)
                 ON CONFLICT (person) DO UPDATE
                 SET nonce = excluded.nonce, wrapped = excluded.wrapped,
                     phone_tag = excluded.phone_tag"
            ),
            insert_key: format!(
                "INSERT INTO {keys} (person, nonce, wrapped, phone_tag)
                 VALUES ($1::text::uuid, $2, $3, $4)
                 ON CONFLICT (person) DO NOTHING"
            ),
            delete_key: format!("DELETE FROM {keys} WHERE person = $1::text::uuid"),
            current_xid: "SELECT pg_current_xact_id()::text".to_owned(),
            // Whatever keeps a row version deleted by transaction $1 from being removed: a
            // session of this database whose snapshot or transaction is that old or older,
            // a replication slot (a standby's feedback), a prepared transaction. `age` orders
            // transaction ids across wraparound.
            older_snapshots: "SELECT EXISTS (
                    SELECT 1 FROM pg_catalog.pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()
                      AND (age(backend_xmin) >= age($1::text::xid)
                           OR age(backend_xid) >= age($1::text::xid))
                    UNION ALL
                    SELECT 1 FROM pg_catalog.pg_replication_slots
                    WHERE age(xmin) >= age($1::text::xid)
                    UNION ALL
                    SELECT 1 FROM pg_catalog.pg_prepared_xacts
                    WHERE database = current_database()
                      AND age(transaction) >= age($1::text::xid))"
                .to_owned(),
            // INDEX_CLEANUP ON: without it, a VACUUM that finds few dead rows may leave the
            // index entries (holding the phone tag) in place (PostgreSQL 14 and later).
            vacuum_keys: format!("VACUUM (INDEX_CLEANUP ON) {keys}"),
            may_vacuum_keys: format!(
                "SELECT pg_has_role(current_user, relowner, 'USAGE')
                 FROM pg_catalog.pg_class WHERE oid = '{keys}'::regclass"
            ),
            find_by_tag: format!("SELECT person::text FROM {keys} WHERE phone_tag = $1"),
            key_count: format!("SELECT count(*) FROM {keys}"),
            record: format!("SELECT record FROM {records} WHERE person = $1::text::uuid"),
            upsert_record: format!(
                "INSERT INTO {records} (person, record) VALUES ($1::text::uuid, $2)
                 ON CONFLICT (person) DO UPDATE SET record = excluded.record"
            ),
            has_record: format!(
                "SELECT EXISTS (SELECT 1 FROM {records} WHERE person = $1::text::uuid)"
            ),
            is_erased: format!(
                "SELECT EXISTS (SELECT 1 FROM {erased} WHERE person = $1::text::uuid)"
            ),
            insert_erased: format!(
                "INSERT INTO {erased} (person) VALUES ($1::text::uuid) ON CONFLICT DO NOTHING"
            ),
            delete_record: format!("DELETE FROM {records} WHERE person = $1::text::uuid"),
            erased: format!("SELECT person::text FROM {erased}"),
            keys_table: keys,
        }
    }

    fn person_lock(&self, person: PersonId) -> String {
        format!("{}person {person}", self.lock_prefix)
    }

    fn check_lock(&self) -> String {
        format!("{}check value", self.lock_prefix)
    }
}

/// Why an operation failed, inside the driver's runtime; made a [`VaultError`] outside it.
enum Failure {
    /// The server or the connection failed.
    Sql(tokio_postgres::Error),
    /// No connection from the pool.
    Connection(String),
    /// The store refuses, for a reason of its own (a wrong master key, an erased person,
    /// damaged bytes).
    Refused(VaultError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Sql(error)
    }
}

type Outcome<T> = Result<T, Failure>;

impl PgVaultStore {
    /// The vault store on `database`'s schema, whose tables [`Database::connect`] created.
    /// Nothing is read until the vault binds it.
    pub fn new(database: Database) -> Self {
        let sql = Arc::new(Statements::new(&database));
        Self { database, sql }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(self.database.location())
    }

    /// Runs `operation` with a pooled connection on the driver's runtime and waits for it.
    /// `doing` says what it was doing, for the error message.
    fn run<T, F, Fut>(&self, doing: impl FnOnce() -> String, operation: F) -> Result<T, VaultError>
    where
        T: Send + 'static,
        F: FnOnce(Database, Arc<Statements>) -> Fut,
        Fut: std::future::Future<Output = Outcome<T>> + Send + 'static,
    {
        let future = operation(self.database.clone(), Arc::clone(&self.sql));
        self.database.run(future).map_err(|failure| match failure {
            Failure::Refused(error) => error,
            Failure::Sql(error) => VaultError::Storage {
                path: self.path(),
                reason: format!("{}: {}", doing(), describe(&error)),
            },
            Failure::Connection(reason) => VaultError::Storage {
                path: self.path(),
                reason: format!("{}: {reason}", doing()),
            },
        })
    }

    /// The damaged-key error for a stored key of the wrong shape, naming the person.
    fn damaged_key(
        location: String,
        person: PersonId,
        field: &str,
        found: usize,
        expected: usize,
    ) -> Failure {
        Failure::Refused(VaultError::DamagedKeyFile {
            path: PathBuf::from(location),
            reason: format!(
                "the row of person {person} in vault_keys: its {field} has {found} bytes, not {expected}"
            ),
        })
    }
}

async fn connection(database: &Database) -> Outcome<deadpool_postgres::Object> {
    database.client().await.map_err(Failure::Connection)
}

/// A column's value, or a failure (never the driver's panic on a type mismatch).
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Outcome<T> {
    row.try_get(index).map_err(Failure::Sql)
}

/// A person id the server returned as text.
fn parse_person(location: &str, text: &str) -> Outcome<PersonId> {
    PersonId::parse(text).map_err(|_| {
        Failure::Refused(VaultError::Storage {
            path: PathBuf::from(location),
            reason: format!("the server returned {text:?} as a person id, which is not a UUID"),
        })
    })
}

impl VaultStore for PgVaultStore {
    fn location(&self) -> String {
        self.database.location()
    }

    /// Under an advisory lock on the check value (two instances starting on an empty schema
    /// record one check value): an existing check value must equal `check` (compared in
    /// constant time), else nothing is written; without one, the schema must hold no
    /// records and no erasure markers ([`VaultError::KeyFileMissing`] otherwise), and
    /// `check` is recorded.
    ///
    /// Then it checks that the user may `VACUUM` `vault_keys` (it owns the table), which
    /// [`PgVaultStore::destroy_key`] relies on, and vacuums it once: that removes the old
    /// version of a key whose deletion committed but whose `VACUUM` a crash cut short.
    fn bind(&self, check: &[u8; CHECK_VALUE_LEN]) -> Result<(), VaultError> {
        let check = *check;
        let path = self.path();
        self.run(
            || "binding the vault to the master key".to_owned(),
            move |database, sql| async move {
                let mut client = connection(&database).await?;
                let transaction = client.transaction().await?;
                transaction
                    .execute(&sql.lock, &[&sql.check_lock()])
                    .await?;
                let held = transaction.query_opt(&sql.select_check, &[]).await?;
                match held {
                    Some(row) => {
                        let held: Vec<u8> = column(&row, 0)?;
                        if held.len() != CHECK_VALUE_LEN {
                            return Err(Failure::Refused(VaultError::Storage {
                                path,
                                reason: format!(
                                    "vault_check holds a check value of {} bytes, not {CHECK_VALUE_LEN}: damaged",
                                    held.len()
                                ),
                            }));
                        }
                        if !bool::from(held.as_slice().ct_eq(check.as_slice())) {
                            // Dropping the transaction rolls it back: nothing written.
                            return Err(Failure::Refused(VaultError::WrongMasterKey { path }));
                        }
                    }
                    None => {
                        let row = transaction.query_one(&sql.holds_people, &[]).await?;
                        let holds_people: bool = column(&row, 0)?;
                        if holds_people {
                            return Err(Failure::Refused(VaultError::KeyFileMissing { path }));
                        }
                        transaction
                            .execute(&sql.insert_check, &[&check.as_slice()])
                            .await?;
                    }
                }
                transaction.commit().await?;
                let row = client.query_one(&sql.may_vacuum_keys, &[]).await?;
                let may_vacuum: bool = column(&row, 0)?;
                if !may_vacuum {
                    return Err(Failure::Refused(VaultError::Storage {
                        path,
                        reason: format!(
                            "the database user does not own {}, so it may not VACUUM it, and an erased person's key could stay in the table's dead rows; make the user civicflow connects as the table's owner",
                            sql.keys_table
                        ),
                    }));
                }
                client.batch_execute(&sql.vacuum_keys).await?;
                Ok(())
            },
        )
    }

    fn key(&self, person: PersonId) -> Result<Option<WrappedKey>, VaultError> {
        let location = self.location();
        self.run(
            || format!("reading the key of person {person}"),
            move |database, sql| async move {
                let client = connection(&database).await?;
                let statement = client.prepare_cached(&sql.key).await?;
                let Some(row) = client.query_opt(&statement, &[&person.to_string()]).await? else {
                    return Ok(None);
                };
                let nonce: Vec<u8> = column(&row, 0)?;
                let wrapped: Vec<u8> = column(&row, 1)?;
                let phone_tag: Option<Vec<u8>> = column(&row, 2)?;
                let damaged = |field: &str, found: usize, expected: usize| {
                    Self::damaged_key(location.clone(), person, field, found, expected)
                };
                let nonce: [u8; WrappedKey::NONCE_LEN] = nonce
                    .as_slice()
                    .try_into()
                    .map_err(|_| damaged("nonce", nonce.len(), WrappedKey::NONCE_LEN))?;
                let wrapped: [u8; WrappedKey::WRAPPED_LEN] = wrapped
                    .as_slice()
                    .try_into()
                    .map_err(|_| damaged("wrapped", wrapped.len(), WrappedKey::WRAPPED_LEN))?;
                let phone_tag =
                    match phone_tag {
                        None => None,
                        Some(tag) => Some(tag.as_slice().try_into().map_err(|_| {
                            damaged("phone_tag", tag.len(), WrappedKey::PHONE_TAG_LEN)
                        })?),
                    };
                Ok(Some(WrappedKey {
                    person,
                    nonce,
                    wrapped,
                    phone_tag,
                }))
            },
        )
    }

    /// Upserts the key in a transaction holding the person's advisory lock, refusing
    /// ([`VaultError::Erased`]) when the person is marked erased.
    fn put_key(&self, key: &WrappedKey) -> Result<(), VaultError> {
        let key = key.clone();
        let person = key.person;
        self.run(
            || format!("storing the key of person {person}"),
            move |database, sql| async move {
                let mut client = connection(&database).await?;
                let transaction = client.transaction().await?;
                lock_person_unless_erased(&transaction, &sql, person).await?;
                let statement = transaction.prepare_cached(&sql.upsert_key).await?;
                transaction
                    .execute(
                        &statement,
                        &[
                            &person.to_string(),
                            &key.nonce.as_slice(),
                            &key.wrapped.as_slice(),
                            &key.phone_tag.as_ref().map(|tag| tag.as_slice()),
                        ],
                    )
                    .await?;
                transaction.commit().await?;
                Ok(())
            },
        )
    }

    /// Inserts the key under the person's advisory lock unless a row is there (another
    /// instance made their first key a moment before); then that row is the answer.
    fn insert_key(&self, key: &WrappedKey) -> Result<WrappedKey, VaultError> {
        let inserted = {
            let key = key.clone();
            let person = key.person;
            self.run(
                || format!("storing the first key of person {person}"),
                move |database, sql| async move {
                    let mut client = connection(&database).await?;
                    let transaction = client.transaction().await?;
                    lock_person_unless_erased(&transaction, &sql, person).await?;
                    let statement = transaction.prepare_cached(&sql.insert_key).await?;
                    let rows = transaction
                        .execute(
                            &statement,
                            &[
                                &person.to_string(),
                                &key.nonce.as_slice(),
                                &key.wrapped.as_slice(),
                                &key.phone_tag.as_ref().map(|tag| tag.as_slice()),
                            ],
                        )
                        .await?;
                    transaction.commit().await?;
                    Ok(rows == 1)
                },
            )?
        };
        if inserted {
            return Ok(key.clone());
        }
        // Keys are only ever replaced with the same key bytes (a new phone tag) or destroyed
        // by an erasure, which marks the person first: the row read now is the one that won.
        self.key(key.person)?
            .ok_or(VaultError::Erased { person: key.person })
    }

    /// Deletes the person's row from `vault_keys` (under their advisory lock) and commits;
    /// then, when there was a row, waits until no transaction that could still see it is
    /// open, and runs `VACUUM (INDEX_CLEANUP ON)` on `vault_keys`.
    ///
    /// PostgreSQL never overwrites a row in place: a `DELETE` only marks the row version
    /// dead, and a vacuum can remove it only once no snapshot older than the deletion is
    /// left. Hence the wait (at most ten seconds: the sessions of this database,
    /// replication slots and prepared transactions, as `pg_stat_activity` and the catalogs
    /// show them to this user). The `VACUUM` then removes the row version from the table
    /// and its entries from the indexes, so no query, index scan or later transaction can
    /// reach the key or the phone tag again. What remains, and the operator documentation
    /// must say so:
    ///
    /// - the dead row's bytes in the free space of the table's and the phone-tag index's
    ///   8 kB pages, until new rows overwrite them (on disk, in shared buffers and in the
    ///   operating system's page cache);
    /// - the write-ahead log records that inserted the key (and full-page images of its
    ///   page), in `pg_wal` until their segments are recycled after later checkpoints, and
    ///   in any WAL archive, streaming replica or base backup for as long as those keep them;
    /// - on a replica, the same as here once it has replayed the vacuum;
    /// - the dead row version itself when a transaction older than the deletion was still
    ///   open after the wait (a long report, `pg_dump`, a standby with
    ///   `hot_standby_feedback`), or was invisible to this user in `pg_stat_activity`:
    ///   that transaction can still read the key, and the next vacuum after it ends
    ///   removes it (autovacuum, the next erasure, or the next vault bound to the schema).
    ///   This is logged as a warning.
    ///
    /// A crash between the commit and the `VACUUM` leaves the dead version until autovacuum
    /// or the next [`VaultStore::bind`], which vacuums the table.
    fn destroy_key(&self, person: PersonId) -> Result<bool, VaultError> {
        let location = self.location();
        self.run(
            || format!("destroying the key of person {person}"),
            move |database, sql| async move {
                let mut client = connection(&database).await?;
                let transaction = client.transaction().await?;
                transaction
                    .execute(&sql.lock, &[&sql.person_lock(person)])
                    .await?;
                let statement = transaction.prepare_cached(&sql.delete_key).await?;
                let deleted = transaction
                    .execute(&statement, &[&person.to_string()])
                    .await?
                    > 0;
                if !deleted {
                    transaction.commit().await?;
                    return Ok(false);
                }
                let row = transaction.query_one(&sql.current_xid, &[]).await?;
                let deleted_by = low_32_bits(&location, column(&row, 0)?)?;
                transaction.commit().await?;
                if !wait_for_older_snapshots(&client, &sql, &deleted_by).await? {
                    tracing::warn!(
                        store = %location,
                        %person,
                        "a transaction older than the erasure of this person's key is still open after {} s: \
                         the key's deleted row version stays readable to it, and in the table, until \
                         the next vacuum after it ends",
                        OLDER_SNAPSHOTS_WAIT.as_secs()
                    );
                }
                // Outside any transaction: VACUUM refuses to run inside one.
                client.batch_execute(&sql.vacuum_keys).await?;
                Ok(true)
            },
        )
    }

    fn find_by_phone_tag(
        &self,
        tag: &[u8; WrappedKey::PHONE_TAG_LEN],
    ) -> Result<Vec<PersonId>, VaultError> {
        let tag = *tag;
        let location = self.location();
        self.run(
            || "searching keys by phone tag".to_owned(),
            move |database, sql| async move {
                let client = connection(&database).await?;
                let statement = client.prepare_cached(&sql.find_by_tag).await?;
                let rows = client.query(&statement, &[&tag.as_slice()]).await?;
                rows.iter()
                    .map(|row| parse_person(&location, column(row, 0)?))
                    .collect()
            },
        )
    }

    fn key_count(&self) -> Result<usize, VaultError> {
        let path = self.path();
        self.run(
            || "counting keys".to_owned(),
            move |database, sql| async move {
                let client = connection(&database).await?;
                let row = client.query_one(&sql.key_count, &[]).await?;
                let count: i64 = column(&row, 0)?;
                usize::try_from(count).map_err(|_| {
                    Failure::Refused(VaultError::Storage {
                        path,
                        reason: format!("the server counted {count} keys"),
                    })
                })
            },
        )
    }

    fn record(&self, person: PersonId) -> Result<Option<Vec<u8>>, VaultError> {
        self.run(
            || format!("reading the record of person {person}"),
            move |database, sql| async move {
                let client = connection(&database).await?;
                let statement = client.prepare_cached(&sql.record).await?;
                match client.query_opt(&statement, &[&person.to_string()]).await? {
                    Some(row) => Ok(Some(column(&row, 0)?)),
                    None => Ok(None),
                }
            },
        )
    }

    /// Upserts the record in a transaction holding the person's advisory lock, refusing
    /// ([`VaultError::Erased`]) when the person is marked erased.
    fn put_record(&self, person: PersonId, record: &[u8]) -> Result<(), VaultError> {
        let record = record.to_vec();
        self.run(
            || format!("storing the record of person {person}"),
            move |database, sql| async move {
                let mut client = connection(&database).await?;
                let transaction = client.transaction().await?;
                lock_person_unless_erased(&transaction, &sql, person).await?;
                let statement = transaction.prepare_cached(&sql.upsert_record).await?;
                transaction
                    .execute(&statement, &[&person.to_string(), &record])
                    .await?;
                transaction.commit().await?;
                Ok(())
            },
        )
    }

    fn has_record(&self, person: PersonId) -> Result<bool, VaultError> {
        self.exists(&self.sql.has_record, person, "looking for the record")
    }

    /// Inserts the marker and deletes the record in one transaction holding the person's
    /// advisory lock.
    fn mark_erased(&self, person: PersonId) -> Result<(), VaultError> {
        self.run(
            || format!("marking person {person} erased"),
            move |database, sql| async move {
                let mut client = connection(&database).await?;
                let transaction = client.transaction().await?;
                transaction
                    .execute(&sql.lock, &[&sql.person_lock(person)])
                    .await?;
                let id = person.to_string();
                let insert = transaction.prepare_cached(&sql.insert_erased).await?;
                transaction.execute(&insert, &[&id]).await?;
                let delete = transaction.prepare_cached(&sql.delete_record).await?;
                transaction.execute(&delete, &[&id]).await?;
                transaction.commit().await?;
                Ok(())
            },
        )
    }

    fn is_erased(&self, person: PersonId) -> Result<bool, VaultError> {
        self.exists(
            &self.sql.is_erased,
            person,
            "looking for the erasure marker",
        )
    }

    fn erased(&self) -> Result<Vec<PersonId>, VaultError> {
        let location = self.location();
        self.run(
            || "listing erased people".to_owned(),
            move |database, sql| async move {
                let client = connection(&database).await?;
                let rows = client.query(&sql.erased, &[]).await?;
                rows.iter()
                    .map(|row| parse_person(&location, column(row, 0)?))
                    .collect()
            },
        )
    }

    fn holds_people(&self) -> Result<bool, VaultError> {
        self.run(
            || "looking for records and erasure markers".to_owned(),
            move |database, sql| async move {
                let client = connection(&database).await?;
                let row = client.query_one(&sql.holds_people, &[]).await?;
                column(&row, 0)
            },
        )
    }

    /// Every change was committed when it returned; this asks the server for one answer,
    /// so that closing the vault reports a database that no longer answers.
    fn sync(&self) -> Result<(), VaultError> {
        self.run(
            || "checking that the database answers".to_owned(),
            move |database, _sql| async move {
                let client = connection(&database).await?;
                client.simple_query("SELECT 1").await?;
                Ok(())
            },
        )
    }

    /// Every change is one transaction: a write that failed (the database unreachable for a
    /// moment) left nothing half-done, so the vault goes on once the database is back.
    fn survives_failed_writes(&self) -> bool {
        true
    }
}

impl PgVaultStore {
    /// Runs an `EXISTS` query about one person.
    fn exists(
        &self,
        query: &str,
        person: PersonId,
        doing: &'static str,
    ) -> Result<bool, VaultError> {
        let query = query.to_owned();
        self.run(
            || format!("{doing} of person {person}"),
            move |database, _sql| async move {
                let client = connection(&database).await?;
                let statement = client.prepare_cached(&query).await?;
                let row = client.query_one(&statement, &[&person.to_string()]).await?;
                column(&row, 0)
            },
        )
    }
}

/// How long [`PgVaultStore::destroy_key`] waits for transactions older than a key's deletion
/// to end before vacuuming. Service transactions last milliseconds; a report or a dump may
/// last longer than an erasure should wait.
const OLDER_SNAPSHOTS_WAIT: Duration = Duration::from_secs(10);

/// Between two looks at the transactions still open.
const OLDER_SNAPSHOTS_POLL: Duration = Duration::from_millis(20);

/// Waits until nothing could still see a row version deleted by transaction `deleted_by`
/// (a 32-bit transaction id, as text): `true`, or `false` after [`OLDER_SNAPSHOTS_WAIT`].
async fn wait_for_older_snapshots(
    client: &deadpool_postgres::Object,
    sql: &Statements,
    deleted_by: &str,
) -> Outcome<bool> {
    let deadline = tokio::time::Instant::now() + OLDER_SNAPSHOTS_WAIT;
    let statement = client.prepare_cached(&sql.older_snapshots).await?;
    loop {
        let row = client.query_one(&statement, &[&deleted_by]).await?;
        let blocked: bool = column(&row, 0)?;
        if !blocked {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(OLDER_SNAPSHOTS_POLL).await;
    }
}

/// The 32-bit transaction id (`xid`, what `pg_stat_activity` shows) of a 64-bit one
/// (`pg_current_xact_id()`, epoch and id), as text.
fn low_32_bits(location: &str, full: String) -> Outcome<String> {
    let full: u64 = full.parse().map_err(|_| {
        Failure::Refused(VaultError::Storage {
            path: PathBuf::from(location),
            reason: format!("the server returned {full:?} as a transaction id"),
        })
    })?;
    Ok((full & 0xFFFF_FFFF).to_string())
}

/// Takes the person's advisory lock for the rest of `transaction`, then refuses
/// ([`VaultError::Erased`]) when they are marked erased. Under the lock, no erasure can
/// commit between this check and the transaction's commit.
async fn lock_person_unless_erased(
    transaction: &deadpool_postgres::Transaction<'_>,
    sql: &Statements,
    person: PersonId,
) -> Outcome<()> {
    transaction
        .execute(&sql.lock, &[&sql.person_lock(person)])
        .await?;
    let statement = transaction.prepare_cached(&sql.is_erased).await?;
    let row = transaction
        .query_one(&statement, &[&person.to_string()])
        .await?;
    let erased: bool = column(&row, 0)?;
    if erased {
        return Err(Failure::Refused(VaultError::Erased { person }));
    }
    Ok(())
}
