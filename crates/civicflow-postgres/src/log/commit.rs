//! Group commit on PostgreSQL.
//!
//! Appends are prepared (validated, encoded) on the caller's thread and queued to the
//! process's one committer task, which takes every append waiting and commits them as one
//! group in one transaction. The rules of a group (idempotent replays, expected versions,
//! positions, versions, hashes) are the core's `GroupPlan`, the same as on sled.
//!
//! What orders commits is the one `log_head` row: the group's write statement updates it
//! first, conditionally on the head the group was planned on (`WHERE position = planned`),
//! and inserts the events and idempotency records only if that update took. The row lock is
//! held until COMMIT, so no other transaction can take positions until this one committed or
//! rolled back, and a transaction planned on a head that moved meanwhile writes nothing.
//! Positions therefore follow commit order, without gaps: a reader can never see N+1 before
//! N (docs/design.md, "Positions on a shared database").
//!
//! Two ways to plan a group:
//! - **On what the process knows** (the usual case): the head and the stream heads of its own
//!   last commit, plus one lookup (one statement, one snapshot) of the streams and keys it
//!   does not know; then one round trip `BEGIN; write; COMMIT`. If another instance committed
//!   meanwhile, the write finds the head moved and writes nothing.
//! - **Under the lock**: `BEGIN; SELECT … FROM log_head FOR UPDATE`, the lookup, the plan, the
//!   write and `COMMIT`. Taken when the head moved; it always succeeds, so two instances
//!   racing never starve each other.
//!
//! An append is answered only after COMMIT returned. A connection lost mid-commit leaves the
//! outcome unknown: the group is answered [`AppendError::Unavailable`], the process forgets
//! what it knew, and the next group starts from what the database holds; a keyed retry finds
//! its idempotency record or writes once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use civicflow_core::backend::{GroupPlan, GroupSink, GroupSource, PreparedAppend, StreamHead};
use civicflow_core::{
    AppendError, AppendResult, Appended, ChainHash, ChainHead, Completer, Completion,
    IdempotencyKey, Position, ReadError, StreamId, Timestamp, Version,
};
use tokio::sync::{mpsc, Mutex};
use tokio_postgres::{Client, Statement};

use super::read::{head_of_row, version_of};
use super::{hash_of, position_of, sql_int, Shared};
use crate::database::{describe, Database};

/// The most appends one group carries (a bigger queue is committed in several groups).
const GROUP_APPENDS_MAX: usize = 2048;

/// The stream heads the committer remembers between groups; cleared when it grows past this.
const STREAM_CACHE_MAX: usize = 100_000;

/// Whether a commit group notifies: only when another process listens (see
/// `Shared::others_listening`).
fn notify(shared: &Shared) -> bool {
    shared.others_listening.load(Ordering::Relaxed)
}

/// The `application_name` of a store's listening connections, by which each instance finds
/// the others in `pg_stat_activity` (at most 63 bytes: schema names are at most 48).
pub(crate) fn listener_name(schema: &str) -> String {
    format!("cf-listen:{schema}")
}

/// The notification channel of a schema's log.
pub(crate) fn channel(schema: &str) -> String {
    format!("civicflow_log_{schema}")
}

struct Pending {
    append: PreparedAppend,
    reply: Completer<AppendResult>,
}

enum Message {
    Append(Pending),
    Close(Completer<()>),
}

/// The queue to the committer task; dropping it (with the last log handle) ends the task.
pub(crate) struct CommitterHandle {
    queue: mpsc::UnboundedSender<Message>,
    pub(crate) committer: Arc<Mutex<Committer>>,
}

/// The committer's state: its own connection, and what it knows of the log since its last
/// commit (valid only while nobody else committed).
pub(crate) struct Committer {
    db: Database,
    connection: Option<Connection>,
    known: Option<Known>,
}

struct Connection {
    client: Client,
    /// The write of a group of one event and no idempotency key: scalar parameters, which
    /// the server binds and plans for less than arrays of one.
    write_one: Statement,
    lookup: Statement,
    write: Statement,
    lock_head: Statement,
}

