//! Machine authentication: API tokens with a scope, checked on every `/api/*` route.
//!
//! A token is `vgl_` followed by 64 hex digits of OS randomness (256 bits). Only its SHA-256
//! hash is stored: with that much entropy a slow password hash adds nothing but latency on
//! every ingest request. The token itself is shown once, when created.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use vigil_proto::ErrorCode;

use crate::error::HttpError;
use crate::startup::AppState;
use crate::store::{Database, NewToken, StoreError, TokenRow};

const TOKEN_PREFIX: &str = "vgl_";

/// What a token may do. `admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Ingest,
    Read,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }

    pub fn allows(self, required: Scope) -> bool {
        self == Self::Admin || self == required
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ingest" => Ok(Self::Ingest),
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown scope {other:?}: expected ingest, read or admin")),
        }
    }
}

/// The caller a request was authenticated as, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_name: String,
    pub scope: Scope,
}

pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>()))
}

#[derive(Debug, thiserror::Error)]
pub enum CreateTokenError {
    #[error("token name must be 1 to 64 characters of letters, digits, '-', '_' and '.'")]
    InvalidName,
    #[error("the operating system's random source failed: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a token and returns it in clear, the only time it is available.
pub async fn create_token(
    database: &Database,
    name: &str,
    scope: Scope,
) -> Result<(String, TokenRow), CreateTokenError> {
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character));
    if !valid_name {
        return Err(CreateTokenError::InvalidName);
    }
    let token = generate_token().map_err(CreateTokenError::Random)?;
    let row = database.insert_token(NewToken { name, scope: scope.as_str(), token_hash: &hash_token(&token) }).await?;
    Ok((token, row))
}

/// Finds the caller of a bearer token; `None` when the token is unknown.
pub async fn authenticate(database: &Database, token: &str) -> Result<Option<Caller>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let Some(row) = database.token_by_hash(&hash_token(token)).await? else {
        return Ok(None);
    };
    let Ok(scope) = row.scope.parse() else {
        return Ok(None);
    };
    let now = crate::store::now_millis();
    // Recorded at most once a minute per token, so that ingest does not write on every request.
    if row.last_used_at_millis.is_none_or(|last| now - last > 60_000) {
        database.touch_token(row.id, now).await?;
    }
    Ok(Some(Caller { token_name: row.name, scope }))
}

/// The token in an `Authorization` header: `Bearer <token>`, or, for shippers that speak the
/// Elasticsearch API, `ApiKey <token>`, `ApiKey base64(<id>:<token>)` (Filebeat's `api_key`) and
/// `Basic base64(<user>:<token>)` (a password field).
pub fn presented_token(authorization: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, credentials) = authorization.trim().split_once(' ')?;
    let credentials = credentials.trim();
    let decoded_secret = || {
        let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':').map(|(_, secret)| secret.to_owned())
    };
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(credentials.to_owned()),
        "apikey" if credentials.starts_with(TOKEN_PREFIX) => Some(credentials.to_owned()),
        "apikey" | "basic" => decoded_secret(),
        _ => None,
    }
}

/// Middleware: the request must carry `Authorization: Bearer <token>` of a scope that allows
/// `required`.
pub async fn require_scope(
    State((state, required)): State<(Arc<AppState>, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented =
        request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(presented_token);
    let Some(token) = presented else {
        return HttpError::new(ErrorCode::Unauthorized, "missing bearer token: send Authorization: Bearer <token>")
            .into_response();
    };
    let caller = match authenticate(&state.database, &token).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return HttpError::new(ErrorCode::Unauthorized, "unknown or revoked token").into_response(),
        Err(error) => return HttpError::internal(&error).into_response(),
    };
    if !caller.scope.allows(required) {
        return HttpError::new(
            ErrorCode::Forbidden,
            format!(
                "token {:?} has scope {} but this route needs {}",
                caller.token_name,
                caller.scope.as_str(),
                required.as_str()
            ),
        )
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let first = generate_token().unwrap();
        let second = generate_token().unwrap();
        assert_ne!(first, second);
        assert_eq!(first.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_token(&first).len(), 64);
        assert_ne!(hash_token(&first), hash_token(&second));
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn tokens_are_read_from_bearer_api_key_and_basic_credentials() {
        use base64::Engine;
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        assert_eq!(presented_token("Bearer vgl_abc").as_deref(), Some("vgl_abc"));
        assert_eq!(presented_token("ApiKey vgl_abc").as_deref(), Some("vgl_abc"));
        assert_eq!(presented_token(&format!("ApiKey {}", encode("filebeat:vgl_abc"))).as_deref(), Some("vgl_abc"));
        assert_eq!(presented_token(&format!("Basic {}", encode("fluentbit:vgl_abc"))).as_deref(), Some("vgl_abc"));
        assert_eq!(presented_token("Basic not-base64"), None);
        assert_eq!(presented_token("Digest x"), None);
        assert_eq!(presented_token("vgl_abc"), None);
    }

    #[test]
    fn admin_allows_every_scope_and_others_only_their_own() {
        assert!(Scope::Admin.allows(Scope::Ingest));
        assert!(Scope::Admin.allows(Scope::Read));
        assert!(Scope::Ingest.allows(Scope::Ingest));
        assert!(!Scope::Ingest.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Ingest));
        assert!(!Scope::Read.allows(Scope::Admin));
    }
}
