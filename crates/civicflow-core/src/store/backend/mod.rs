//! What every storage backend shares, so that the rules are written once and the bytes are
//! the same whichever backend wrote them: preparing an append, planning a commit group,
//! idempotency records, the checks of a restore and of `verify`.
//!
//! The embedded sled log and the PostgreSQL log (crate `civicflow-postgres`) both commit
//! through [`GroupPlan`], restore through [`RestoreCheck`] and verify through [`ChainWalk`];
//! what differs between them is only where bytes are kept and what orders commits.

mod chain_walk;
mod idempotency;
mod plan;
mod prepare;
mod restore_check;

pub use chain_walk::{check_stream_record, ChainWalk, PreviousInStream};
pub use idempotency::{decode_idempotency, encode_idempotency};
pub use plan::{GroupPlan, GroupSink, GroupSource, StreamHead};
pub use prepare::{prepare, PreparedAppend};
pub use restore_check::{LastInStream, RestoreCheck, RESTORE_STREAMS_IN_MEMORY};