/// The log as this process's last commit (or lookup) left it.
#[derive(Clone)]
struct Known {
    head: Option<ChainHead>,
    recorded_at: Timestamp,
    streams: HashMap<StreamId, StreamHead>,
}

impl CommitterHandle {
    pub(crate) fn start(
        db: &Database,
        shared: Weak<Shared>,
        head: Option<ChainHead>,
        recorded_at: Timestamp,
    ) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let committer = Arc::new(Mutex::new(Committer {
            db: db.clone(),
            connection: None,
            known: Some(Known {
                head,
                recorded_at,
                streams: HashMap::new(),
            }),
        }));
        db.spawn(run(receiver, committer.clone(), shared));
        Self { queue, committer }
    }

    pub(crate) fn submit(&self, append: PreparedAppend) -> Completion<AppendResult> {
        let (completion, reply) = Completion::new();
        if let Err(mpsc::error::SendError(Message::Append(pending))) =
            self.queue.send(Message::Append(Pending { append, reply }))
        {
            pending.reply.complete(Err(AppendError::Closed));
        }
        completion
    }

    /// Waits until everything queued before was committed and answered; later appends are
    /// answered `Closed`.
    pub(crate) fn close(&self) {
        let (completion, reply) = Completion::new();
        if self.queue.send(Message::Close(reply)).is_ok() {
            completion.wait();
        }
    }
}

async fn run(
    mut receiver: mpsc::UnboundedReceiver<Message>,
    committer: Arc<Mutex<Committer>>,
    shared: Weak<Shared>,
) {
    let mut closing: Option<Completer<()>> = None;
    while let Some(first) = receiver.recv().await {
        let mut group = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Append(pending) if closing.is_some() => {
                    pending.reply.complete(Err(AppendError::Closed));
                }
                Message::Append(pending) => group.push(pending),
                Message::Close(reply) => closing = Some(reply),
            }
            if group.len() < GROUP_APPENDS_MAX {
                next = receiver.try_recv().ok();
            }
        }
        if !group.is_empty() {
            let Some(shared) = shared.upgrade() else {
                answer_all(group, &AppendError::Closed);
                break;
            };
            committer.lock().await.commit(group, &shared).await;
        }
        if let Some(reply) = closing.take() {
            // Whatever was queued behind the close is refused.
            receiver.close();
            while let Ok(message) = receiver.try_recv() {
                match message {
                    Message::Append(pending) => pending.reply.complete(Err(AppendError::Closed)),
                    Message::Close(reply) => reply.complete(()),
                }
            }
            reply.complete(());
            break;
        }
    }
}

fn answer_all(group: Vec<Pending>, error: &AppendError) {
    for pending in group {
        pending.reply.complete(Err(error.clone()));
    }
}

/// The group's writes, as the write statement's array parameters.
#[derive(Default)]
struct Writes {
    positions: Vec<i64>,
    streams: Vec<String>,
    versions: Vec<i64>,
    hashes: Vec<Vec<u8>>,
    records: Vec<Vec<u8>>,
    keys: Vec<String>,
    key_last: Vec<i64>,
    key_records: Vec<Vec<u8>>,
}

impl GroupSink for Writes {
    fn record(
        &mut self,
        stream: &StreamId,
        version: Version,
        position: Position,
        hash: &ChainHash,
        record: Vec<u8>,
    ) {
        self.positions.push(sql_int(position.get()));
        self.streams.push(stream.as_str().to_owned());
        self.versions.push(sql_int(version.get()));
        self.hashes.push(hash.as_bytes().to_vec());
        self.records.push(record);
    }

    fn idempotency(&mut self, key: &IdempotencyKey, last_position: Position, record: Vec<u8>) {
        self.keys.push(key.as_str().to_owned());
        self.key_last.push(sql_int(last_position.get()));
        self.key_records.push(record);
    }
}

/// What a group is planned on: every stream and key it names, looked up or known.
struct View {
    streams: HashMap<StreamId, Option<StreamHead>>,
    keys: HashMap<IdempotencyKey, ([u8; 32], Appended)>,
}

