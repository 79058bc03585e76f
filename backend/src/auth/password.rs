//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane, OWASP's
//! recommendation), run on the blocking pool so that a sign-in never stalls the runtime.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// The longest password accepted, in bytes (and in characters for a new password).
pub const MAX_BYTES: usize = 1024;

/// Hashes and verifications running at once. Each takes 19 MiB and a core for tens of
/// milliseconds: a burst of sign-ins or first token uses waits here instead of growing the
/// memory by 19 MiB a request.
const CONCURRENT_HASHES: usize = 4;

fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_HASHES);
    &PERMITS
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {0} characters")]
    TooShort(usize),
    #[error("password must be at most 1024 characters")]
    TooLong,
    #[error("cannot hash the password")]
    Hash,
}

/// Checks the rules a new password must follow.
pub fn validate(password: &str, min_length: usize) -> Result<(), PasswordError> {
    let length = password.chars().count();
    if length < min_length {
        return Err(PasswordError::TooShort(min_length));
    }
    if length > MAX_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// The argon2id PHC string of `password`, with a random salt.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    // The permit goes with the work: a request that gives up does not free it early.
    let permit = hashing_permits().acquire().await.map_err(|_| PasswordError::Hash)?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        hash_blocking(&password)
    })
    .await
    .map_err(|_| PasswordError::Hash)?
}

pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    Argon2::default().hash_password(password.as_bytes()).map(|hash| hash.to_string()).map_err(|_| PasswordError::Hash)
}

/// Whether `password` matches the PHC string `hash`; a malformed hash never matches.
pub async fn verify(password: String, hash: String) -> bool {
    let Ok(permit) = hashing_permits().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        verify_blocking(&password, &hash)
    })
    .await
    .unwrap_or(false)
}

pub fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash no password matches, verified against when the user is unknown so that the answer
/// takes as long as for a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_blocking("no password matches this decoy").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let first = hash_blocking("correct horse").unwrap();
        let second = hash_blocking("correct horse").unwrap();
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second);
        assert!(verify_blocking("correct horse", &first));
        assert!(!verify_blocking("correct hors", &first));
        assert!(!verify_blocking("correct horse", "not a hash"));
    }

    #[test]
    fn rules_bound_the_length() {
        assert!(matches!(validate("short", 12), Err(PasswordError::TooShort(12))));
        assert!(validate("long enough password", 12).is_ok());
        assert!(matches!(validate(&"x".repeat(1025), 12), Err(PasswordError::TooLong)));
    }
}
