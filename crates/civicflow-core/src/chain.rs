//! The hash chain that makes the log tamper-evident.
//!
//! Each event's hash covers its exact stored bytes and the hashes of the event before it in
//! the whole log and in its own stream:
//!
//! ```text
//! hash(e) = SHA-256("civicflow-chain-v1" | prev_log_hash | prev_stream_hash | record bytes)
//! ```
//!
//! So changing, dropping, inserting or reordering any event changes every later hash. Keep a
//! [`ChainHead`] somewhere else and the log can later be proven to still lead to it.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{Position, StreamId, Version};

/// Domain separation, so a chain hash can never be confused with a hash of something else.
const CHAIN_DOMAIN: &[u8] = b"civicflow-chain-v1";

/// A SHA-256 chain hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// The link used where there is no previous event: 32 zero bytes.
    pub const GENESIS: Self = Self([0; 32]);

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash of a record given its two links.
    pub fn link(prev_log: &ChainHash, prev_stream: &ChainHash, record: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(CHAIN_DOMAIN);
        hasher.update(prev_log.0);
        hasher.update(prev_stream.0);
        hasher.update(record);
        Self(hasher.finalize().into())
    }

    /// Parses [`ChainHash::to_hex`]'s form: exactly 64 lowercase hex digits (`None`
    /// otherwise, so that a hash has one spelling only).
    pub fn from_hex(text: &str) -> Option<Self> {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(Self(bytes))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }
}

/// The value of one lowercase hex digit.
pub(crate) fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The newest event of the log: its position and hash. Everything before it is fixed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainHead {
    /// Position of the newest durable event.
    pub position: Position,
    /// Its chain hash.
    pub hash: ChainHash,
}

/// Why the chain is broken at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainBreakReason {
    /// The recomputed hash differs from the stored one: the record or a link was altered.
    HashMismatch {
        /// What is stored.
        stored: ChainHash,
        /// What the bytes and links give.
        computed: ChainHash,
    },
    /// The record's own position field disagrees with where it is stored.
    PositionMismatch {
        /// The position the record says it has.
        recorded: u64,
    },
    /// A position is missing: the next stored event is not the one after the last.
    PositionGap {
        /// The position that was expected next.
        expected: Position,
    },
    /// The stream's versions jump or repeat.
    VersionGap {
        /// The stream.
        stream: StreamId,
        /// The version that was expected.
        expected: Version,
        /// The version found.
        found: Version,
    },
    /// The stream index points at an event of another stream or version.
    IndexMismatch {
        /// What is wrong.
        detail: String,
    },
    /// The stored bytes do not decode.
    Undecodable {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for ChainBreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HashMismatch { stored, computed } => {
                write!(
                    f,
                    "stored hash {stored} but the record and its links hash to {computed}"
                )
            }
            Self::PositionMismatch { recorded } => {
                write!(f, "the record says it is at position {recorded}")
            }
            Self::PositionGap { expected } => write!(f, "position {expected} is missing"),
            Self::VersionGap {
                stream,
                expected,
                found,
            } => {
                write!(
                    f,
                    "stream {stream} jumps from the expected version {expected} to {found}"
                )
            }
            Self::IndexMismatch { detail } => write!(f, "stream index mismatch: {detail}"),
            Self::Undecodable { reason } => write!(f, "the stored bytes do not decode: {reason}"),
        }
    }
}

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first broken position.
    pub position: Position,
    /// What is wrong there.
    pub reason: ChainBreakReason,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain broken at position {}: {}",
            self.position, self.reason
        )
    }
}

/// The outcome of verifying the whole log or one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many events were checked before the end or the first break.
    pub events_checked: u64,
    /// The last event that checked out.
    pub last_good: Option<ChainHead>,
    /// The first break, if any.
    pub first_break: Option<ChainBreak>,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_changes_the_hash() {
        let a = ChainHash::link(&ChainHash::GENESIS, &ChainHash::GENESIS, b"record");
        let b = ChainHash::link(&a, &ChainHash::GENESIS, b"record");
        let c = ChainHash::link(&ChainHash::GENESIS, &a, b"record");
        let d = ChainHash::link(&ChainHash::GENESIS, &ChainHash::GENESIS, b"recorD");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
        assert_ne!(a, d);
        assert_eq!(a.to_hex().len(), 64);
    }

    #[test]
    fn hex_has_one_spelling() {
        let a = ChainHash::link(&ChainHash::GENESIS, &ChainHash::GENESIS, b"record");
        assert_eq!(ChainHash::from_hex(&a.to_hex()), Some(a));
        assert_eq!(ChainHash::from_hex(&a.to_hex().to_uppercase()), None);
        assert_eq!(ChainHash::from_hex(&a.to_hex()[..62]), None);
        assert_eq!(ChainHash::from_hex(&format!("{}0", a.to_hex())), None);
        assert_eq!(ChainHash::from_hex(&"g".repeat(64)), None);
        assert_eq!(ChainHash::from_hex(&"é".repeat(32)), None);
        assert_eq!(ChainHash::from_hex(""), None);
    }
}