impl GroupSource for View {
    fn stream_head(&mut self, stream: &StreamId) -> Result<Option<StreamHead>, AppendError> {
        match self.streams.get(stream) {
            Some(head) => Ok(*head),
            // Every stream of the group is looked up before planning; this is a bug, and
            // refusing the append is the safe answer.
            None => Err(AppendError::Unavailable {
                reason: format!("stream {stream} was not looked up before planning"),
            }),
        }
    }

    fn idempotency(
        &mut self,
        key: &IdempotencyKey,
    ) -> Result<Option<([u8; 32], Appended)>, ReadError> {
        Ok(self.keys.get(key).cloned())
    }
}

/// What one lookup statement found, in one snapshot.
struct Found {
    head: Option<ChainHead>,
    recorded_at: Timestamp,
    streams: HashMap<StreamId, StreamHead>,
    keys: HashMap<IdempotencyKey, ([u8; 32], Appended)>,
}

/// A planned group, ready to write.
struct Planned {
    answers: Vec<AppendResult>,
    writes: Writes,
    head: Option<ChainHead>,
    recorded_at: Timestamp,
    stream_heads: Vec<(StreamId, StreamHead)>,
    events: u64,
}

impl Committer {
    /// Commits one group and answers every append of it.
    async fn commit(&mut self, group: Vec<Pending>, shared: &Shared) {
        let appends: Vec<&PreparedAppend> = group.iter().map(|p| &p.append).collect();
        match self.commit_group(&appends, shared).await {
            Ok(planned) => {
                if planned.events > 0 {
                    let stats = &shared.stats;
                    stats.groups.fetch_add(1, Ordering::Relaxed);
                    stats
                        .appends
                        .fetch_add(group.len() as u64, Ordering::Relaxed);
                    stats.events.fetch_add(planned.events, Ordering::Relaxed);
                    stats
                        .largest
                        .fetch_max(group.len() as u64, Ordering::Relaxed);
                }
                if let Some(head) = planned.head {
                    shared.learn_head(head);
                }
                for (pending, answer) in group.into_iter().zip(planned.answers) {
                    pending.reply.complete(answer);
                }
            }
            Err(reason) => {
                // The outcome may be unknown: forget the connection and what we knew.
                tracing::warn!(%reason, "a commit group failed");
                self.connection = None;
                self.known = None;
                answer_all(group, &AppendError::Unavailable { reason });
            }
        }
    }

    async fn commit_group(
        &mut self,
        group: &[&PreparedAppend],
        shared: &Shared,
    ) -> Result<Planned, String> {
        // A connection that died while idle (the server restarted, a proxy's timeout) is
        // replaced before the group is sent, rather than failing the group.
        if self
            .connection
            .as_ref()
            .is_some_and(|c| c.client.is_closed())
        {
            self.connection = None;
            self.known = None;
        }
        if self.connection.is_none() {
            self.connection = Some(connect(&self.db).await?);
        }
        let connection = self.connection.as_ref().expect("connected above");
        let streams: Vec<StreamId> = unique(group.iter().flat_map(|a| a.streams()));
        let keys: Vec<IdempotencyKey> = unique(group.iter().filter_map(|a| a.idempotency_key()));
        let now = shared.clock.now();

        // 1. On what this process knows, when nobody else committed since. When the follower
        // has already seen another instance's commit, the attempt could only fail: forget.
        if let Some(known) = &self.known {
            let seen = shared.known_head().map(|h| h.position);
            if seen > known.head.map(|h| h.position) {
                self.known = None;
            }
        }
        if let Some(known) = self.known.take() {
            let unknown: Vec<StreamId> = streams
                .iter()
                .filter(|s| !known.streams.contains_key(*s))
                .cloned()
                .collect();
            let mut view = View {
                streams: HashMap::new(),
                keys: HashMap::new(),
            };
            let looked_up = !(unknown.is_empty() && keys.is_empty());
            let still_current = if !looked_up {
                true
            } else {
                let found = lookup(&self.db, connection, &unknown, &keys).await?;
                if found.head == known.head {
                    view.keys = found.keys;
                    for stream in &unknown {
                        view.streams
                            .insert(stream.clone(), found.streams.get(stream).copied());
                    }
                    true
                } else {
                    false
                }
            };
            if still_current {
                for stream in &streams {
                    if let Some(head) = known.streams.get(stream) {
                        view.streams.insert(stream.clone(), Some(*head));
                    }
                }
                let planned = plan(group, view, known.head, known.recorded_at, now);
                if planned.events == 0 && looked_up {
                    // Conflicts and replays as of a snapshot whose head was the one known.
                    self.known = Some(known);
                    return Ok(planned);
                }
                // A group that writes nothing on what this process merely remembers: nothing
                // would check that memory (another instance may have moved the streams), so
                // it is decided again under the lock, where the answers are current.
                let moved = planned.events > 0
                    && write(
                        &self.db,
                        connection,
                        &planned,
                        known.head,
                        false,
                        notify(shared),
                    )
                    .await?;
                if moved {
                    self.remember(known, &planned);
                    return Ok(planned);
                }
                // Another instance committed first: nothing was written; plan again under
                // the lock.
            }
        }

        // 2. Under the head row's lock.
        let planned = locked(
            &self.db,
            connection,
            group,
            &streams,
            &keys,
            now,
            notify(shared),
        )
        .await?;
        self.remember(
            Known {
                head: None,
                recorded_at: Timestamp::EPOCH,
                streams: HashMap::new(),
            },
            &planned,
        );
        Ok(planned)
    }

