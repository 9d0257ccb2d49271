//! A store that passes every call to another, except the few a test double changes: a store
//! that counts what is read from it, one that drops events on purpose (the conformance kit's
//! mutants). The double implements [`Intercept`], saying only what it changes;
//! [`Intercepted`] makes it an [`EventStore`].

use std::fmt;

use crate::chain::{ChainHead, VerifyReport};
use crate::error::{CloseError, ReadError, RestoreError};
use crate::store::{
    AppendResult, IdempotencyRecord, LogStats, RestoreSink, StoredIdempotency, StoredRecord,
};
use crate::{
    AppendRequest, CommitSignal, Completion, EventStore, IdempotencyKey, Position, RecordedEvent,
    StreamId, Version,
};

/// The calls a test double may change; each passes the call on unless overridden.
pub trait Intercept: Send + Sync + fmt::Debug {
    /// The store every call goes to.
    fn inner(&self) -> &dyn EventStore;

    /// [`EventStore::append`].
    fn append(&self, request: AppendRequest) -> AppendResult {
        self.inner().append(request)
    }

    /// [`EventStore::append_async`].
    fn append_async(&self, request: AppendRequest) -> Completion<AppendResult> {
        self.inner().append_async(request)
    }

    /// [`EventStore::read_all`].
    ///
    /// # Errors
    /// As the inner store's.
    fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner().read_all(from, max)
    }

    /// [`EventStore::read_all_async`]: by default [`Intercept::read_all`], answered at once,
    /// so that a double that changes one changes both.
    fn read_all_async(
        &self,
        from: Position,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        Completion::ready(self.read_all(from, max))
    }
}

/// `T` as an [`EventStore`]: the calls of [`Intercept`] go to `T`, every other call to
/// `T::inner`.
#[derive(Debug)]
pub struct Intercepted<T>(pub T);

impl<T: Intercept> EventStore for Intercepted<T> {
    fn append(&self, request: AppendRequest) -> AppendResult {
        self.0.append(request)
    }
    fn append_async(&self, request: AppendRequest) -> Completion<AppendResult> {
        self.0.append_async(request)
    }
    fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.0.inner().read_stream(stream, from, max)
    }
    fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        self.0.read_all(from, max)
    }
    fn read_stream_async(
        &self,
        stream: StreamId,
        from: Version,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        self.0.inner().read_stream_async(stream, from, max)
    }
    fn read_all_async(
        &self,
        from: Position,
        max: usize,
    ) -> Completion<Result<Vec<RecordedEvent>, ReadError>> {
        self.0.read_all_async(from, max)
    }
    fn stream_version(&self, stream: &StreamId) -> Result<Option<Version>, ReadError> {
        self.0.inner().stream_version(stream)
    }
    fn idempotency_record(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, ReadError> {
        self.0.inner().idempotency_record(key)
    }
    fn idempotent_result(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<crate::Appended>, ReadError> {
        self.0.inner().idempotent_result(key)
    }
    fn head(&self) -> Option<ChainHead> {
        self.0.inner().head()
    }
    fn wait_for(&self, position: Position, timeout: std::time::Duration) -> bool {
        self.0.inner().wait_for(position, timeout)
    }
    fn write_refusal(&self) -> Option<crate::AppendError> {
        self.0.inner().write_refusal()
    }
    fn commit_signal(&self) -> &CommitSignal {
        self.0.inner().commit_signal()
    }
    fn verify(&self) -> Result<VerifyReport, ReadError> {
        self.0.inner().verify()
    }
    fn verify_stream(&self, stream: &StreamId) -> Result<VerifyReport, ReadError> {
        self.0.inner().verify_stream(stream)
    }
    fn poisoned(&self) -> Option<String> {
        self.0.inner().poisoned()
    }
    fn stats(&self) -> LogStats {
        self.0.inner().stats()
    }
    fn is_shared(&self) -> bool {
        self.0.inner().is_shared()
    }
    fn health(&self) -> Result<(), String> {
        self.0.inner().health()
    }
    fn upkeep_failure(&self) -> Option<String> {
        self.0.inner().upkeep_failure()
    }
    fn location(&self) -> String {
        self.0.inner().location()
    }
    fn stored_records(&self, from: Position, max: usize) -> Result<Vec<StoredRecord>, ReadError> {
        self.0.inner().stored_records(from, max)
    }
    fn stored_idempotency_records(
        &self,
        after: Option<&IdempotencyKey>,
        max: usize,
    ) -> Result<Vec<StoredIdempotency>, ReadError> {
        self.0.inner().stored_idempotency_records(after, max)
    }
    fn begin_restore(&self) -> Result<Box<dyn RestoreSink + '_>, RestoreError> {
        self.0.inner().begin_restore()
    }
    fn close(&self) -> Result<(), CloseError> {
        self.0.inner().close()
    }
}
