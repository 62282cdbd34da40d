//! Credential checks shared by the simulated partners.

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use base64::Engine;

/// The bearer token of the request, if it has one (`Bearer` is matched case-insensitively,
/// as CRMX's seed writes it lower-case).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

pub(crate) fn bearer_is(headers: &HeaderMap, expected: &str) -> bool {
    bearer(headers).is_some_and(|token| constant_time_eq(token.as_bytes(), expected.as_bytes()))
}

/// The username and password of an HTTP Basic header.
pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Compares secrets without returning early on the first difference, so a test of the
/// sandbox's auth does not teach timing tricks by example.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
