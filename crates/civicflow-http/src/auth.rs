//! Bearer tokens. A token is `cft_` and 64 lowercase hex digits (256 random bits); the
//! service keeps only SHA-256 hashes, in an index folded from the log's `access-tokens`
//! stream, and compares hashes in constant time.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::http::{header, HeaderMap};
use civicflow_core::domain::access::{AccessState, Grant, TokenHash, TokenId};
use civicflow_core::domain::org::Acting;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The prefix of every token (so that a leaked one is easy to find in a repository scan).
pub const TOKEN_PREFIX: &str = "cft_";

/// A token's secret, as handed to its holder once.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(…)")
    }
}

impl TokenSecret {
    /// A new secret from the operating system's random source.
    ///
    /// # Errors
    /// When the operating system gives no randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)?;
        Ok(Self(format!("{TOKEN_PREFIX}{}", hex(&bytes))))
    }

    /// The text to give the holder.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its hash, as the log stores it.
    pub fn hash(&self) -> TokenHash {
        hash_token(&self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 hash of a presented token.
pub fn hash_token(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// Whether two hashes are equal, in time that does not depend on where they differ
/// (`subtle`'s comparison, which keeps the compiler from turning it into an early exit).
fn same(a: &TokenHash, b: &TokenHash) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.0.ct_eq(&b.0))
}

/// The valid tokens, by the id their hash gives (lookups never branch on the secret itself).
#[derive(Debug, Default)]
pub struct TokenIndex {
    grants: RwLock<HashMap<TokenId, Grant>>,
}

impl TokenIndex {
    /// The index of the valid tokens of `state`.
    pub fn from_state(state: &AccessState) -> Self {
        let index = Self::default();
        index.replace(state);
        index
    }

    /// Replaces the index with the valid tokens of `state`.
    pub fn replace(&self, state: &AccessState) {
        let grants = state
            .valid()
            .map(|grant| (grant.token.clone(), grant.clone()))
            .collect();
        *self
            .grants
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = grants;
    }

    /// Who a presented token acts as, with its id.
    pub fn lookup(&self, token: &str) -> Option<(TokenId, Acting)> {
        let hash = hash_token(token);
        let id = TokenId::of_hash(&hash);
        let grants = self
            .grants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let grant = grants.get(&id)?;
        same(&grant.hash, &hash).then(|| (id, grant.acting.clone()))
    }

    /// How many valid tokens there are.
    pub fn len(&self) -> usize {
        self.grants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The caller of a request: who their token acts as.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's id (never the secret). Nothing reads it since idempotency keys moved
    /// from the token to the actor (issue 13); kept for what is tied to one token, such as
    /// the live streams a revocation must end.
    #[allow(dead_code)]
    pub token: TokenId,
    /// Who it acts as.
    pub acting: Acting,
}

/// The token of a request's `Authorization: Bearer …` header (`Ok(None)`: no header).
///
/// # Errors
/// 401 for a header that is not a bearer token.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("use Authorization: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized("use Authorization: Bearer <token>"));
    }
    Ok(Some(token.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_prefixed_hex_of_256_bits_and_only_its_hash_is_kept() {
        let secret = TokenSecret::generate().expect("randomness");
        let text = secret.expose();
        assert!(text.starts_with(TOKEN_PREFIX));
        assert_eq!(text.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(TokenSecret::generate().expect("randomness"), secret);
        assert_eq!(secret.hash(), hash_token(text));
        assert!(!format!("{secret:?}").contains(&text[4..]));
    }

    #[test]
    fn hashes_compare_equal_only_when_equal() {
        let a = hash_token("cft_a");
        let mut b = a;
        assert!(same(&a, &b));
        b.0[31] ^= 1;
        assert!(!same(&a, &b));
    }
}
