//! A stand-in OpenID Connect provider on loopback, written from the specifications (OpenID
//! Connect Core 1.0 and Discovery 1.0, RFC 6749, RFC 7636 PKCE, RFC 7517/7518 JWK with RS256):
//! discovery, `authorize` (it approves the user the test chose), `token` (client secret, code
//! once, redirect URI, PKCE S256) and `jwks`. ID tokens are real RS256 JWTs signed with a key
//! generated per provider; the test can ask for a tampered, mis-addressed or expired one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "vigil";
pub const CLIENT_SECRET: &str = "vigil-client-secret";

/// Who the provider signs in at the next `authorize`.
#[derive(Clone, Debug)]
pub struct ProviderUser {
    pub subject: String,
    pub username: String,
    pub name: String,
    pub groups: Vec<String>,
}

/// How the next ID token is spoiled, to test that Vigil refuses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spoil {
    Nothing,
    /// A byte of the signature changed.
    Signature,
    /// Issued for another client.
    Audience,
    /// Expired ten minutes ago.
    Expired,
    /// Signed by a key the JWKS does not hold.
    UnknownKey,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: String,
    user: ProviderUser,
}

struct Inner {
    issuer: String,
    key: RsaPrivateKey,
    other_key: RsaPrivateKey,
    user: Mutex<ProviderUser>,
    spoil: Mutex<Spoil>,
    codes: Mutex<HashMap<String, Grant>>,
    token_requests: Mutex<u32>,
}

#[derive(Clone)]
pub struct TestProvider {
    inner: Arc<Inner>,
}

impl TestProvider {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let mut rng = rsa::rand_core::OsRng;
        let key = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let other_key = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let provider = Self {
            inner: Arc::new(Inner {
                issuer,
                key,
                other_key,
                user: Mutex::new(ProviderUser {
                    subject: "248289761001".to_owned(),
                    username: "jane".to_owned(),
                    name: "Jane Doe".to_owned(),
                    groups: vec!["engineering".to_owned()],
                }),
                spoil: Mutex::new(Spoil::Nothing),
                codes: Mutex::new(HashMap::new()),
                token_requests: Mutex::new(0),
            }),
        };
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        provider
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    pub fn sign_in_as(&self, user: ProviderUser) {
        *self.inner.user.lock().unwrap() = user;
    }

    pub fn spoil_next_token(&self, spoil: Spoil) {
        *self.inner.spoil.lock().unwrap() = spoil;
    }

    pub fn token_requests(&self) -> u32 {
        *self.inner.token_requests.lock().unwrap()
    }
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (status, Json(json!({"error": code, "error_description": description}))).into_response()
}

async fn discovery(State(provider): State<TestProvider>) -> Json<Value> {
    let issuer = provider.issuer();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "groups"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "name", "preferred_username", "groups"],
    }))
}

fn public_jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    let public = key.to_public_key();
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    })
}

async fn jwks(State(provider): State<TestProvider>) -> Json<Value> {
    Json(json!({"keys": [public_jwk(&provider.inner.key, "key-1")]}))
}

async fn authorize(State(provider): State<TestProvider>, Query(query): Query<HashMap<String, String>>) -> Response {
    let param = |name: &str| query.get(name).cloned().unwrap_or_default();
    if param("response_type") != "code" {
        return error(StatusCode::BAD_REQUEST, "unsupported_response_type", "only code");
    }
    if param("client_id") != CLIENT_ID {
        return error(StatusCode::BAD_REQUEST, "unauthorized_client", "unknown client");
    }
    if !param("scope").split(' ').any(|scope| scope == "openid") {
        return error(StatusCode::BAD_REQUEST, "invalid_scope", "openid is required");
    }
    if param("code_challenge_method") != "S256" || param("code_challenge").is_empty() {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "PKCE S256 is required");
    }
    let redirect_uri = param("redirect_uri");
    let mut code_bytes = [0u8; 16];
    getrandom::fill(&mut code_bytes).unwrap();
    let code = URL_SAFE_NO_PAD.encode(code_bytes);
    let user = provider.inner.user.lock().unwrap().clone();
    provider.inner.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            client_id: param("client_id"),
            redirect_uri: redirect_uri.clone(),
            nonce: query.get("nonce").cloned(),
            code_challenge: param("code_challenge"),
            user,
        },
    );
    let state = url::form_urlencoded::byte_serialize(param("state").as_bytes()).collect::<String>();
    let location = format!("{redirect_uri}?code={code}&state={state}");
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

fn sign(key: &RsaPrivateKey, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let signature = SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes()).to_vec();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

async fn token(State(provider): State<TestProvider>, headers: HeaderMap, body: Bytes) -> Response {
    *provider.inner.token_requests.lock().unwrap() += 1;
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let param = |name: &str| form.get(name).cloned().unwrap_or_default();
    // Client authentication: HTTP Basic (client_secret_basic) or the form (client_secret_post).
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let decode =
        |text: &str| url::form_urlencoded::parse(format!("x={text}").as_bytes()).next().map(|(_, v)| v.into_owned());
    let (client_id, client_secret) = match basic.as_deref().and_then(|pair| pair.split_once(':')) {
        Some((id, secret)) => (decode(id).unwrap_or_default(), decode(secret).unwrap_or_default()),
        None => (param("client_id"), param("client_secret")),
    };
    if client_id != CLIENT_ID || client_secret != CLIENT_SECRET {
        return error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    }
    if param("grant_type") != "authorization_code" {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code");
    }
    // A code is used once.
    let Some(grant) = provider.inner.codes.lock().unwrap().remove(&param("code")) else {
        return error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or used code");
    };
    if grant.client_id != client_id || grant.redirect_uri != param("redirect_uri") {
        return error(StatusCode::BAD_REQUEST, "invalid_grant", "code issued to another client or redirect URI");
    }
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(param("code_verifier").as_bytes()));
    if challenge != grant.code_challenge {
        return error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
    }
    let spoil = std::mem::replace(&mut *provider.inner.spoil.lock().unwrap(), Spoil::Nothing);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "iss": provider.issuer(),
        "sub": grant.user.subject,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "name": grant.user.name,
        "preferred_username": grant.user.username,
        "groups": grant.user.groups,
    });
    if let Some(nonce) = grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    match spoil {
        Spoil::Audience => claims["aud"] = json!("another-client"),
        Spoil::Expired => {
            claims["iat"] = json!(now - 1200);
            claims["exp"] = json!(now - 600);
        }
        _ => {}
    }
    let mut id_token = if spoil == Spoil::UnknownKey {
        sign(&provider.inner.other_key, "key-1", &claims)
    } else {
        sign(&provider.inner.key, "key-1", &claims)
    };
    if spoil == Spoil::Signature {
        let (input, signature) = id_token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[10] ^= 0x01;
        id_token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes));
    }
    Json(json!({"access_token": "at-opaque", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        .into_response()
}
