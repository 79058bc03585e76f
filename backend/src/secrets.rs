//! Secrets at rest: integration secrets are sealed with XChaCha20-Poly1305 under a 256-bit key
//! from the configuration (`secrets.key`, base64) or a key file (`secrets.key_file`; created
//! with mode 0600 under the data directory on first start when neither is given).
//!
//! A sealed value is `v1:` + base64(24-byte random nonce ‖ ciphertext ‖ tag). The associated
//! data binds it to where it is stored (`integration/<name>/<secret>`), so a ciphertext copied
//! into another row does not open.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const VERSION: &str = "v1:";
const NONCE_BYTES: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the secrets key must be 32 bytes, base64-encoded (it decodes to {0} bytes)")]
    KeyLength(usize),
    #[error("the secrets key is not base64")]
    KeyEncoding,
    #[error("cannot read or create the key file {0}")]
    KeyFile(String, #[source] std::io::Error),
    #[error("the operating system's random source failed")]
    Random,
    #[error("a stored secret does not open with this key (wrong key, or the value was altered)")]
    Open,
}

/// Seals and opens secrets. Its `Debug` does not show the key.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SecretBox([redacted])")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8]) -> Result<Self, SecretsError> {
        let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| SecretsError::KeyLength(key.len()))?;
        Ok(Self { cipher })
    }

    pub fn from_base64(key: &str) -> Result<Self, SecretsError> {
        let key = STANDARD.decode(key.trim()).map_err(|_| SecretsError::KeyEncoding)?;
        Self::from_key(&key)
    }

    /// Reads the key file, creating it with a fresh random key when it does not exist.
    pub fn from_key_file(path: &Path) -> Result<Self, SecretsError> {
        let file_error = |error| SecretsError::KeyFile(path.display().to_string(), error);
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|_| SecretsError::Random)?;
                write_private(path, STANDARD.encode(key).as_bytes()).map_err(file_error)?;
                Self::from_key(&key)
            }
            Err(error) => Err(file_error(error)),
        }
    }

    pub fn seal(&self, context: &str, plaintext: &str) -> Result<String, SecretsError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|_| SecretsError::Random)?;
        let ciphertext = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            .map_err(|_| SecretsError::Random)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{VERSION}{}", STANDARD.encode(sealed)))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<String, SecretsError> {
        let bytes =
            sealed.strip_prefix(VERSION).and_then(|body| STANDARD.decode(body).ok()).ok_or(SecretsError::Open)?;
        if bytes.len() < NONCE_BYTES {
            return Err(SecretsError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SecretsError::Open)?;
        let plaintext = self
            .cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map_err(|_| SecretsError::Open)?;
        String::from_utf8(plaintext).map_err(|_| SecretsError::Open)
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let secrets = SecretBox::from_key(&[7; 32]).unwrap();
        let sealed = secrets.seal("integration/ci/token", "hunter2").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, secrets.seal("integration/ci/token", "hunter2").unwrap(), "nonces are random");
        assert_eq!(secrets.open("integration/ci/token", &sealed).unwrap(), "hunter2");
        assert!(matches!(secrets.open("integration/other/token", &sealed), Err(SecretsError::Open)));
        let other_key = SecretBox::from_key(&[8; 32]).unwrap();
        assert!(matches!(other_key.open("integration/ci/token", &sealed), Err(SecretsError::Open)));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(secrets.open("integration/ci/token", &String::from_utf8(altered).unwrap()).is_err());
    }

    #[test]
    fn keys_must_be_32_bytes_and_key_files_are_created_private() {
        assert!(matches!(SecretBox::from_key(&[1; 16]), Err(SecretsError::KeyLength(16))));
        assert!(matches!(SecretBox::from_base64("not base64!"), Err(SecretsError::KeyEncoding)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/secrets.key");
        let first = SecretBox::from_key_file(&path).unwrap();
        let sealed = first.seal("c", "value").unwrap();
        let again = SecretBox::from_key_file(&path).unwrap();
        assert_eq!(again.open("c", &sealed).unwrap(), "value");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
