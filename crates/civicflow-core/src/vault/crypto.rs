//! The vault's cryptography, in one place.
//!
//! - Four keys are derived from the master key with HMAC-SHA-256 under distinct labels
//!   (HMAC as a PRF): the **wrapping key** (encrypts person keys), the **search key** (keys
//!   the phone-search HMAC), the **digest key** (keys the digests of requests stored with
//!   idempotency keys, which may cover contact details) and the **check value** (stored in
//!   the key file's header, so a wrong master key is refused when the vault opens).
//! - **Subkeys** for other parts of civicflow ([`MasterKey::derive_subkey`]: the dashboard's
//!   session cookies) are HMAC-SHA-256 of `civicflow subkey\0` and their purpose, a label no
//!   vault key uses.
//! - A person's **data key** is 32 random bytes from the operating system. It is stored only
//!   wrapped: XChaCha20-Poly1305 under the wrapping key, random 192-bit nonce, with the
//!   person id as associated data (a slot moved to another person does not decrypt).
//! - A **data record** is XChaCha20-Poly1305 under the person's data key, random nonce, with
//!   the person id as associated data (a record copied to another person does not decrypt).
//!
//! Key material lives in [`Secret32`], overwritten on drop; the ciphers of `chacha20poly1305`
//! zeroize their keys on drop themselves.

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::contact::ContactDetails;
use super::error::VaultError;
use super::master_key::MasterKey;
use super::person::PersonId;

/// Bytes of a key (master, derived, or data key).
pub(super) const KEY_LEN: usize = 32;
/// Bytes of an XChaCha20-Poly1305 nonce.
pub(super) const NONCE_LEN: usize = 24;
/// Bytes of a Poly1305 tag.
pub(super) const TAG_LEN: usize = 16;
/// Bytes of a wrapped data key: the key and the tag.
pub(super) const WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;
/// Bytes of a phone tag (HMAC-SHA-256).
pub(super) const PHONE_TAG_LEN: usize = 32;

/// Format byte of a data record.
pub(super) const RECORD_FORMAT: u8 = 1;

const LABEL_WRAP: &[u8] = b"civicflow-vault/1 key wrapping";
const LABEL_SEARCH: &[u8] = b"civicflow-vault/1 phone search";
const LABEL_CHECK: &[u8] = b"civicflow-vault/1 key check";
const LABEL_DIGEST: &[u8] = b"civicflow-vault/1 request digest";
const AAD_KEY: &[u8] = b"civicflow-vault/1 person key\0";
const AAD_DATA: &[u8] = b"civicflow-vault/1 person data\0";
const TAG_PHONE: &[u8] = b"civicflow-vault/1 phone\0";
/// The label of [`MasterKey::derive_subkey`]'s keys, followed by the purpose. It cannot be
/// mistaken for a vault label: those begin `civicflow-vault/`, and this has a NUL byte
/// between the label and the purpose, so no purpose makes one of the vault's inputs.
const LABEL_SUBKEY: &[u8] = b"civicflow subkey\0";

/// Overwrites `bytes` with zeros. Best effort without the `zeroize` crate: `black_box` keeps
/// the compiler from dropping the writes as dead stores.
pub(super) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(&*bytes);
}

/// Fills `out` from the operating system's CSPRNG.
pub(super) fn fill_random(out: &mut [u8]) -> Result<(), VaultError> {
    OsRng
        .try_fill_bytes(out)
        .map_err(|e| VaultError::Randomness {
            reason: e.to_string(),
        })
}

/// 32 secret bytes, overwritten on drop, never printed.
pub(super) struct Secret32([u8; KEY_LEN]);

impl Secret32 {
    pub(super) fn new(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub(super) fn random() -> Result<Self, VaultError> {
        let mut secret = Self([0; KEY_LEN]);
        fill_random(&mut secret.0)?;
        Ok(secret)
    }

    pub(super) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for Secret32 {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl std::fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret32(<redacted>)")
    }
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA-256 over the concatenation of `parts`.
///
/// The key is zero-padded to SHA-256's 64-byte block, which is exactly what HMAC does with a
/// short key (RFC 2104), so the infallible `KeyInit::new` can be used.
fn hmac_sha256(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..KEY_LEN].copy_from_slice(key);
    let mut mac = <HmacSha256 as KeyInit>::new(&block.into());
    wipe(&mut block);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The key for `purpose` derived from the master key (see [`MasterKey::derive_subkey`]).
pub(super) fn subkey(master: &MasterKey, purpose: &str) -> [u8; 32] {
    hmac_sha256(master.expose(), &[LABEL_SUBKEY, purpose.as_bytes()])
}

/// Compares in time independent of where the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cipher(key: &[u8; KEY_LEN]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key).into())
}

/// The keys derived from the master key.
pub(super) struct VaultKeys {
    wrap: XChaCha20Poly1305,
    search: Secret32,
    digest: Secret32,
    check: [u8; 32],
}

impl VaultKeys {
    pub(super) fn derive(master: &MasterKey) -> Self {
        let key = master.expose();
        let wrap = Secret32::new(hmac_sha256(key, &[LABEL_WRAP]));
        Self {
            wrap: cipher(wrap.as_bytes()),
            search: Secret32::new(hmac_sha256(key, &[LABEL_SEARCH])),
            digest: Secret32::new(hmac_sha256(key, &[LABEL_DIGEST])),
            check: hmac_sha256(key, &[LABEL_CHECK]),
        }
    }