    /// After a commit (or a lookup under the lock): the head and the stream heads as the
    /// group left them.
    fn remember(&mut self, mut known: Known, planned: &Planned) {
        known.head = planned.head;
        known.recorded_at = planned.recorded_at;
        if known.streams.len() + planned.stream_heads.len() > STREAM_CACHE_MAX {
            known.streams.clear();
        }
        known.streams.extend(planned.stream_heads.iter().cloned());
        self.known = Some(known);
    }

    /// Forgets what the process knew (a restore replaced the log).
    pub(crate) fn forget(&mut self) {
        self.known = None;
    }
}

fn unique<'a, T: Clone + Eq + std::hash::Hash + 'a>(items: impl Iterator<Item = &'a T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(*i)).cloned().collect()
}

fn plan(
    group: &[&PreparedAppend],
    mut view: View,
    head: Option<ChainHead>,
    last_recorded_at: Timestamp,
    now: Timestamp,
) -> Planned {
    let recorded_at = now.max(last_recorded_at);
    let mut plan = GroupPlan::new(head, recorded_at);
    let mut writes = Writes::default();
    let answers = group
        .iter()
        .map(|append| plan.plan_append(append, &mut view, &mut writes))
        .collect();
    // The streams the group left as they were are known too (looked up in this snapshot).
    let mut stream_heads: HashMap<StreamId, StreamHead> = view
        .streams
        .into_iter()
        .filter_map(|(stream, head)| head.map(|h| (stream, h)))
        .collect();
    for (stream, head) in plan.stream_heads() {
        stream_heads.insert(stream.clone(), *head);
    }
    Planned {
        answers,
        events: plan.events(),
        head: if plan.writes() { plan.head() } else { head },
        recorded_at: if plan.writes() {
            recorded_at
        } else {
            last_recorded_at
        },
        stream_heads: stream_heads.into_iter().collect(),
        writes,
    }
}

