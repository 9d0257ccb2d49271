//! Waiting without polling: the commit signal and one-shot completions.
//!
//! Both serve plain threads (a condition variable) and async callers (wakers) alike, with no
//! dependency on an async runtime. Whoever raises them never waits for whoever listens: a
//! slow subscriber cannot hold up a writer.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::ids::Position;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave its data half-updated (every
    // critical section is a single assignment or push), so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The durable head, announced after every commit.
#[derive(Debug, Default)]
pub struct CommitSignal {
    head: AtomicU64,
    closed: AtomicBool,
    sleepers: Mutex<()>,
    wake_threads: Condvar,
    wakers: Mutex<Vec<Waker>>,
}

impl CommitSignal {
    /// A signal whose head is `head` (0: empty log).
    pub fn new(head: u64) -> Self {
        Self {
            head: AtomicU64::new(head),
            ..Self::default()
        }
    }

    /// The durable head, 0 for an empty log.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Whether the store has closed (waiters then stop waiting).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Announces a new durable head and wakes every waiter. Never blocks on a waiter: it only
    /// takes two short locks that waiters hold for a check.
    pub fn publish(&self, head: Position) {
        self.head.fetch_max(head.get(), Ordering::AcqRel);
        self.wake_all();
    }

    /// Marks the store closed and wakes every waiter.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake_all();
    }

    fn wake_all(&self) {
        drop(lock(&self.sleepers));
        self.wake_threads.notify_all();
        let wakers = std::mem::take(&mut *lock(&self.wakers));
        for waker in wakers {
            waker.wake();
        }
    }

    /// Blocks until the head is at least `position`, the store closes, or `timeout` passes.
    /// Returns whether the head reached `position`.
    pub fn wait_for(&self, position: Position, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut guard = lock(&self.sleepers);
        loop {
            if self.head() >= position.get() {
                return true;
            }
            if self.is_closed() {
                return false;
            }
            guard = match deadline {
                None => self
                    .wake_threads
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    self.wake_threads
                        .wait_timeout(guard, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// A future that resolves to `true` when the head reaches `position`, `false` if the
    /// store closes first.
    pub fn reached(&self, position: Position) -> Reached<'_> {
        Reached {
            signal: self,
            position,
        }
    }

    fn register(&self, waker: &Waker) {
        let mut wakers = lock(&self.wakers);
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }
}

/// Resolves when the commit signal reaches a position. See [`CommitSignal::reached`].
#[derive(Debug)]
pub struct Reached<'a> {
    signal: &'a CommitSignal,
    position: Position,
}

impl Future for Reached<'_> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let check = |signal: &CommitSignal| {
            if signal.head() >= self.position.get() {
                Some(true)
            } else if signal.is_closed() {
                Some(false)
            } else {
                None
            }
        };
        if let Some(done) = check(self.signal) {
            return Poll::Ready(done);
        }
        self.signal.register(cx.waker());
        // Check again: a publish between the first check and the registration would
        // otherwise be missed.
        match check(self.signal) {
            Some(done) => Poll::Ready(done),
            None => Poll::Pending,
        }
    }
}

#[derive(Debug)]
enum Slot<T> {
    Waiting(Option<Waker>),
    Done(T),
    Taken,
}

#[derive(Debug)]
struct CompletionInner<T> {
    slot: Mutex<Slot<T>>,
    done: Condvar,
}

/// A result that another thread will deliver once: wait for it on a thread, or `.await` it.
#[derive(Debug)]
pub struct Completion<T> {
    inner: Arc<CompletionInner<T>>,
}

/// The sending side of a [`Completion`]: a backend completes it once the append or read it
/// stands for is done (durable, for an append).
#[derive(Debug)]
pub struct Completer<T> {
    inner: Arc<CompletionInner<T>>,
}

impl<T> Completion<T> {
    /// A completion and the handle that completes it.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (Self, Completer<T>) {
        let inner = Arc::new(CompletionInner {
            slot: Mutex::new(Slot::Waiting(None)),
            done: Condvar::new(),
        });
        (
            Self {
                inner: inner.clone(),
            },
            Completer { inner },
        )
    }

    /// A completion that is already done.
    pub fn ready(value: T) -> Self {
        let inner = Arc::new(CompletionInner {
            slot: Mutex::new(Slot::Done(value)),
            done: Condvar::new(),
        });
        Self { inner }
    }

    /// Blocks the current thread until the result is there.
    ///
    /// # Panics
    /// If the result was already taken by polling the future to completion.
    pub fn wait(self) -> T {
        let mut slot = lock(&self.inner.slot);
        loop {
            match std::mem::replace(&mut *slot, Slot::Taken) {
                Slot::Done(value) => return value,
                Slot::Taken => panic!("a Completion's result is taken once"),
                waiting @ Slot::Waiting(_) => {
                    *slot = waiting;
                    slot = self
                        .inner
                        .done
                        .wait(slot)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// The result if it is there, without waiting.
    pub fn try_take(&self) -> Option<T> {
        let mut slot = lock(&self.inner.slot);
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Done(value) => Some(value),
            other => {
                *slot = other;
                None
            }
        }
    }
}

impl<T> Future for Completion<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = lock(&self.inner.slot);
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Done(value) => Poll::Ready(value),
            Slot::Taken => panic!("a Completion was polled after it completed"),
            Slot::Waiting(_) => {
                *slot = Slot::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

impl<T> Completer<T> {
    /// Delivers the result and wakes whoever waits.
    pub fn complete(self, value: T) {
        let waker = {
            let mut slot = lock(&self.inner.slot);
            match std::mem::replace(&mut *slot, Slot::Done(value)) {
                Slot::Waiting(waker) => waker,
                _ => None,
            }
        };
        self.inner.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_wakes_on_publish_and_on_close() {
        let signal = Arc::new(CommitSignal::new(0));
        let waiter = {
            let signal = signal.clone();
            std::thread::spawn(move || signal.wait_for(Position::new(3).expect("nz"), None))
        };
        signal.publish(Position::new(2).expect("nz"));
        signal.publish(Position::new(3).expect("nz"));
        assert!(waiter.join().expect("no panic"));
        assert!(!signal.wait_for(
            Position::new(9).expect("nz"),
            Some(Duration::from_millis(10))
        ));
        signal.close();
        assert!(!signal.wait_for(Position::new(9).expect("nz"), None));
    }

    #[tokio::test]
    async fn futures_resolve_from_other_threads() {
        let signal = Arc::new(CommitSignal::new(0));
        let (completion, completer) = Completion::new();
        let publisher = signal.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            publisher.publish(Position::FIRST);
            completer.complete(7);
        });
        assert!(signal.reached(Position::FIRST).await);
        assert_eq!(completion.await, 7);
    }
}
