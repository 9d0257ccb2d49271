//! The store's tables, created on first use, and the schema version that refuses a store made
//! by a newer civicflow. `docs/postgres.md` shows the same schema with what each column is for.

use tokio_postgres::Client;

use crate::database::{classify, ConnectError, StoreUrl};

/// The schema version this binary writes and reads. A store with a higher one is refused.
pub const SCHEMA_VERSION: i32 = 1;

/// The tables, in the order they are created; `{s}` is the quoted schema name.
///
/// - `meta`: the schema version (and room for later settings).
/// - `log_head`: exactly one row, the newest event's position, chain hash and recorded time.
///   Every append transaction updates it first and holds its lock until COMMIT: that lock is
///   what orders commits, and positions are taken under it (docs/design.md, "Positions on a
///   shared database").
/// - `events`: the record bytes and chain hash of each event, exactly as sled keeps them, with
///   the stream and version beside them for the stream index (`unique (stream, version)`).
///   Text columns compare bytes (`COLLATE "C"`): the order sled keeps, whatever the database's
///   default collation.
/// - `idempotency`: a keyed append's stored result (the same bytes as on sled).
/// - `vault_*`: the vault's check value, wrapped keys with phone tags, ciphertext records and
///   erasure markers (see `PgVaultStore`).
const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {s}.meta (
        key text PRIMARY KEY,
        value text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.log_head (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        position bigint NOT NULL,
        hash bytea NOT NULL,
        recorded_at bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.events (
        position bigint PRIMARY KEY,
        stream text COLLATE \"C\" NOT NULL,
        version bigint NOT NULL,
        hash bytea NOT NULL,
        record bytea NOT NULL,
        UNIQUE (stream, version))",
    "CREATE TABLE IF NOT EXISTS {s}.idempotency (
        key text COLLATE \"C\" PRIMARY KEY,
        last_position bigint NOT NULL,
        record bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.vault_check (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        check_value bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.vault_keys (
        person uuid PRIMARY KEY,
        nonce bytea NOT NULL,
        wrapped bytea NOT NULL,
        phone_tag bytea)",
    "CREATE INDEX IF NOT EXISTS vault_keys_phone_tag ON {s}.vault_keys (phone_tag)
        WHERE phone_tag IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS {s}.vault_records (
        person uuid PRIMARY KEY,
        record bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.vault_erased (
        person uuid PRIMARY KEY)",
];

/// Creates what is missing and checks the version, in one transaction under an advisory lock
/// (two instances starting at once on an empty database create the tables once).
pub(crate) async fn ensure(client: &Client, url: &StoreUrl) -> Result<(), ConnectError> {
    let schema = url.schema();
    let location = url.location();
    let fail = |e: tokio_postgres::Error| classify(location, schema, &e);
    let quoted = format!("\"{schema}\"");
    // Only the lock needs a transaction; DDL in PostgreSQL is transactional, so a failure
    // leaves nothing half-made.
    client.batch_execute("BEGIN").await.map_err(fail)?;
    let result = async {
        client
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('civicflow schema ' || $1, 0))",
                &[&schema],
            )
            .await?;
        let exists = client
            .query_opt(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'meta'",
                &[&schema],
            )
            .await?
            .is_some();
        if exists {
            let row = client
                .query_opt(
                    &format!("SELECT value FROM {quoted}.meta WHERE key = 'schema_version'"),
                    &[],
                )
                .await?;
            if let Some(row) = row {
                let text: String = row.get(0);
                let found: i32 = text.parse().unwrap_or(i32::MAX);
                if found > SCHEMA_VERSION {
                    return Ok(Err(ConnectError::NewerSchema {
                        location: location.to_owned(),
                        found,
                        known: SCHEMA_VERSION,
                    }));
                }
            }
        } else {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
                .await?;
        }
        for table in TABLES {
            client.batch_execute(&table.replace("{s}", &quoted)).await?;
        }
        client
            .execute(
                &format!(
                    "INSERT INTO {quoted}.meta (key, value) VALUES ('schema_version', $1)
                     ON CONFLICT (key) DO NOTHING"
                ),
                &[&SCHEMA_VERSION.to_string()],
            )
            .await?;
        client
            .execute(
                &format!(
                    "INSERT INTO {quoted}.log_head (one, position, hash, recorded_at)
                     VALUES (true, 0, $1, 0) ON CONFLICT (one) DO NOTHING"
                ),
                &[&civicflow_core::ChainHash::GENESIS.as_bytes().as_slice()],
            )
            .await?;
        Ok::<_, tokio_postgres::Error>(Ok(()))
    }
    .await;
    match result {
        Ok(Ok(())) => {
            client.batch_execute("COMMIT").await.map_err(fail)?;
            Ok(())
        }
        Ok(Err(refusal)) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(refusal)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(fail(e))
        }
    }
}