/// Plans and writes a group holding the head row's lock: always succeeds unless the
/// connection or the server fails.
async fn locked(
    db: &Database,
    connection: &Connection,
    group: &[&PreparedAppend],
    streams: &[StreamId],
    keys: &[IdempotencyKey],
    now: Timestamp,
    notify: bool,
) -> Result<Planned, String> {
    let client = &connection.client;
    let failed = |e: tokio_postgres::Error| format!("{}: {}", db.location(), describe(&e));
    let result = async {
        // One round trip: the lock, then the lookup. The server runs them in order, so the
        // lookup's snapshot is taken once the lock is held, after every earlier commit.
        let (_, _, found) = tokio::try_join!(
            async { client.batch_execute("BEGIN").await.map_err(failed) },
            async {
                client
                    .query_one(&connection.lock_head, &[])
                    .await
                    .map_err(failed)
            },
            lookup(db, connection, streams, keys),
        )?;
        let (head, recorded_at) = (found.head, found.recorded_at);
        let view = View {
            streams: streams
                .iter()
                .map(|s| (s.clone(), found.streams.get(s).copied()))
                .collect(),
            keys: found.keys,
        };
        let planned = plan(group, view, head, recorded_at, now);
        if planned.events == 0 {
            client.batch_execute("COMMIT").await.map_err(failed)?;
            return Ok(planned);
        }
        let moved = write(db, connection, &planned, head, true, notify).await?;
        if moved {
            Ok(planned)
        } else {
            Err(format!(
                "{}: the log's head moved while this process held its lock",
                db.location()
            ))
        }
    }
    .await;
    if result.is_err() {
        // Ends the transaction if the connection is still there (the caller drops it anyway).
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

/// Reads, in one snapshot, the head, the newest event of each of `streams`, and the stored
/// records of `keys`.
async fn lookup(
    db: &Database,
    connection: &Connection,
    streams: &[StreamId],
    keys: &[IdempotencyKey],
) -> Result<Found, String> {
    let stream_names: Vec<&str> = streams.iter().map(StreamId::as_str).collect();
    let key_names: Vec<&str> = keys.iter().map(IdempotencyKey::as_str).collect();
    let rows = connection
        .client
        .query(&connection.lookup, &[&stream_names, &key_names])
        .await
        .map_err(|e| format!("{}: {}", db.location(), describe(&e)))?;
    let mut found = Found {
        head: None,
        recorded_at: Timestamp::EPOCH,
        streams: HashMap::new(),
        keys: HashMap::new(),
    };
    let bad = |e: ReadError| e.to_string();
    for row in rows {
        let kind: i32 = row.get(0);
        match kind {
            0 => {
                let stored = head_of_row(row.get(2), row.get(3), row.get(4)).map_err(bad)?;
                found.head = stored.map(|(h, _)| h);
                found.recorded_at = stored.map_or(Timestamp::EPOCH, |(_, at)| at);
            }
            1 => {
                let name: &str = row.get(1);
                let stream = StreamId::new(name).map_err(|e| e.to_string())?;
                let position = position_of(row.get(4)).map_err(bad)?;
                found.streams.insert(
                    stream,
                    StreamHead {
                        version: version_of(row.get(2)).map_err(bad)?,
                        hash: hash_of(row.get(3), position).map_err(bad)?,
                    },
                );
            }
            _ => {
                let name: &str = row.get(1);
                let key = IdempotencyKey::new(name).map_err(|e| e.to_string())?;
                let record: &[u8] = row.get(5);
                let decoded =
                    civicflow_core::backend::decode_idempotency(&key, record).map_err(bad)?;
                found.keys.insert(key, decoded);
            }
        }
    }
    Ok(found)
}

/// Writes a planned group conditionally on the head it was planned on, in one round trip
/// (`BEGIN; write; COMMIT`, pipelined; without the `BEGIN` when the locked path `begun` the
/// transaction already). Returns whether the head moved, that is whether the group was
/// written; either way the transaction is over when this returns.
async fn write(
    db: &Database,
    connection: &Connection,
    planned: &Planned,
    planned_on: Option<ChainHead>,
    begun: bool,
    notify: bool,
) -> Result<bool, String> {
    let new_head = planned.head.expect("a group that writes has a head");
    let client = &connection.client;
    let w = &planned.writes;
    let hash = new_head.hash.as_bytes().as_slice();
    let planned_position = sql_int(planned_on.map_or(0, |h| h.position.get()));
    let channel = channel(db.schema());
    let new_position = sql_int(new_head.position.get());
    let recorded_at = planned.recorded_at.as_unix_micros();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 14] = [
        &new_position,
        &hash,
        &recorded_at,
        &planned_position,
        &w.positions,
        &w.streams,
        &w.versions,
        &w.hashes,
        &w.records,
        &w.keys,
        &w.key_last,
        &w.key_records,
        &channel,
        &notify,
    ];
    let begin = async {
        if begun {
            Ok(())
        } else {
            client.batch_execute("BEGIN").await
        }
    };
    let one = w.positions.len() == 1 && w.keys.is_empty();
    let one_params: [&(dyn tokio_postgres::types::ToSql + Sync); 11];
    let (statement, params): (&Statement, &[&(dyn tokio_postgres::types::ToSql + Sync)]) = if one {
        one_params = [
            &new_position,
            &hash,
            &recorded_at,
            &planned_position,
            &w.positions[0],
            &w.streams[0],
            &w.versions[0],
            &w.hashes[0],
            &w.records[0],
            &channel,
            &notify,
        ];
        (&connection.write_one, &one_params)
    } else {
        (&connection.write, &params)
    };
    let result = tokio::try_join!(
        begin,
        client.query(statement, params),
        client.batch_execute("COMMIT"),
    );
    match result {
        Ok((_, rows, _)) => Ok(!rows.is_empty()),
        Err(e) => Err(format!("{}: {}", db.location(), describe(&e))),
    }
}

/// A group's write statement: the head row updated on condition ($1-$4), `inserts` only if
/// that took, and the notification (channel and whether to notify at `$notify`, `$notify+1`).
fn write_sql(head: &str, inserts: &str, notify: usize) -> String {
    format!(
        "WITH head AS (
            UPDATE {head} SET position = $1, hash = $2, recorded_at = $3
             WHERE position = $4 RETURNING position
         ), ev AS (
            {inserts}
         ), notified AS (
            SELECT pg_notify(${notify}::text, position::text || ':' || encode($2::bytea, 'hex'))
              FROM head WHERE ${}::bool
         )
         SELECT position FROM head WHERE (SELECT count(*) FROM notified) >= 0",
        notify + 1
    )
}

