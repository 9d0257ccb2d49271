//! Property tests that feed hostile bytes to every stored-value decoder of [`crate::codec`]
//! (issue 7): arbitrary bytes, and valid encodings with random byte flips, truncations and
//! extensions. Every decoder must return `Ok` or `Err`, never panic, and a valid encoding
//! must decode back to its value.
//!
//! Cases per property: 256 by default (the whole module runs in a few seconds in debug);
//! `CIVICFLOW_FUZZ_CASES=N` runs `N` instead, for example
//! `CIVICFLOW_FUZZ_CASES=20000 cargo test -p civicflow-core --release codec_fuzz`.

use proptest::prelude::*;
use uuid::Uuid;

use crate::chain::ChainHash;
use crate::clock::Timestamp;
use crate::codec::{
    decode_chunk, decode_idempotency, decode_index_entry, decode_payload, decode_record,
    decode_record_key_fields, decode_snapshot, encode_idempotency, encode_index_entry,
    encode_record, encode_snapshot, ChunkBuilder, IdempotencyRecordV1, FORMAT_V1,
};
use crate::domain::access::AccessEvent;
use crate::domain::calendar_years::CalendarEvent;
use crate::domain::case::CaseEvent;
use crate::domain::directive::{DirectiveEvent, PartEvent};
use crate::domain::lists::ListEvent;
use crate::domain::merchants::StandingEvent;
use crate::domain::org::OrgEvent;
use crate::domain::person::PersonEvent;
use crate::domain::workflow::published::WorkflowEvent;
use crate::event::{DomainEvent, RecordedEvent};
use crate::ids::{
    Actor, CausationId, CorrelationId, EventId, EventType, Position, StreamId, Version,
};

/// Cases per property: `CIVICFLOW_FUZZ_CASES`, or 256.
fn cases() -> u32 {
    std::env::var("CIVICFLOW_FUZZ_CASES")
        .ok()
        .map(|n| {
            n.parse()
                .expect("CIVICFLOW_FUZZ_CASES must be a whole number")
        })
        .unwrap_or(256)
}

/// Bytes a decoder may meet: mostly small values (valid varints, enum tags and short lengths,
/// so decoding goes deep), sometimes anything.
fn hostile_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        proptest::collection::vec(0u8..6, 0..max),
        proptest::collection::vec(
            prop_oneof![0u8..4, Just(0xff), Just(0x80), any::<u8>()],
            0..max
        ),
    ]
}

/// A change to valid bytes.
#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Truncate { keep: usize },
    Extend { tail: Vec<u8> },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Set { at, byte }),
        any::<usize>().prop_map(|keep| Damage::Truncate { keep }),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(|tail| Damage::Extend { tail }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Insert { at, byte }),
        any::<usize>().prop_map(|at| Damage::Remove { at }),
    ];
    proptest::collection::vec(one, 1..4)
}

