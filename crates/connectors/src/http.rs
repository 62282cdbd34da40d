//! The HTTP plumbing every connector shares: client construction (timeouts, no redirects),
//! sending with the idempotency key, reading bodies under a cap, and the generic mapping of
//! statuses and transport failures to [`Error`].
//!
//! Mapping decisions that apply to every partner unless its module says otherwise:
//! - a 2xx whose body is garbage or oversized is **retryable and ambiguous**: the partner
//!   most likely applied the call, so the safe move is to ask again with the same
//!   idempotency key (which a well-behaved partner answers with the original result), and
//!   a step that keeps failing this way ends stuck for operations rather than compensated;
//! - a 4xx whose body is not a documented error is **permanent** (`UNAUTHORIZED` for 401 and
//!   403, `RESPONSE_TOO_LARGE` if oversized, `CLIENT_ERROR` otherwise), except 408 and 429,
//!   which are retryable;
//! - any 5xx is retryable (honouring `Retry-After`), ambiguous unless it is a 503;
//! - a 3xx is permanent (`UNEXPECTED_REDIRECT`): redirects are never followed because a
//!   redirected POST may be replayed against a host we never configured;
//! - a timeout is retryable and ambiguous; a refused connection is retryable and not
//!   ambiguous (nothing was sent).

use std::time::Duration;

use std::str::FromStr;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, ErrorCode, Failure, Result, Retry};
use crate::ids::{Endpoint, Partner};
use crate::reply::{AlreadyDone, Reply};
use crate::{IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER};

/// Longest `Retry-After` honoured; a partner asking for more gets this, so a misconfigured
/// header cannot park a workflow for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Timeouts and limits of one partner's HTTP client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpOptions {
    /// Time allowed to establish the TCP (and TLS) connection.
    pub connect_timeout_ms: u64,
    /// Time allowed for the whole call, body included.
    pub timeout_ms: u64,
    /// Largest response body read; anything longer is answered as `RESPONSE_TOO_LARGE`.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 3_000,
            timeout_ms: 15_000,
            max_body_bytes: 256 * 1024,
        }
    }
}

/// One partner's HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    partner: Partner,
    max_body_bytes: usize,
}

impl Http {
    pub(crate) fn new(partner: Partner, options: &HttpOptions) -> Result<Self> {
        if options.timeout_ms == 0 || options.connect_timeout_ms == 0 {
            return Err(Error::config(partner, "timeouts must be greater than zero"));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_millis(options.connect_timeout_ms))
            .timeout(Duration::from_millis(options.timeout_ms))
            .user_agent(concat!("closeout/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| Error::config(partner, "the HTTP client could not be built"))?;
        Ok(Self {
            client,
            partner,
            max_body_bytes: options.max_body_bytes,
        })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `base` with `path` appended segment by segment, so IDs in the path are
    /// percent-encoded and the base's own path prefix is kept.
    pub(crate) fn url(&self, base: &Url, path: &[&str]) -> Result<Url> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::config(self.partner, "base_url cannot be a base"))?
            .pop_if_empty()
            .extend(path.iter().flat_map(|part| part.split('/')));
        Ok(url)
    }

    /// Sends the request with the idempotency key and reads the body under the cap.
    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
        idempotency_key: &str,
        request: RequestBuilder,
    ) -> Result<Answer> {
        let key = HeaderValue::from_str(idempotency_key).map_err(|_| {
            Error::config(
                self.partner,
                "the idempotency key is not a valid header value",
            )
        })?;
        let result = request.header(IDEMPOTENCY_KEY_HEADER, key).send().await;
        let response = match result {
            Ok(response) => response,
            Err(error) => return Err(self.transport_error(endpoint, idempotency_key, &error)),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match self.read_capped(response).await {
            Ok(body) => body,
            Err(error) => return Err(self.transport_error(endpoint, idempotency_key, &error)),
        };
        tracing::info!(
            partner = %self.partner,
            endpoint = %endpoint,
            status = status.as_u16(),
            idempotency_key,
            oversized = matches!(body, Body::Oversized),
            "partner answered"
        );
        Ok(Answer {
            partner: self.partner,
            endpoint,
            status,
            retry_after: retry_after(&headers),
            replayed: headers
                .get(IDEMPOTENT_REPLAYED_HEADER)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true")),
            body,
        })
    }

    async fn read_capped(&self, mut response: reqwest::Response) -> reqwest::Result<Body> {
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body_bytes as u64)
        {
            return Ok(Body::Oversized);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Ok(Body::Oversized);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Body::Complete(body))
    }

    fn transport_error(
        &self,
        endpoint: Endpoint,
        idempotency_key: &str,
        error: &reqwest::Error,
    ) -> Error {
        // Connect is checked first: a connect timeout never sent the request, so it is not
        // ambiguous even though reqwest also flags it as a timeout.
        let (code, ambiguous) = if error.is_connect() {
            (ErrorCode::ConnectFailed, false)
        } else if error.is_timeout() {
            (ErrorCode::Timeout, true)
        } else if error.is_builder() {
            return Error::config(self.partner, "the request could not be built");
        } else {
            (ErrorCode::TransportFailed, true)
        };
        // The reqwest error text carries the URL, which for CRMX holds a phone number; only
        // the code is logged.
        tracing::warn!(
            partner = %self.partner,
            endpoint = %endpoint,
            idempotency_key,
            code = %code,
            "partner call failed"
        );
        Error::Retryable(Retry {
            partner: self.partner,
            endpoint,
            code,
            status: None,
            retry_after: None,
            ambiguous,
        })
    }
}

/// A partner API on one base URL with a static Bearer token (SkyJoy, Galaxy Pay, CRMX and the
/// HTTP mail API): every request it builds already carries the token.
#[derive(Debug, Clone)]
pub(crate) struct BearerApi {
    http: Http,
    base_url: Url,
    access_token: SecretString,
}

