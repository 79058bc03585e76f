//! Single sign-on with OpenID Connect, through the `openidconnect` crate and our own HTTP
//! client: discovery, the authorization-code flow with PKCE, `state` and `nonce`, ID-token
//! validation against the provider's JWKS (signature, issuer, audience, expiry, nonce), and
//! the mapping of a groups claim to a role.
//!
//! A sign-in in progress lives in the browser that began it: [`PendingSignIn`] (the `state`,
//! the PKCE verifier, the nonce, where to go next, the expiry) is sealed into a cookie, so the
//! server keeps nothing per sign-in that anonymous callers could fill, and a callback cannot
//! be completed in another browser. A finished `state` is remembered for the ten minutes its
//! cookie can live, so that it is used once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope as OidcScope,
    TokenResponse,
};
use vigil_proto::auth::Role;

use crate::config::OidcConfig;

/// How long a sign-in may take at the provider.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// How long discovery and the provider's keys are reused before being fetched again.
const DISCOVERY_LIFETIME: Duration = Duration::from_secs(600);
/// Finished states remembered at most. Past it the oldest are forgotten, which lets a replay
/// reach the provider, where the used authorization code is refused anyway; it never holds a
/// sign-in back.
const MAX_FINISHED: usize = 10_000;
/// The longest `next` path a sign-in carries.
const MAX_NEXT_BYTES: usize = 1024;

impl OidcConfig {
    /// The highest role any of `groups` maps to, else the default role.
    pub fn role_for(&self, groups: &[String]) -> Option<Role> {
        let member = |of: &[String]| groups.iter().any(|group| of.contains(group));
        if member(&self.admin_groups) {
            Some(Role::Admin)
        } else if member(&self.deployer_groups) {
            Some(Role::Deployer)
        } else if member(&self.viewer_groups) {
            Some(Role::Viewer)
        } else {
            self.default_role
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider cannot be reached or described itself wrongly: {0}")]
    Discovery(String),
    #[error("unknown, expired or already used sign-in state")]
    UnknownState,
    #[error("the sign-in state does not match the sign-in this browser started")]
    StateMismatch,
    #[error("no sign-in is in progress in this browser: it was started in another browser, expired or finished")]
    NoSignIn,
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    #[error("the identity provider did not issue a token: {0}")]
    TokenExchange(String),
    #[error("the ID token is invalid: {0}")]
    InvalidToken(String),
}

/// Who the provider says signed in, from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub username: String,
    pub display_name: String,
    pub groups: Vec<String>,
}

type ProviderClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// A sign-in in progress, as the browser keeps it (sealed by the caller into a cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    pub state: String,
    verifier: String,
    nonce: String,
    pub next: String,
    /// Unix seconds.
    expires_at: u64,
}

impl PendingSignIn {
    const VERSION: &'static str = "v1";

    /// Lines of text: the version, then each field (none can hold a line break: the state,
    /// verifier and nonce are URL-safe, `next` has passed `safe_next`).
    pub fn encode(&self) -> String {
        [Self::VERSION, &self.state, &self.verifier, &self.nonce, &self.expires_at.to_string(), &self.next].join("\n")
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut lines = text.splitn(6, '\n');
        if lines.next()? != Self::VERSION {
            return None;
        }
        let (state, verifier, nonce) = (lines.next()?, lines.next()?, lines.next()?);
        let expires_at = lines.next()?.parse().ok()?;
        let next = lines.next()?;
        Some(Self {
            state: state.to_owned(),
            verifier: verifier.to_owned(),
            nonce: nonce.to_owned(),
            next: next.to_owned(),
            expires_at,
        })
    }