fn apply(mut bytes: Vec<u8>, damage: &[Damage]) -> Vec<u8> {
    for d in damage {
        let len = bytes.len();
        match d {
            Damage::Flip { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
            Damage::Set { at, byte } if len > 0 => bytes[at % len] = *byte,
            Damage::Truncate { keep } => bytes.truncate(keep % (len + 1)),
            Damage::Extend { tail } => bytes.extend_from_slice(tail),
            Damage::Insert { at, byte } => bytes.insert(at % (len + 1), *byte),
            Damage::Remove { at } if len > 0 => {
                bytes.remove(at % len);
            }
            _ => {}
        }
    }
    bytes
}

/// Every payload decoder of every event enum, for every `(type, version)` it knows, and one
/// type nobody knows.
fn decode_every_payload(bytes: &[u8]) {
    fn each<E: DomainEvent>(known: &[(&str, u16)], bytes: &[u8]) {
        for (event_type, version) in known {
            let _ = E::from_payload(event_type, *version, bytes);
        }
        assert!(E::from_payload("NoSuchEvent", 1, bytes).is_err());
    }
    each::<CaseEvent>(CaseEvent::KNOWN, bytes);
    each::<OrgEvent>(OrgEvent::KNOWN, bytes);
    each::<AccessEvent>(AccessEvent::KNOWN, bytes);
    each::<ListEvent>(ListEvent::KNOWN, bytes);
    each::<DirectiveEvent>(DirectiveEvent::KNOWN, bytes);
    each::<PartEvent>(PartEvent::KNOWN, bytes);
    each::<StandingEvent>(StandingEvent::KNOWN, bytes);
    each::<PersonEvent>(PersonEvent::KNOWN, bytes);
    each::<CalendarEvent>(CalendarEvent::KNOWN, bytes);
    each::<WorkflowEvent>(WorkflowEvent::KNOWN, bytes);
}

/// The shape of the scheduler's snapshot (`engine/scheduler.rs`: a position, a hash, and per
/// running deadline a target, a sequence number and timed steps), with plain types.
type SnapshotShape = (u64, [u8; 32], Vec<((u8, [u8; 16]), u32, Vec<(i64, u8)>)>);

/// Runs every decoder on `bytes`; none may panic.
fn decode_everything(bytes: &[u8]) {
    let _ = decode_record(bytes, ChainHash::GENESIS);
    let _ = decode_record_key_fields(bytes);
    if let Ok(entries) = decode_chunk(bytes) {
        for entry in entries {
            let _ = decode_record(entry.record, entry.hash);
        }
    }
    let _ = decode_index_entry(bytes);
    let _ = decode_idempotency(bytes);
    let _ = decode_snapshot::<SnapshotShape>(bytes);
    let _ = decode_payload::<(String, Vec<u64>, Option<i64>)>(bytes);
    decode_every_payload(bytes);
}

/// `bytes` with a valid snapshot checksum after them, so the decoder goes past the checksum.
fn with_checksum(body: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = body.to_vec();
    out.extend_from_slice(&Sha256::digest(body));
    out
}

fn event_strategy() -> impl Strategy<Value = RecordedEvent> {
    (
        (1u64..u64::MAX, 1u64..u64::MAX, any::<i64>()),
        (
            any::<u128>(),
            any::<u128>(),
            proptest::option::of(any::<u128>()),
        ),
        (
            1u16..u16::MAX,
            proptest::collection::vec(any::<u8>(), 0..64),
        ),
        ("[a-z][a-z0-9-]{0,20}", "[A-Z][A-Za-z]{0,20}"),
    )
        .prop_map(
            |((position, version, at), (id, corr, cause), (schema, payload), (stream, ty))| {
                RecordedEvent {
                    position: Position::new(position).expect("not zero"),
                    stream: StreamId::new(stream).expect("a valid stream id"),
                    version: Version::new(version).expect("not zero"),
                    recorded_at: Timestamp::from_unix_micros(at),
                    event_id: EventId::from_uuid(Uuid::from_u128(id)),
                    event_type: EventType::new(ty).expect("a valid type name"),
                    schema_version: schema,
                    actor: Actor::parse("worker-7", "grid_worker", "通惠社区/grid-1")
                        .expect("valid"),
                    correlation_id: CorrelationId::from_uuid(Uuid::from_u128(corr)),
                    causation_id: cause.map(|c| CausationId::from_uuid(Uuid::from_u128(c))),
                    payload,
                    hash: ChainHash::from_bytes([9; 32]),
                }
            },
        )
}

fn idempotency_strategy() -> impl Strategy<Value = IdempotencyRecordV1> {
    (
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec((".{0,12}", any::<u64>(), any::<u64>()), 0..4),
    )
        .prop_map(|(fingerprint, first_position, last_position, streams)| {
            IdempotencyRecordV1 {
                fingerprint,
                first_position,
                last_position,
                streams,
            }
        })
}

fn positions_strategy() -> impl Strategy<Value = Vec<Position>> {
    proptest::collection::vec(1u64..(1 << 20), 1..crate::codec::INDEX_ENTRY_VERSIONS_MAX).prop_map(
        |deltas| {
            let mut at = 0u64;
            deltas
                .into_iter()
                .map(|d| {
                    at += d;
                    Position::new(at).expect("not zero")
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Arbitrary bytes, bare, behind a format byte, and with a valid snapshot checksum.
    #[test]
    fn hostile_bytes_never_panic_any_decoder(bytes in hostile_bytes(600)) {
        decode_everything(&bytes);
        let mut formatted = vec![FORMAT_V1];
        formatted.extend_from_slice(&bytes);
        decode_everything(&formatted);
        decode_everything(&with_checksum(&formatted));
    }

    /// Records round-trip; damaged, they decode to something or to an error, never a panic,
    /// alone and inside a chunk.
    #[test]
    fn records_round_trip_and_survive_damage(event in event_strategy(), damage in damage()) {
        let bytes = encode_record(&event);
        prop_assert_eq!(decode_record(&bytes, event.hash), Ok(event.clone()));
        let damaged = apply(bytes.clone(), &damage);
        decode_everything(&damaged);
        let mut builder = ChunkBuilder::new();
        builder.push(&event.hash, &bytes);
        builder.push(&ChainHash::GENESIS, &damaged);
        let chunk = builder.finish();
        let entries = decode_chunk(&chunk).expect("a built chunk decodes");
        prop_assert_eq!(entries.len(), 2);
        prop_assert_eq!(entries[1].record, damaged.as_slice());
        decode_everything(&apply(chunk, &damage));
    }

    /// Index entries and idempotency records round-trip and survive damage.
    #[test]
    fn index_entries_and_idempotency_records_round_trip_and_survive_damage(
        positions in positions_strategy(),
        record in idempotency_strategy(),
        damage in damage(),
    ) {
        let entry = encode_index_entry(&positions);
        prop_assert_eq!(decode_index_entry(&entry), Ok(positions));
        decode_everything(&apply(entry, &damage));
        let stored = encode_idempotency(&record);
        prop_assert_eq!(decode_idempotency(&stored), Ok(record));
        decode_everything(&apply(stored, &damage));
    }

    /// Snapshots round-trip; damaged they are refused (the checksum), and damaged under a
    /// recomputed checksum they decode or are refused, never a panic.
    #[test]
    fn snapshots_round_trip_and_refuse_damage(
        through in any::<u64>(),
        hash in any::<[u8; 32]>(),
        running in proptest::collection::vec(
            ((any::<u8>(), any::<[u8; 16]>()), any::<u32>(), proptest::collection::vec((any::<i64>(), any::<u8>()), 0..4)),
            0..6,
        ),
        damage in damage(),
    ) {
        let value: SnapshotShape = (through, hash, running);
        let bytes = encode_snapshot(&value).expect("encodes");
        prop_assert_eq!(decode_snapshot::<SnapshotShape>(&bytes), Ok(value));
        let damaged = apply(bytes.clone(), &damage);
        if damaged != bytes {
            prop_assert!(decode_snapshot::<SnapshotShape>(&damaged).is_err(), "damage under the checksum went unnoticed");
        }
        let body = &bytes[..bytes.len() - 32];
        decode_everything(&with_checksum(&apply(body.to_vec(), &damage)));
    }

    /// Real payloads of the domain (the demo's kinds of values are not reachable here, so a
    /// payload is any encodable value), damaged, against every payload decoder.
    #[test]
    fn damaged_payloads_never_panic_a_domain_decoder(
        title in ".{0,24}",
        numbers in proptest::collection::vec(any::<u64>(), 0..6),
        tag in 0u32..40,
        damage in damage(),
    ) {
        let mut bytes = crate::codec::encode_payload(&(tag, title, numbers)).expect("encodes");
        decode_every_payload(&bytes);
        bytes = apply(bytes, &damage);
        decode_every_payload(&bytes);
    }
}