/// The committer's own connection, with its statements prepared.
async fn connect(db: &Database) -> Result<Connection, String> {
    let (client, connection) = db.dedicated().await?;
    db.spawn(async move {
        let _ = connection.await;
    });
    let failed = |e: tokio_postgres::Error| format!("{}: {}", db.location(), describe(&e));
    let head = db.table("log_head");
    let events = db.table("events");
    let idempotency = db.table("idempotency");
    let lookup = client
        .prepare(&format!(
            "SELECT 0::int4, NULL::text, h.position, h.hash, h.recorded_at, NULL::bytea FROM {head} h
             UNION ALL
             SELECT 1, s.name, e.version, e.hash, e.position, NULL
               FROM unnest($1::text[]) AS s(name)
               JOIN LATERAL (SELECT version, hash, position FROM {events}
                              WHERE stream = s.name ORDER BY version DESC LIMIT 1) e ON true
             UNION ALL
             SELECT 2, key, NULL, NULL, NULL, record FROM {idempotency} WHERE key = ANY($2::text[])"
        ))
        .await
        .map_err(failed)?;
    // A group's rows as arrays ($5-$9, keys $10-$12), or one event as scalars ($5-$9).
    let write = client
        .prepare(&write_sql(
            &head,
            &format!(
                "INSERT INTO {events} (position, stream, version, hash, record)
                 SELECT p, s, v, h, r
                   FROM unnest($5::int8[], $6::text[], $7::int8[], $8::bytea[], $9::bytea[])
                        AS t(p, s, v, h, r)
                  WHERE EXISTS (SELECT 1 FROM head)
             ), idem AS (
                INSERT INTO {idempotency} (key, last_position, record)
                SELECT k, l, r FROM unnest($10::text[], $11::int8[], $12::bytea[]) AS t(k, l, r)
                 WHERE EXISTS (SELECT 1 FROM head)"
            ),
            13,
        ))
        .await
        .map_err(failed)?;
    let write_one = client
        .prepare(&write_sql(
            &head,
            &format!(
                "INSERT INTO {events} (position, stream, version, hash, record)
                 SELECT $5::int8, $6::text, $7::int8, $8::bytea, $9::bytea
                  WHERE EXISTS (SELECT 1 FROM head)"
            ),
            10,
        ))
        .await
        .map_err(failed)?;
    let lock_head = client
        .prepare(&format!(
            "SELECT position, hash, recorded_at FROM {head} FOR UPDATE"
        ))
        .await
        .map_err(failed)?;
    Ok(Connection {
        client,
        write_one,
        lookup,
        write,
        lock_head,
    })
}