    /// The value the key file's header holds for this master key.
    pub(super) fn check_value(&self) -> &[u8; 32] {
        &self.check
    }

    /// A keyed digest of `parts`: what identifies a request for its retries without letting
    /// anyone who reads the log test guesses of the contact details in it.
    pub(super) fn request_digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac_sha256(self.digest.as_bytes(), parts)
    }

    /// The search tag of a normalised (E.164) phone number.
    pub(super) fn phone_tag(&self, normalized_phone: &str) -> [u8; PHONE_TAG_LEN] {
        hmac_sha256(
            self.search.as_bytes(),
            &[TAG_PHONE, normalized_phone.as_bytes()],
        )
    }

    fn key_aad(person: PersonId) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_KEY.len() + 16);
        aad.extend_from_slice(AAD_KEY);
        aad.extend_from_slice(person.as_bytes());
        aad
    }

    /// Encrypts a data key for storage in the key file; returns the nonce and the wrapped
    /// key.
    pub(super) fn wrap(
        &self,
        person: PersonId,
        data_key: &Secret32,
    ) -> Result<([u8; NONCE_LEN], [u8; WRAPPED_LEN]), VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let aad = Self::key_aad(person);
        let sealed = self
            .wrap
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: data_key.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Encryption {
                reason: "encrypting a 32-byte key failed",
            })?;
        let wrapped: [u8; WRAPPED_LEN] =
            sealed
                .as_slice()
                .try_into()
                .map_err(|_| VaultError::Encryption {
                    reason: "a wrapped key has an unexpected length",
                })?;
        Ok((nonce, wrapped))
    }

    /// Decrypts a wrapped data key; `None` when it does not authenticate.
    pub(super) fn unwrap_key(
        &self,
        person: PersonId,
        nonce: &[u8; NONCE_LEN],
        wrapped: &[u8; WRAPPED_LEN],
    ) -> Option<Secret32> {
        let aad = Self::key_aad(person);
        let mut opened = self
            .wrap
            .decrypt(
                &XNonce::from(*nonce),
                Payload {
                    msg: wrapped,
                    aad: &aad,
                },
            )
            .ok()?;
        let key: Option<[u8; KEY_LEN]> = opened.as_slice().try_into().ok();
        wipe(&mut opened);
        key.map(Secret32::new)
    }
}

fn data_aad(person: PersonId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DATA.len() + 1 + 16);
    aad.extend_from_slice(AAD_DATA);
    aad.push(RECORD_FORMAT);
    aad.extend_from_slice(person.as_bytes());
    aad
}

/// Encrypts contact details into a data record:
///
/// ```text
/// fmt=1 | nonce (24 B) | XChaCha20-Poly1305 ciphertext of the padded plaintext | tag (16 B)
/// ```
pub(super) fn seal_record(
    person: PersonId,
    data_key: &Secret32,
    details: &ContactDetails,
) -> Result<Vec<u8>, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let mut plaintext = details.encode();
    let aad = data_aad(person);
    let sealed = cipher(data_key.as_bytes()).encrypt(
        &XNonce::from(nonce),
        Payload {
            msg: &plaintext,
            aad: &aad,
        },
    );
    wipe(&mut plaintext);
    let sealed = sealed.map_err(|_| VaultError::Encryption {
        reason: "encrypting a record failed",
    })?;
    let mut record = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    record.push(RECORD_FORMAT);
    record.extend_from_slice(&nonce);
    record.extend_from_slice(&sealed);
    Ok(record)
}

