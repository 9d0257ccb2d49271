//! Identifiers and counters, as types that cannot hold a bad value.
//!
//! Everything that crosses an API boundary as a string is validated once, when the newtype
//! is built, and the error names the field and the rule it broke. After that the rest of
//! civicflow can rely on it: a `StreamId` never contains NUL (the stream index uses NUL as a
//! separator), a `Version` is never 0, and so on.

use std::fmt;
use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Timestamp;

/// A value that failed validation: which field, what was given, and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: {rule}")]
pub struct InvalidValue {
    /// The field or type that was being built (for example `stream id`).
    pub field: &'static str,
    /// The offending value, cut to 80 characters.
    pub value: String,
    /// The rule it broke.
    pub rule: &'static str,
}

impl InvalidValue {
    pub(crate) fn new(field: &'static str, value: &str, rule: &'static str) -> Self {
        let value = value.chars().take(80).collect();
        Self { field, value, rule }
    }
}

/// Characters allowed in stream ids and idempotency keys: printable ASCII without spaces or
/// quotes, so ids can appear in URLs, logs and keys without escaping.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '/' | '+' | '=')
}

/// Characters allowed in labels (actor ids, roles, units): any printable text, no control
/// characters, so that names in Chinese work.
fn is_label_char(c: char) -> bool {
    !c.is_control()
}

