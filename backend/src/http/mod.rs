//! What every HTTP adapter (the API's routes and the UI's server functions) shares: who the
//! caller is (the `authorize` middleware), the session's cookies, and reading headers.

pub mod authorize;
pub mod cookies;

use axum::http::{HeaderMap, HeaderName};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// A header's value, when it is text.
pub fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// What a path or query value may keep as it is: RFC 3986's unreserved characters and `/`.
const KEPT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// `text` percent-encoded for a URL's path or query.
pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, KEPT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_characters_and_slashes() {
        assert_eq!(percent_encode("/logs?q=a b&x=é~"), "/logs%3Fq%3Da%20b%26x%3D%C3%A9~");
        assert_eq!(percent_encode("Az09-_.~/"), "Az09-_.~/");
    }
}
