//! Signing in and out, the current session, and the signed-in user's own password and
//! personal tokens.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use vigil_proto::auth::{CreatedToken, LoginRequest, NewToken, PasswordChange, SessionInfo, TokenInfo};
use vigil_proto::{ErrorCode, paths};

use super::bounded_body;
use crate::accounts;
use crate::auth::{Caller, ClientInfo, LoginError};
use crate::error::HttpError;
use crate::http::cookies::{self, session_cookie_value};
use crate::http::{header_text, percent_encode};
use crate::routes::admin::parse_id;
use crate::sessions;
use crate::state::AppState;

const MAX_FORM_BYTES: usize = 16 << 10;

/// The login form's fields (the JSON body has the first two).
#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// Where to go after signing in: a path of this site, never another origin. Only a path that
/// starts with one `/` followed by neither `/` nor `\\`, without control characters,
/// whitespace or backslashes, passes: browsers drop tabs and newlines from a `Location`, so
/// `/\t/evil.example` would read as `//evil.example`.
pub fn safe_next(next: Option<&str>) -> String {
    let is_safe = |next: &str| {
        let mut characters = next.chars();
        characters.next() == Some('/')
            && !matches!(characters.next(), Some('/' | '\\'))
            && !next.chars().any(|character| character.is_control() || character.is_whitespace() || character == '\\')
    };
    match next {
        Some(next) if is_safe(next) => next.to_owned(),
        _ => "/".to_owned(),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    header_text(headers, header::CONTENT_TYPE).is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded"))
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location.to_owned())]).into_response()
}

/// `POST /api/v1/auth/login`: JSON `{username, password}` answers JSON; the login form
/// (`application/x-www-form-urlencoded`) is answered with a redirect.
pub async fn login(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let body = bounded_body(body, MAX_FORM_BYTES).await?;
    let form = is_form(&headers);
    let request: LoginForm = if form {
        serde_urlencoded_form(&body)?
    } else {
        let request: LoginRequest = serde_json::from_slice(&body)
            .map_err(|error| HttpError::new(ErrorCode::InvalidJson, format!("invalid login request: {error}")))?;
        LoginForm { username: request.username, password: request.password, next: None }
    };
    let previous = session_cookie_value(&headers);
    let outcome =
        sessions::sign_in(&state.auth, &state.database, previous, &request.username, &request.password, &client).await;
    match outcome {
        Ok(session) => {
            let cookie = cookies::session(&state.auth, &session.value);
            let mut response = if form {
                see_other(&safe_next(request.next.as_deref()))
            } else {
                Json(session.caller.session_info()).into_response()
            };
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            Ok(response)
        }
        Err(error) => {
            if form && !matches!(error, LoginError::Store(_) | LoginError::Random) {
                let next = safe_next(request.next.as_deref());
                return Ok(see_other(&format!(
                    "{}?error={}&next={}",
                    paths::LOGIN_PAGE,
                    percent_encode(&error.to_string()),
                    percent_encode(&next)
                )));
            }
            Err(error.into())
        }
    }
}

fn serde_urlencoded_form(body: &[u8]) -> Result<LoginForm, HttpError> {
    let mut username = None;
    let mut password = None;
    let mut next = None;
    let text =
        std::str::from_utf8(body).map_err(|_| HttpError::new(ErrorCode::InvalidParameter, "the form is not UTF-8"))?;
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)
            .ok_or_else(|| HttpError::new(ErrorCode::InvalidParameter, "the form is not URL-encoded"))?;
        match name {
            "username" => username = Some(value),
            "password" => password = Some(value),
            "next" => next = Some(value),
            _ => {}
        }
    }
    match (username, password) {
        (Some(username), Some(password)) => Ok(LoginForm { username, password, next }),
        _ => Err(HttpError::new(ErrorCode::InvalidParameter, "the form needs username and password")),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = text.get(index + 1..index + 3)?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                index += 2;
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8(decoded).ok()
}

/// `POST /api/v1/auth/logout`: ends the session of the cookie, if any. A form post is sent to
/// the login page.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    if let Some(cookie) = session_cookie_value(&headers)
        && let Some(caller) = state.auth.session(cookie).await?
    {
        sessions::sign_out(&state.auth, &state.database, &caller, &client).await?;
    }
    let mut response =
        if is_form(&headers) || header_text(&headers, header::ACCEPT).is_some_and(|a| a.contains("text/html")) {
            see_other(paths::LOGIN_PAGE)
        } else {
            StatusCode::NO_CONTENT.into_response()
        };
    response.headers_mut().insert(header::SET_COOKIE, cookies::cleared(&state.auth));
    Ok(response)
}

/// `GET /api/v1/auth/session`.
pub async fn session(Extension(caller): Extension<Caller>) -> Result<Json<SessionInfo>, HttpError> {
    caller
        .session_info()
        .map(Json)
        .ok_or_else(|| HttpError::new(ErrorCode::Forbidden, "this route needs a signed-in browser session"))
}

/// `POST /api/v1/auth/password`: every session of the user ends; this browser gets a new one.
pub async fn change_password(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<Response, HttpError> {
    let body = bounded_body(body, MAX_FORM_BYTES).await?;
    let change: PasswordChange = serde_json::from_slice(&body)
        .map_err(|error| HttpError::new(ErrorCode::InvalidJson, format!("invalid password change: {error}")))?;
    let session = accounts::change_password(&state.auth, &state.database, &caller, &client, &change).await?;
    let mut response = Json(session.caller.session_info()).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookies::session(&state.auth, &session.value));
    Ok(response)
}

/// `GET /api/v1/auth/tokens`: the user's personal tokens.
pub async fn my_tokens(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TokenInfo>>, HttpError> {
    let owner = accounts::personal_owner(&caller)?;
    Ok(Json(accounts::tokens(&state.database, Some(owner)).await?))
}

/// `POST /api/v1/auth/tokens`: a personal token, shown once.
pub async fn create_my_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<CreatedToken>), HttpError> {
    let body = bounded_body(body, MAX_FORM_BYTES).await?;
    let request: NewToken = serde_json::from_slice(&body)
        .map_err(|error| HttpError::new(ErrorCode::InvalidJson, format!("invalid token request: {error}")))?;
    let owner = accounts::personal_owner(&caller)?;
    let actor = client.actor(Some(&caller));
    let created = accounts::create_token(&state.auth, &state.database, &actor, &request, Some(owner)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `DELETE /api/v1/auth/tokens/{id}`: revokes one of the user's own tokens.
pub async fn revoke_my_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    let id = parse_id(&id)?;
    let owner = accounts::personal_owner(&caller)?;
    let actor = client.actor(Some(&caller));
    accounts::revoke_token(&state.auth, &state.database, &actor, id, Some(owner)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_paths_of_this_site_are_followed_after_sign_in() {
        for good in ["/", "/logs?q=level:error", "/dashboard?uid=a%2Fb", "/a/b//c"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r//evil.example",
            "/ /evil.example",
            "/\u{0}x",
            "/\u{a0}/evil.example",
            "https://evil.example",
            "evil.example",
            "",
            "/x\\y",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?} passed");
        }
        assert_eq!(safe_next(None), "/");
    }
}
