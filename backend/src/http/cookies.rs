//! The cookies of a browser session and the request headers they are read from.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::auth::Auth;

pub const SESSION_COOKIE: &str = "vigil_session";

/// The cookie that keeps a browser signed in for the session's lifetime.
pub fn session(auth: &Auth, value: &str) -> HeaderValue {
    let max_age = auth.config().session_lifetime_hours.saturating_mul(3600);
    let secure = if auth.secure_cookies() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("a cookie of hex digits is a header value")
}

/// The cookie that ends a browser's session.
pub fn cleared(auth: &Auth) -> HeaderValue {
    let secure = if auth.secure_cookies() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"))
        .expect("a constant header value")
}

/// The value of the session cookie, when the request carries one.
pub fn session_cookie_value(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The value of the cookie `name`, when the request carries it (and it is not empty).
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(candidate, _)| *candidate == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("theme=dark; vigil_session=abc123; other=1"));
        assert_eq!(session_cookie_value(&headers), Some("abc123"));
        headers.insert(header::COOKIE, HeaderValue::from_static("vigil_session="));
        assert_eq!(session_cookie_value(&headers), None);
    }
}
