//! Single sign-on: `GET /api/v1/auth/oidc/login` sends the browser to the provider,
//! `GET /api/v1/auth/oidc/callback` receives it back, signs the user in and sends them on.
//! Failures go back to the login page with the reason, and to the audit log.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigil_proto::{ErrorCode, paths};

use crate::auth::ClientInfo;
use crate::auth::oidc::PendingSignIn;
use crate::error::HttpError;
use crate::http::cookies::{self, cookie_value};
use crate::http::percent_encode;
use crate::routes::account::safe_next;
use crate::sessions;
use crate::state::AppState;

const STATE_COOKIE: &str = "vigil_oidc_state";
/// Binds the sealed sign-in to its use.
const SEALING_CONTEXT: &str = "oidc/pending-sign-in";

#[derive(Deserialize)]
pub struct BeginQuery {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

fn redirect(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location.to_owned())]).into_response()
}

fn state_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{STATE_COOKIE}={value}; Path=/api/v1/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("a sealed state of base64 characters is a header value")
}

fn back_to_login(message: &str) -> Response {
    redirect(&format!("{}?error={}", paths::LOGIN_PAGE, percent_encode(message)))
}

pub async fn begin(State(state): State<Arc<AppState>>, Query(query): Query<BeginQuery>) -> Result<Response, HttpError> {
    let oidc =
        state.auth.oidc().ok_or_else(|| HttpError::new(ErrorCode::NotFound, "single sign-on is not configured"))?;
    match oidc.begin(safe_next(query.next.as_deref())).await {
        Ok((url, pending)) => {
            let sealed =
                state.secrets.seal(SEALING_CONTEXT, &pending.encode()).map_err(|error| HttpError::internal(&error))?;
            let mut response = redirect(&url);
            let secure = state.auth.secure_cookies();
            let max_age = crate::auth::oidc::PENDING_LIFETIME.as_secs();
            response.headers_mut().insert(header::SET_COOKIE, state_cookie(&sealed, max_age, secure));
            Ok(response)
        }
        Err(error) => {
            tracing::warn!(error = %error, "single sign-on cannot start");
            Ok(back_to_login(&error.to_string()))
        }
    }
}

/// A failed sign-in: audited, and the browser sent back to the login page with the reason.
async fn failed(state: &AppState, client: &ClientInfo, message: String) -> Result<Response, HttpError> {
    let message = sessions::sso_refused(&state.auth, &state.database, client, &message).await;
    let mut response = back_to_login(&message);
    response.headers_mut().insert(header::SET_COOKIE, state_cookie("", 0, state.auth.secure_cookies()));
    Ok(response)
}

pub async fn callback(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, HttpError> {
    let oidc =
        state.auth.oidc().ok_or_else(|| HttpError::new(ErrorCode::NotFound, "single sign-on is not configured"))?;
    let fail = |message: String| failed(&state, &client, message);
    if let Some(error) = query.error {
        let description = query.error_description.unwrap_or_default();
        return fail(format!("the identity provider refused the sign-in: {error} {description}").trim().to_owned())
            .await;
    }
    let (Some(code), Some(sign_in_state)) = (query.code, query.state) else {
        return fail("the identity provider's answer has no code or state".to_owned()).await;
    };
    // What this browser kept; a cookie that does not open (altered, or sealed under another
    // key) is as good as none.
    let kept = cookie_value(&headers, STATE_COOKIE)
        .and_then(|sealed| state.secrets.open(SEALING_CONTEXT, sealed).ok())
        .and_then(|text| PendingSignIn::decode(&text));
    let (identity, next) = match oidc.finish(&sign_in_state, kept, &code).await {
        Ok(signed_in) => signed_in,
        Err(error) => return fail(error.to_string()).await,
    };
    let user = match state.auth.sso_user(&identity).await {
        Ok(user) => user,
        Err(crate::auth::SsoUserError::Store(error)) => return Err(error.into()),
        Err(error) => return fail(format!("{} ({})", error, identity.username)).await,
    };
    let session = sessions::sso_sign_in(&state.auth, &state.database, &user, &client).await?;
    let mut response = redirect(&next);
    response.headers_mut().append(header::SET_COOKIE, cookies::session(&state.auth, &session.value));
    response.headers_mut().append(header::SET_COOKIE, state_cookie("", 0, state.auth.secure_cookies()));
    Ok(response)
}