/// Decrypts and decodes a data record.
pub(super) fn open_record(
    person: PersonId,
    data_key: &Secret32,
    record: &[u8],
) -> Result<ContactDetails, VaultError> {
    let damaged = |reason| VaultError::DamagedRecord { person, reason };
    let (&format, rest) = record.split_first().ok_or(damaged("the record is empty"))?;
    if format != RECORD_FORMAT {
        return Err(damaged("unknown record format byte"));
    }
    let (nonce, sealed) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(damaged("the record is truncated"))?;
    if sealed.len() < TAG_LEN {
        return Err(damaged("the record is truncated"));
    }
    let aad = data_aad(person);
    let mut plaintext = cipher(data_key.as_bytes())
        .decrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| {
            damaged("it does not decrypt with the person's key (damaged, or copied from another person)")
        })?;
    let details = ContactDetails::decode(&plaintext).map_err(damaged);
    wipe(&mut plaintext);
    details
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn padded_key_hmac_matches_rfc_4231() {
        // RFC 4231 test case 2: key "Jefe".
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn no_subkey_is_a_vault_key() {
        let master = MasterKey::from_bytes([3; 32]);
        let keys = VaultKeys::derive(&master);
        let vault = [
            *keys.search.as_bytes(),
            *keys.digest.as_bytes(),
            *keys.check_value(),
            hmac_sha256(master.expose(), &[LABEL_WRAP]),
        ];
        // Not even for a purpose spelled like a vault label, or like the label and a
        // purpose run together.
        for purpose in [
            "",
            "dashboard session",
            "civicflow-vault/1 key wrapping",
            "civicflow-vault/1 phone search",
            "civicflow-vault/1 key check",
            "civicflow-vault/1 request digest",
        ] {
            let subkey = master.derive_subkey(purpose);
            assert!(!vault.contains(&subkey), "{purpose:?}");
        }
    }

    #[test]
    fn derived_keys_differ_and_depend_on_the_master_key() {
        let a = VaultKeys::derive(&MasterKey::from_bytes([1; 32]));
        let b = VaultKeys::derive(&MasterKey::from_bytes([2; 32]));
        assert_ne!(a.check_value(), b.check_value());
        assert_ne!(a.phone_tag("+8613812345678"), b.phone_tag("+8613812345678"));
        assert_ne!(a.phone_tag("+8613812345678"), a.phone_tag("+8613812345679"));
        assert_ne!(a.search.as_bytes(), a.check_value());
        // The tag is keyed: it is not the plain SHA-256 of the number.
        use sha2::Digest;
        let plain: [u8; 32] = Sha256::digest(b"+8613812345678").into();
        assert_ne!(a.phone_tag("+8613812345678"), plain);
    }

    #[test]
    fn wrapped_keys_are_bound_to_the_person() {
        let keys = VaultKeys::derive(&MasterKey::from_bytes([7; 32]));
        let alice = PersonId::new_v7(Timestamp::from_unix_seconds(1));
        let bob = PersonId::new_v7(Timestamp::from_unix_seconds(2));
        let data_key = Secret32::random().expect("randomness");
        let (nonce, wrapped) = keys.wrap(alice, &data_key).expect("wrap");
        let back = keys.unwrap_key(alice, &nonce, &wrapped).expect("unwraps");
        assert_eq!(back.as_bytes(), data_key.as_bytes());
        assert!(!crate::vault::tests::contains_bytes(
            &wrapped,
            data_key.as_bytes()
        ));
        assert!(keys.unwrap_key(bob, &nonce, &wrapped).is_none());
        let other = VaultKeys::derive(&MasterKey::from_bytes([8; 32]));
        assert!(other.unwrap_key(alice, &nonce, &wrapped).is_none());
        for i in 0..WRAPPED_LEN {
            let mut damaged = wrapped;
            damaged[i] ^= 1;
            assert!(keys.unwrap_key(alice, &nonce, &damaged).is_none());
        }
        for i in 0..NONCE_LEN {
            let mut damaged = nonce;
            damaged[i] ^= 1;
            assert!(keys.unwrap_key(alice, &damaged, &wrapped).is_none());
        }
    }

    #[test]
    fn records_are_bound_to_the_person_and_refuse_damage() {
        let alice = PersonId::new_v7(Timestamp::from_unix_seconds(1));
        let bob = PersonId::new_v7(Timestamp::from_unix_seconds(2));
        let key = Secret32::random().expect("randomness");
        let details =
            ContactDetails::new(Some("李伟"), Some("13812345678"), None, None).expect("valid");
        let record = seal_record(alice, &key, &details).expect("seal");
        assert_eq!(open_record(alice, &key, &record).expect("open"), details);
        assert!(matches!(
            open_record(bob, &key, &record),
            Err(VaultError::DamagedRecord { person, .. }) if person == bob
        ));
        let other_key = Secret32::random().expect("randomness");
        assert!(open_record(alice, &other_key, &record).is_err());
        for len in 0..record.len() {
            assert!(open_record(alice, &key, &record[..len]).is_err(), "{len}");
        }
        for i in 0..record.len() {
            let mut damaged = record.clone();
            damaged[i] ^= 0x40;
            assert!(open_record(alice, &key, &damaged).is_err(), "{i}");
        }
        // Two seals of the same details differ (random nonces).
        assert_ne!(seal_record(alice, &key, &details).expect("seal"), record);
    }
}