fn validate(
    field: &'static str,
    value: &str,
    max_len: usize,
    allowed: fn(char) -> bool,
    rule: &'static str,
) -> Result<(), InvalidValue> {
    if value.is_empty() || value.len() > max_len || !value.chars().all(allowed) {
        return Err(InvalidValue::new(field, value, rule));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $allowed:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Maximum length in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps `value`.
            ///
            /// # Errors
            /// [`InvalidValue`] naming the field when `value` breaks the rule.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidValue> {
                let value = value.into();
                validate($field, &value, $max, $allowed, $rule)?;
                Ok(Self(value))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, InvalidValue> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// The id of a stream: `category-rest`, for example `case-0192f3…` or `unit-tonghui`.
    ///
    /// The part before the first `-` is the stream's category (what kind of thing it is).
    StreamId,
    "stream id",
    200,
    is_id_char,
    "must be 1 to 200 characters of A-Z a-z 0-9 - _ . : @ / + =, shaped category-name"
);

impl StreamId {
    /// Builds `category-name`.
    ///
    /// # Errors
    /// [`InvalidValue`] when the category is empty or contains `-`, or the whole id breaks
    /// the stream id rule.
    pub fn from_parts(category: &str, name: impl fmt::Display) -> Result<Self, InvalidValue> {
        if category.is_empty() || category.contains('-') {
            return Err(InvalidValue::new(
                "stream category",
                category,
                "must be non-empty and contain no '-'",
            ));
        }
        Self::new(format!("{category}-{name}"))
    }

    /// The category: the part before the first `-` (the whole id when there is none).
    pub fn category(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

string_newtype!(
    /// A caller-chosen key that makes an append idempotent: a retry with the same key
    /// returns the first append's result and writes nothing.
    IdempotencyKey,
    "idempotency key",
    128,
    is_id_char,
    "must be 1 to 128 characters of A-Z a-z 0-9 - _ . : @ / + ="
);

string_newtype!(
    /// The name of an event's type, for example `CaseOpened`. Together with the schema
    /// version it says how to decode the payload.
    EventType,
    "event type",
    100,
    |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.',
    "must be 1 to 100 characters of A-Z a-z 0-9 _ ."
);

string_newtype!(
    /// Who acted: a person's or a system's stable id.
    ActorId,
    "actor id",
    128,
    is_label_char,
    "must be 1 to 128 bytes without control characters"
);

string_newtype!(
    /// The role an actor acted in, for example `grid_worker`.
    Role,
    "role",
    64,
    is_label_char,
    "must be 1 to 64 bytes without control characters"
);

string_newtype!(
    /// An org unit of the four-tier chain (community, grid, enterprise, shop) or outside it.
    UnitId,
    "unit id",
    128,
    is_label_char,
    "must be 1 to 128 bytes without control characters"
);

/// Who did something: the actor, the role they acted in, and their org unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The person or system.
    pub id: ActorId,
    /// The role they acted in.
    pub role: Role,
    /// The org unit they acted for.
    pub unit: UnitId,
}

impl Actor {
    /// An actor from its three parts.
    pub fn new(id: ActorId, role: Role, unit: UnitId) -> Self {
        Self { id, role, unit }
    }

    /// Validates and builds an actor from strings.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the first part that is invalid.
    pub fn parse(id: &str, role: &str, unit: &str) -> Result<Self, InvalidValue> {
        Ok(Self::new(
            ActorId::new(id)?,
            Role::new(role)?,
            UnitId::new(unit)?,
        ))
    }
}

macro_rules! counter_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(NonZeroU64);

        impl $name {
            /// The first one: 1.
            pub const FIRST: Self = Self(NonZeroU64::MIN);

            /// `Some` for any value but 0.
            pub const fn new(value: u64) -> Option<Self> {
                match NonZeroU64::new(value) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// The number.
            pub const fn get(self) -> u64 {
                self.0.get()
            }

            /// The one after this one.
            ///
            /// # Panics
            /// Never in practice: at a billion events a second it takes 584 years.
            pub fn next(self) -> Self {
                Self(self.0.checked_add(1).expect("a u64 counter does not overflow"))
            }

            /// The one before this one, `None` for the first.
            pub fn prev(self) -> Option<Self> {
                Self::new(self.0.get() - 1)
            }

            /// `self + n`.
            pub fn plus(self, n: u64) -> Self {
                Self(self.0.checked_add(n).expect("a u64 counter does not overflow"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

counter_newtype!(
    /// An event's place in its stream: 1 for the first event, then 2, 3, … without gaps.
    Version
);
counter_newtype!(
    /// An event's place in the whole log: 1 for the first event, then 2, 3, … without gaps,
    /// assigned when the event commits.
    Position
);

/// What the writer expects a stream's current version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the version is.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(Version),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` (`None`: no stream) matches.
    pub fn matches(self, actual: Option<Version>) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual.is_none(),
            Self::Exact(v) => actual == Some(v),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(Uuid);

        impl $name {
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
                    .map_err(|_| InvalidValue::new($field, text, "must be a UUID"))
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidValue;

            fn from_str(text: &str) -> Result<Self, InvalidValue> {
                Self::parse(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_newtype!(
    /// An event's unique id: a UUID v7, so ids sort by the time they were made.
    EventId, "event id"
);
uuid_newtype!(
    /// Ties together everything that one request (a command, an HTTP call) caused.
    CorrelationId, "correlation id"
);
uuid_newtype!(
    /// What directly caused an event: the id of a command or of an earlier event.
    CausationId, "causation id"
);

uuid_newtype!(
    /// A case: one request handled by one workflow. Its events are the stream `case-<uuid>`.
    CaseId, "case id"
);
uuid_newtype!(
    /// A directive sent down the chain. Its events are the stream `directive-<uuid>`, and
    /// each unit's share is `directive-<uuid>.<part>`.
    DirectiveId, "directive id"
);
uuid_newtype!(
    /// An item of one of the three lists (resources, needs, projects): stream `list-<uuid>`.
    ListItemId, "list item id"
);

uuid_newtype!(
    /// A requester: who asked, without saying anything about them. Events carry this id; their
    /// contact data lives in the vault under it, so erasing them touches no event.
    PersonId,
    "person id"
);

impl PersonId {
    /// The person's lifecycle stream (registration, erasure; never their data).
    pub fn stream(&self) -> StreamId {
        StreamId::new(format!("person-{}", self.0)).expect("a UUID makes a valid stream id")
    }

    /// The person whose stream `stream` is (`None`: another stream).
    pub fn of_stream(stream: &StreamId) -> Option<Self> {
        Self::parse(stream.as_str().strip_prefix("person-")?).ok()
    }
}

impl CaseId {
    /// The case's stream.
    pub fn stream(&self) -> StreamId {
        StreamId::new(format!("case-{}", self.0)).expect("a UUID makes a valid stream id")
    }

    /// The case whose stream `stream` is (`None`: another stream).
    pub fn of_stream(stream: &StreamId) -> Option<Self> {
        Self::parse(stream.as_str().strip_prefix("case-")?).ok()
    }
}

impl DirectiveId {
    /// The directive's own stream.
    pub fn stream(&self) -> StreamId {
        StreamId::new(format!("directive-{}", self.0)).expect("a UUID makes a valid stream id")
    }

    /// The stream of part `index` (one unit's share).
    pub fn part_stream(&self, index: u32) -> StreamId {
        StreamId::new(format!("directive-{}.{index}", self.0))
            .expect("a UUID and a number make a valid stream id")
    }

    /// The directive whose own stream `stream` is (`None`: another stream, a part's too).
    pub fn of_stream(stream: &StreamId) -> Option<Self> {
        Self::parse(stream.as_str().strip_prefix("directive-")?).ok()
    }

    /// The directive and part index whose part stream `stream` is (`None`: another stream).
    pub fn of_part_stream(stream: &StreamId) -> Option<(Self, u32)> {
        let rest = stream.as_str().strip_prefix("directive-")?;
        let (id, index) = rest.split_once('.')?;
        Some((Self::parse(id).ok()?, index.parse().ok()?))
    }
}

impl ListItemId {
    /// The item's stream.
    pub fn stream(&self) -> StreamId {
        StreamId::new(format!("list-{}", self.0)).expect("a UUID makes a valid stream id")
    }

    /// The item whose stream `stream` is (`None`: another stream).
    pub fn of_stream(stream: &StreamId) -> Option<Self> {
        Self::parse(stream.as_str().strip_prefix("list-")?).ok()
    }
}

impl UnitId {
    /// Whether this id is a slug (lowercase ASCII letters, digits, `-`, `_`, `.`; starting
    /// with a letter or digit; at most 64 bytes), as new org units must be, so that a unit id
    /// fits in a stream id. Older or foreign ids may be any label.
    pub fn is_slug(&self) -> bool {
        let bytes = self.0.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 64
            && bytes[0].is_ascii_alphanumeric()
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            })
    }
}

impl From<EventId> for CausationId {
    fn from(id: EventId) -> Self {
        Self(id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_validated_and_name_the_rule() {
        assert_eq!(
            StreamId::new("case-42").map(|s| s.category().to_owned()),
            Ok("case".into())
        );
        let err = StreamId::new("case 42").expect_err("spaces are not allowed");
        assert_eq!(err.field, "stream id");
        assert!(err.to_string().contains("\"case 42\""), "{err}");
        assert!(StreamId::new("").is_err());
        assert!(StreamId::new("a\0b").is_err());
        assert!(StreamId::new("x".repeat(201)).is_err());
        assert!(StreamId::new("x".repeat(200)).is_ok());
        assert!(StreamId::from_parts("ca-se", 1).is_err());
        assert_eq!(
            StreamId::from_parts("unit", "grid-3").map(|s| s.to_string()),
            Ok("unit-grid-3".into())
        );
    }

    #[test]
    fn labels_accept_chinese_and_refuse_control_characters() {
        assert!(UnitId::new("通惠社区").is_ok());
        assert!(Role::new("grid\nworker").is_err());
        assert_eq!(
            Actor::parse("u1", "", "x").expect_err("empty role").field,
            "role"
        );
    }

    #[test]
    fn counters_start_at_one() {
        assert_eq!(Version::new(0), None);
        assert_eq!(Version::FIRST.get(), 1);
        assert_eq!(Position::FIRST.next().get(), 2);
        assert_eq!(Position::FIRST.prev(), None);
        assert!(ExpectedVersion::NoStream.matches(None));
        assert!(!ExpectedVersion::Exact(Version::FIRST).matches(None));
        assert!(ExpectedVersion::Any.matches(Version::new(7)));
    }

    #[test]
    fn deserialising_validates_too() {
        let json_like: Result<StreamId, _> = StreamId::try_from("bad id".to_owned());
        assert!(json_like.is_err());
    }
}