impl BearerApi {
    pub(crate) fn new(
        partner: Partner,
        base_url: Url,
        access_token: SecretString,
        options: &HttpOptions,
    ) -> Result<Self> {
        Ok(Self {
            http: Http::new(partner, options)?,
            base_url,
            access_token,
        })
    }

    /// A request to `path` under the base URL (see [`Http::url`]), with the token set.
    pub(crate) fn request(&self, method: Method, path: &[&str]) -> Result<RequestBuilder> {
        let url = self.http.url(&self.base_url, path)?;
        Ok(self
            .http
            .client()
            .request(method, url)
            .bearer_auth(self.access_token.expose_secret()))
    }

    /// [`Http::send`].
    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
        idempotency_key: &str,
        request: RequestBuilder,
    ) -> Result<Answer> {
        self.http.send(endpoint, idempotency_key, request).await
    }
}

/// A response body, read up to the cap.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Complete(Vec<u8>),
    Oversized,
}

/// A partner's HTTP answer, before the partner module interprets it.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) partner: Partner,
    pub(crate) endpoint: Endpoint,
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) replayed: bool,
    pub(crate) body: Body,
}

impl Answer {
    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body parsed as `T`, or `None` when it is oversized or not valid `T`.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Option<T> {
        match &self.body {
            Body::Complete(bytes) => serde_json::from_slice(bytes).ok(),
            Body::Oversized => None,
        }
    }

    /// Interprets a 2xx body as `T`; garbage is retryable and ambiguous (see module docs).
    pub(crate) fn parse_success<T: DeserializeOwned>(&self) -> Result<T> {
        match &self.body {
            Body::Oversized => Err(self.retryable(ErrorCode::ResponseTooLarge, true)),
            Body::Complete(bytes) => serde_json::from_slice(bytes)
                .map_err(|_| self.retryable(ErrorCode::MalformedResponse, true)),
        }
    }

    /// The documented error key of a failure answer, read from the partner's error body `E`
    /// by `key`; the body goes along for partners that put more in it. A body that is not
    /// `E`, or a key the partner does not document, is [`Answer::unexpected`].
    pub(crate) fn error_key<E: DeserializeOwned, K: FromStr>(
        &self,
        key: impl FnOnce(&E) -> &str,
    ) -> Result<(K, E)> {
        let body = self.json::<E>().ok_or_else(|| self.unexpected())?;
        let parsed = key(&body).parse::<K>().map_err(|_| self.unexpected())?;
        Ok((parsed, body))
    }

    /// Wraps data in `Done`, or `AlreadyDone` when the partner replayed a stored answer for
    /// a repeated idempotency key.
    pub(crate) fn reply<T>(&self, data: T) -> Reply<T> {
        if self.replayed {
            Reply::AlreadyDone(AlreadyDone {
                data: Some(data),
                code: None,
                note: "the partner replayed its original answer for this idempotency key".into(),
            })
        } else {
            Reply::Done(data)
        }
    }

    pub(crate) fn retryable(&self, code: ErrorCode, ambiguous: bool) -> Error {
        Error::Retryable(Retry {
            partner: self.partner,
            endpoint: self.endpoint,
            code,
            status: Some(self.status.as_u16()),
            retry_after: self.retry_after,
            ambiguous,
        })
    }

    pub(crate) fn permanent(&self, code: ErrorCode, detail: Option<String>) -> Error {
        Error::Permanent(Failure {
            partner: self.partner,
            endpoint: self.endpoint,
            code,
            status: Some(self.status.as_u16()),
            detail,
        })
    }

    /// A documented partner error code: retryable when the partner answered 5xx (its own
    /// trouble), permanent otherwise.
    pub(crate) fn documented(&self, code: ErrorCode, detail: Option<String>) -> Error {
        if self.status.is_server_error() {
            self.retryable(code, self.status != StatusCode::SERVICE_UNAVAILABLE)
        } else {
            self.permanent(code, detail)
        }
    }

    /// The generic mapping for an answer no partner-specific rule recognised.
    pub(crate) fn unexpected(&self) -> Error {
        let status = self.status;
        if status.is_success() {
            return self.retryable(ErrorCode::MalformedResponse, true);
        }
        if status.is_server_error() {
            return self.retryable(
                ErrorCode::ServerError,
                status != StatusCode::SERVICE_UNAVAILABLE,
            );
        }
        match status {
            StatusCode::TOO_MANY_REQUESTS => self.retryable(ErrorCode::RateLimited, false),
            StatusCode::REQUEST_TIMEOUT => self.retryable(ErrorCode::RequestTimeout, true),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                self.permanent(ErrorCode::Unauthorized, None)
            }
            _ if status.is_redirection() => self.permanent(ErrorCode::UnexpectedRedirect, None),
            _ if matches!(self.body, Body::Oversized) => {
                self.permanent(ErrorCode::ResponseTooLarge, None)
            }
            _ if status.is_client_error() => self.permanent(ErrorCode::ClientError, None),
            _ => self.retryable(ErrorCode::MalformedResponse, true),
        }
    }
}

/// Parses `Retry-After` as delta-seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates_and_is_capped() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers("999999")), Some(MAX_RETRY_AFTER));
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon")), None);
    }

    #[test]
    fn url_keeps_base_prefix_and_encodes_segments() {
        let http = Http::new(Partner::Skyjoy, &HttpOptions::default()).unwrap();
        let base = Url::parse("https://example.test/user-management/").unwrap();
        let url = http
            .url(&base, &["api/partner/v1", "user profile"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://example.test/user-management/api/partner/v1/user%20profile"
        );
    }
}
