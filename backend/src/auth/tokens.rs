//! API tokens: `vgl_<public id>_<secret>`, 64 bits of public id to find the row and 256 bits
//! of secret, of which only an argon2id hash is stored. Verifying argon2 on every ingest
//! request would cost tens of milliseconds of CPU, so a verified token is remembered in memory
//! for a minute, keyed by the SHA-256 of the whole token (the token itself is never kept).
//! Revocation and user changes clear the memory at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "vgl_";
const PUBLIC_ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_ENTRIES: usize = 10_000;

/// A token in clear and its parts.
pub struct Generated {
    pub token: String,
    pub public_id: String,
}

pub fn generate() -> Result<Generated, getrandom::Error> {
    let mut public = [0u8; PUBLIC_ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut public)?;
    getrandom::fill(&mut secret)?;
    let public_id = hex(&public);
    Ok(Generated { token: format!("{TOKEN_PREFIX}{public_id}_{}", hex(&secret)), public_id })
}

/// The public id and the secret of a well-formed token.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (public_id, secret) = rest.split_once('_')?;
    let well_formed = public_id.len() == PUBLIC_ID_BYTES * 2
        && secret.len() == SECRET_BYTES * 2
        && public_id.bytes().chain(secret.bytes()).all(|byte| byte.is_ascii_hexdigit());
    well_formed.then_some((public_id, secret))
}

pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Tokens verified recently.
pub struct VerifiedTokens<T> {
    entries: Mutex<HashMap<String, (Instant, i64, T)>>,
}

impl<T: Clone> VerifiedTokens<T> {
    pub fn new() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, token: &str) -> Option<T> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(&sha256_hex(token))
            .filter(|(verified_at, _, _)| verified_at.elapsed() < CACHE_TTL)
            .map(|(_, _, value)| value.clone())
    }

    pub fn insert(&self, token: &str, token_id: i64, value: T) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (verified_at, _, _)| verified_at.elapsed() < CACHE_TTL);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(sha256_hex(token), (Instant::now(), token_id, value));
    }

    pub fn forget_token(&self, token_id: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|_, (_, id, _)| *id != token_id);
    }

    pub fn forget_all(&self) {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_split_into_their_parts() {
        let first = generate().unwrap();
        let second = generate().unwrap();
        assert_ne!(first.token, second.token);
        assert_eq!(first.token.len(), TOKEN_PREFIX.len() + 16 + 1 + 64);
        let (public_id, secret) = split(&first.token).unwrap();
        assert_eq!(public_id, first.public_id);
        assert_eq!(secret.len(), 64);
        assert_eq!(split("vgl_abc"), None);
        assert_eq!(split(&first.token.replace("vgl_", "xyz_")), None);
        assert_eq!(split(&format!("{}g", &first.token[..first.token.len() - 1])), None);
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn the_memory_of_verified_tokens_forgets_on_revocation() {
        let verified = VerifiedTokens::new();
        verified.insert("vgl_a", 1, "alice");
        verified.insert("vgl_b", 2, "bob");
        assert_eq!(verified.get("vgl_a"), Some("alice"));
        verified.forget_token(1);
        assert_eq!(verified.get("vgl_a"), None);
        assert_eq!(verified.get("vgl_b"), Some("bob"));
        verified.forget_all();
        assert_eq!(verified.get("vgl_b"), None);
    }
}
