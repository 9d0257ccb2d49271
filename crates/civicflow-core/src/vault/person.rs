//! [`PersonId`]: who a requester is, without saying anything about them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::ids::{InvalidValue, StreamId};

/// A requester: a UUID v7, so ids sort by the time they were made.
///
/// Events carry this id and nothing else about the person; their contact details live in
/// the [`Vault`](super::Vault) under it. The id itself says nothing about the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PersonId(Uuid);

impl PersonId {
    /// Wraps a UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// A new time-ordered id (UUID v7) for the given time.
    pub fn new_v7(at: Timestamp) -> Self {
        Self(Uuid::new_v7(at.to_uuid_timestamp()))
    }

    /// The UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// From the 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    /// Parses the hyphenated or plain form.
    ///
    /// # Errors
    /// [`InvalidValue`] when the text is not a UUID.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        Uuid::parse_str(text)
            .map(Self)
            .map_err(|_| InvalidValue::new("person id", text, "must be a UUID"))
    }

    /// The person's lifecycle stream, `person-<uuid>` (`PersonRegistered`, `PersonErased`;
    /// never their data).
    ///
    /// # Panics
    /// Never: `person-` and a hyphenated UUID always make a valid stream id.
    pub fn stream(&self) -> StreamId {
        StreamId::new(format!("person-{}", self.0)).expect("a UUID makes a valid stream id")
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for PersonId {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_ids_parse_display_and_sort_by_time() {
        let early = PersonId::new_v7(Timestamp::from_unix_seconds(1_700_000_000));
        let late = PersonId::new_v7(Timestamp::from_unix_seconds(1_800_000_000));
        assert!(early < late);
        assert_eq!(early.as_uuid().get_version_num(), 7);
        let text = early.to_string();
        assert_eq!(PersonId::parse(&text), Ok(early));
        assert_eq!(text.parse::<PersonId>(), Ok(early));
        assert_eq!(PersonId::from_bytes(*early.as_bytes()), early);
        assert_eq!(early.stream().as_str(), format!("person-{text}"));
        assert_eq!(early.stream().category(), "person");
        let err = PersonId::parse("not-a-uuid").expect_err("not a UUID");
        assert_eq!(err.field, "person id");
    }
}
