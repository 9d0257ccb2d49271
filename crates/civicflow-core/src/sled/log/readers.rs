//! A small pool of threads that serve async reads, so that a read which misses sled's cache
//! blocks one of ours and never a thread of the caller's async runtime.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::lock;
use crate::store::Completion;

type Job = Box<dyn FnOnce() + Send>;

/// Started on the first async read; stopped when the log closes.
#[derive(Debug)]
pub(super) struct ReaderPool {
    size: usize,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl ReaderPool {
    pub(super) fn new(size: usize) -> Self {
        Self {
            size: size.max(1),
            state: Mutex::new(PoolState::default()),
        }
    }

    /// Runs `read` on a pool thread; the completion carries its result.
    pub(super) fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce() -> T + Send + 'static,
    ) -> Completion<T> {
        let (completion, completer) = Completion::new();
        let job: Job = Box::new(move || completer.complete(read()));
        let mut state = lock(&self.state);
        if state.stopped {
            // After close the read fails fast with `Closed`: run it here, it does not block.
            drop(state);
            job();
            return completion;
        }
        if state.sender.is_none() {
            let (sender, receiver) = channel::<Job>();
            let receiver = Arc::new(Mutex::new(receiver));
            for i in 0..self.size {
                let receiver = receiver.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("civicflow-reader-{i}"))
                    .spawn(move || loop {
                        let next = lock(&receiver).recv();
                        match next {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    });
                if let Ok(handle) = spawned {
                    state.threads.push(handle);
                }
            }
            if state.threads.is_empty() {
                // No thread could be started: serve the read here rather than never.
                drop(state);
                job();
                return completion;
            }
            state.sender = Some(sender);
        }
        if let Some(sender) = &state.sender {
            if let Err(returned) = sender.send(job) {
                drop(state);
                (returned.0)();
            }
        }
        completion
    }

    /// Lets queued reads finish and stops the threads.
    pub(super) fn stop(&self) {
        let threads = {
            let mut state = lock(&self.state);
            state.stopped = true;
            state.sender = None;
            std::mem::take(&mut state.threads)
        };
        for thread in threads {
            let _ = thread.join();
        }
    }
}