    fn expired(&self) -> bool {
        unix_seconds() >= self.expires_at
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    /// The provider as discovery last described it, and when. Discovery runs without holding
    /// it: two sign-ins at a stale cache may both discover, and the later one is kept.
    provider: Mutex<Option<(Instant, ProviderClient)>>,
    /// States of finished sign-ins, with when they finished.
    finished: Mutex<HashMap<String, Instant>>,
}

/// Sends the library's requests with our client.
async fn send(client: reqwest::Client, request: HttpRequest) -> Result<HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
    let mut answer = http::Response::builder().status(response.status());
    if let Some(headers) = answer.headers_mut() {
        *headers = response.headers().clone();
    }
    let body = response.bytes().await?.to_vec();
    Ok(answer.body(body).expect("a status and headers taken from a response"))
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Result<Self, OidcError> {
        // Redirects are not followed: a provider's endpoints answer directly (and following
        // them would let a redirect point the server at internal addresses).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| OidcError::Discovery(error.to_string()))?;
        Ok(Self { config, http, provider: Mutex::new(None), finished: Mutex::new(HashMap::new()) })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    async fn provider(&self, refresh: bool) -> Result<ProviderClient, OidcError> {
        if !refresh {
            let cached = self.provider.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((fetched, client)) = cached.as_ref()
                && fetched.elapsed() < DISCOVERY_LIFETIME
            {
                return Ok(client.clone());
            }
        }
        let issuer =
            IssuerUrl::new(self.config.issuer_url.clone()).map_err(|error| OidcError::Discovery(error.to_string()))?;
        let http = |request| send(self.http.clone(), request);
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|error| OidcError::Discovery(crate::telemetry::error_chain(&error)))?;
        let redirect = RedirectUrl::new(self.config.redirect_url.clone())
            .map_err(|error| OidcError::Discovery(error.to_string()))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.as_ref().map(|secret| ClientSecret::new(secret.expose().to_owned())),
        )
        .set_redirect_uri(redirect);
        *self.provider.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((Instant::now(), client.clone()));
        Ok(client)
    }

    /// Whether the provider answers discovery (for the settings page).
    pub async fn check(&self) -> Result<(), OidcError> {
        self.provider(false).await.map(|_| ())
    }

    /// Starts a sign-in: the provider's authorization URL and what the browser keeps.
    pub async fn begin(&self, next: String) -> Result<(String, PendingSignIn), OidcError> {
        let client = self.provider(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for scope in self.config.scopes.iter().filter(|scope| *scope != "openid") {
            request = request.add_scope(OidcScope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let next = if next.len() > MAX_NEXT_BYTES { "/".to_owned() } else { next };
        let pending = PendingSignIn {
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
            next,
            expires_at: unix_seconds() + PENDING_LIFETIME.as_secs(),
        };
        Ok((url.to_string(), pending))
    }

    /// Completes a sign-in: checks the state against what the browser kept (`None` when it
    /// kept nothing) and that it was not used before, exchanges the code with the PKCE
    /// verifier, validates the ID token and returns who signed in and where to go next.
    pub async fn finish(
        &self,
        state: &str,
        kept: Option<PendingSignIn>,
        code: &str,
    ) -> Result<(Identity, String), OidcError> {
        let pending = kept.ok_or(OidcError::NoSignIn)?;
        if pending.state != state {
            return Err(OidcError::StateMismatch);
        }
        if pending.expired() {
            return Err(OidcError::UnknownState);
        }
        {
            let mut finished = self.finished.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            finished.retain(|_, at| at.elapsed() < PENDING_LIFETIME);
            if finished.contains_key(state) {
                return Err(OidcError::UnknownState);
            }
            if finished.len() >= MAX_FINISHED
                && let Some(oldest) = finished.iter().min_by_key(|(_, at)| **at).map(|(state, _)| state.clone())
            {
                finished.remove(&oldest);
            }
            finished.insert(state.to_owned(), Instant::now());
        }
        let nonce = Nonce::new(pending.nonce.clone());
        let client = self.provider(false).await?;
        let http = |request| send(self.http.clone(), request);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|error| OidcError::TokenExchange(error.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|error| OidcError::TokenExchange(crate::telemetry::error_chain(&error)))?;
        let id_token = response.id_token().ok_or_else(|| OidcError::TokenExchange("no id_token".to_owned()))?;
        let verified = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(claims) => Ok(claims.clone()),
            // The provider may have rotated its keys: fetch them again once.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                let client = self.provider(true).await?;
                id_token.claims(&client.id_token_verifier(), &nonce).cloned()
            }
            Err(error) => Err(error),
        };
        let claims = verified.map_err(|error| OidcError::InvalidToken(error.to_string()))?;
        // The signature is verified: the payload of this same token can be read for the claims
        // the library does not model (the groups claim has no standard name).
        let payload =
            payload_of(&id_token.to_string()).ok_or_else(|| OidcError::InvalidToken("unreadable".to_owned()))?;
        let text = |name: &str| payload.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
        let subject = claims.subject().as_str().to_owned();
        let username = text(&self.config.username_claim).or_else(|| text("email")).unwrap_or_else(|| subject.clone());
        let groups = match payload.get(&self.config.groups_claim) {
            Some(serde_json::Value::Array(values)) => {
                values.iter().filter_map(serde_json::Value::as_str).map(str::to_owned).collect()
            }
            Some(serde_json::Value::String(group)) => vec![group.clone()],
            _ => Vec::new(),
        };
        let identity = Identity {
            issuer: claims.issuer().as_str().to_owned(),
            subject,
            display_name: text("name").unwrap_or_default(),
            username,
            groups,
        };
        Ok((identity, pending.next))
    }
}

fn payload_of(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OidcConfig {
        serde_json::from_value(serde_json::json!({
            "issuer_url": "https://id.example.com",
            "client_id": "vigil",
            "redirect_url": "https://vigil.example.com/api/v1/auth/oidc/callback",
            "admin_groups": ["sre-leads"],
            "deployer_groups": ["sre"],
            "viewer_groups": ["engineering"],
        }))
        .unwrap()
    }

    #[test]
    fn a_pending_sign_in_reads_back_as_written() {
        let pending = PendingSignIn {
            state: "s-1_x".to_owned(),
            verifier: "v".repeat(43),
            nonce: "n0nce".to_owned(),
            next: "/logs?q=a b".to_owned(),
            expires_at: 1_800_000_000,
        };
        assert_eq!(PendingSignIn::decode(&pending.encode()), Some(pending.clone()));
        assert_eq!(PendingSignIn::decode("v0\ns\nv\nn\n1\n/"), None);
        assert_eq!(PendingSignIn::decode("v1\ns\nv\nn\nsoon\n/"), None);
        assert!(!pending.expired());
        assert!(PendingSignIn { expires_at: 0, ..pending }.expired());
    }

    #[test]
    fn groups_map_to_the_highest_role() {
        let config = config();
        let groups = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        assert_eq!(config.role_for(&groups(&["engineering", "sre"])), Some(Role::Deployer));
        assert_eq!(config.role_for(&groups(&["sre-leads"])), Some(Role::Admin));
        assert_eq!(config.role_for(&groups(&["sales"])), None);
        let with_default = OidcConfig { default_role: Some(Role::Viewer), ..config };
        assert_eq!(with_default.role_for(&[]), Some(Role::Viewer));
        assert!(with_default.validate().is_ok());
        let without_openid = OidcConfig { scopes: vec!["email".to_owned()], ..with_default };
        assert!(without_openid.validate().unwrap_err().to_string().contains("openid"));
    }
}
