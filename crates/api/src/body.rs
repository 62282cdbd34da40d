//! Strict request decoding: JSON bodies must say `application/json`, stay under the body
//! limit, and contain no unknown fields; a value that does not fit is reported with the
//! path of its field (`serde_path_to_error`, the crate axum's own `Json` uses for this).
//! Query strings go through the same rules.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::AppState;

/// A JSON body decoded strictly.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned> StrictJson<T> {
    pub fn decode(bytes: &[u8]) -> Result<T, Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Error::MalformedBody(inner.to_string())
            } else {
                // serde's messages start with what was found, which may be the caller's
                // own personal data; they get it back, but it is never logged.
                let field = if path == "." { "body".to_owned() } else { path };
                Error::field(strip_position(&inner.to_string()), field)
            }
        })?;
        deserializer
            .end()
            .map_err(|e| Error::MalformedBody(e.to_string()))?;
        Ok(value)
    }
}

/// serde_json appends " at line 1 column 42", which adds nothing once the field is named.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Reads the whole body under the configured limit; 413 above it.
pub async fn read_body(request: Request, state: &AppState) -> Result<Bytes, Error> {
    let limit = state.inner.body_limit;
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| Error::BodyTooLarge { limit })
}

pub fn require_json(request: &Request) -> Result<(), Error> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for StrictJson<T> {
    type Rejection = Error;
    async fn from_request(request: Request, state: &AppState) -> Result<Self, Error> {
        require_json(&request)?;
        let bytes = read_body(request, state).await?;
        Self::decode(&bytes).map(Self)
    }
}

/// A query string decoded strictly (unknown parameters are refused by the target type).
#[derive(Debug)]
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Self)
            .map_err(|e| {
                let path = e.path().to_string();
                Error::field(e.into_inner().to_string(), path)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<u32>,
    }

    #[test]
    fn unknown_fields_and_bad_values_name_the_field() {
        let err = StrictJson::<Body>::decode(br#"{"name":"a","items":[],"extra":1}"#).unwrap_err();
        assert!(err.message().contains("extra"), "{err}");
        let err = StrictJson::<Body>::decode(br#"{"name":"a","items":[1,"x"]}"#).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidField { field, .. } if field == "items[1]"),
            "{err:?}"
        );
        let err = StrictJson::<Body>::decode(b"{not json").unwrap_err();
        assert_eq!(err.code(), "MALFORMED_BODY");
        let err = StrictJson::<Body>::decode(br#"{"name":"a","items":[]} trailing"#).unwrap_err();
        assert_eq!(err.code(), "MALFORMED_BODY");
    }
}
