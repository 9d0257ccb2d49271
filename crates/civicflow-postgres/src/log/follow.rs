//! Learning other instances' commits: `LISTEN` on the log's channel (every commit group
//! notifies it in its own transaction, so the notification is delivered only once the group
//! committed), and a poll of the head row every [`POLL`] whatever happens. A notification
//! only wakes the follower early: a missed one (a dropped connection, a full queue) delays a
//! subscriber by at most one poll, never loses an event, because subscribers read
//! `position > checkpoint` from the table, where positions follow commit order.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use civicflow_core::{ChainHash, ChainHead, Position};
use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use super::read::stored_head;
use super::Shared;

/// How often the head row is read when no notification came.
const POLL: Duration = Duration::from_millis(250);

/// How often the follower looks whether other processes listen (see `others_listening`).
const COUNT_LISTENERS: Duration = Duration::from_secs(1);

/// How long to wait before listening again after the connection was lost.
const RECONNECT: Duration = Duration::from_millis(500);

/// Starts the follower on the driver's runtime. It ends when the log's last handle is gone.
pub(super) fn start(shared: &Arc<Shared>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(shared);
    shared.db.spawn(follow(weak))
}

/// Whether a process other than this one's listener listens for the store's commits
/// (`application_name` is shown to every user in `pg_stat_activity`). When the question
/// fails, assume so: a notification too many costs little, one too few delays another
/// instance by one poll.
async fn others_listening(db: &crate::Database, name: &str, own_pid: i32) -> bool {
    let Ok(client) = db.client().await else {
        return true;
    };
    let counted = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = $1 AND pid <> $2",
            &[&name, &own_pid],
        )
        .await;
    match counted {
        Ok(row) => row.get::<_, i64>(0) > 0,
        Err(_) => true,
    }
}

/// The head a commit's notification names (`position:hash-in-hex`), if it parses.
fn head_of_payload(payload: &str) -> Option<ChainHead> {
    let (position, hash) = payload.split_once(':')?;
    Some(ChainHead {
        position: Position::new(position.parse().ok()?)?,
        hash: ChainHash::from_hex(hash)?,
    })
}

async fn follow(shared: Weak<Shared>) {
    loop {
        let Some(db) = shared.upgrade().map(|s| s.db.clone()) else {
            return;
        };
        let channel = super::commit::channel(db.schema());
        let (wake_tx, mut wake) = tokio::sync::mpsc::unbounded_channel::<Option<ChainHead>>();
        // The listening connection: its notifications wake the loop below.
        let name = super::commit::listener_name(db.schema());
        let listening = match db.dedicated_named(&name).await {
            Ok((client, mut connection)) => {
                let driver = db.spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(note) = message {
                            if wake_tx.send(head_of_payload(note.payload())).is_err() {
                                return;
                            }
                        }
                    }
                });
                let listened = async {
                    client
                        .batch_execute(&format!("LISTEN \"{channel}\""))
                        .await?;
                    let row = client.query_one("SELECT pg_backend_pid()", &[]).await?;
                    Ok::<i32, tokio_postgres::Error>(row.get(0))
                };
                match listened.await {
                    Ok(pid) => Some((client, driver, pid)),
                    Err(_) => {
                        driver.abort();
                        None
                    }
                }
            }
            Err(_) => None,
        };
        drop(db);
        let connected = listening.is_some();
        let own_pid = listening.as_ref().map_or(0, |(_, _, pid)| *pid);
        let mut counted = tokio::time::Instant::now() - COUNT_LISTENERS;
        // Poll (and wait for notifications) until the listening connection is lost.
        loop {
            let woke = if connected {
                tokio::time::timeout(POLL, wake.recv()).await
            } else {
                // Nothing to wait on: pause before polling and trying to listen again.
                tokio::time::sleep(RECONNECT).await;
                Ok(None)
            };
            let Some(shared) = shared.upgrade() else {
                return;
            };
            // A notification names the head its commit made: learnt without a query (this
            // process's own commits are known already, and learning them is a no-op). One
            // that does not parse, and the poll, read the head row.
            let mut notified = match &woke {
                Ok(Some(head)) => vec![*head],
                _ => vec![None],
            };
            while let Ok(head) = wake.try_recv() {
                notified.push(head);
            }
            if notified.iter().all(Option::is_some) {
                for head in notified.into_iter().flatten() {
                    shared.learn_head(head);
                }
            } else if let Ok(Some((head, _))) = stored_head(&shared.db).await {
                shared.learn_head(head);
            }
            if counted.elapsed() >= COUNT_LISTENERS {
                counted = tokio::time::Instant::now();
                let others = others_listening(&shared.db, &name, own_pid).await;
                shared.others_listening.store(others, Ordering::Relaxed);
            }
            // `recv` answered `None`: the listening connection ended. Without one, poll and
            // try to listen again.
            if matches!(woke, Ok(None)) || !connected {
                break;
            }
        }
        if let Some((_client, driver, _)) = listening {
            driver.abort();
        }
    }
}
