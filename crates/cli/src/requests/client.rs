//! The operations API over HTTP: the credential, the connection, and every way a call can
//! go wrong, each with what to do next and the exit status it ends the command with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use url::Url;

use super::exit;
use super::render::clean;

/// The environment variable that holds the operations credential.
pub const KEY_ENV: &str = "CLOSEOUT_OPS_KEY";

/// How often a `BUSY` (a worker holds the request) or `RATE_LIMITED` answer is tried
/// again. Both mean nothing was applied, so trying again cannot act twice.
const BUSY_RETRIES: u32 = 3;
/// The longest wait honoured from a `Retry-After`, so an interactive command never hangs
/// for a server's idea of a long back-off.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything that can stop a `closeout requests` command, with its exit status
/// ([`Error::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("--url / CLOSEOUT_OPS_URL: {0}")]
    BadUrl(String),
    #[error(
        "no operations credential: set {KEY_ENV} or pass --key-file PATH (a file holding the key)"
    )]
    NoCredential,
    #[error("cannot read the operations credential from {path}: {cause}; check --key-file", path = .path.display())]
    KeyFile {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("the operations credential in {origin} {problem}")]
    BadCredential {
        origin: String,
        problem: &'static str,
    },
    #[error("cannot reach the Closeout API at {url}: {cause}; check --url or CLOSEOUT_OPS_URL")]
    Connect { url: String, cause: String },
    #[error(
        "{url} does not answer like the Closeout API ({what}); check --url or CLOSEOUT_OPS_URL"
    )]
    NotTheApi { url: String, what: String },
    #[error("the API does not accept this credential: {} ({}); check {KEY_ENV} or --key-file: the key's SHA-256 hash (`closeout api hash-key`) must be configured under [api.operators.<name>] on the server", .0.message, .0.code)]
    Unauthenticated(ApiError),
    #[error("this credential may not do that: {} ({}); use an operations credential ([api.operators.<name>]) with the role it needs: read to list and show, write for every action", .0.message, .0.code)]
    Forbidden(ApiError),
    #[error("no such request ({}); find its ID with `closeout requests list`", .0.code)]
    NotFound(ApiError),
    #[error("not allowed in the request's current state: {} ({})", .0.message, .0.code)]
    NotAllowed(ApiError),
    #[error("the API refused it: {} ({} {})", .0.message, .0.status, .0.code)]
    Refused(ApiError),
    #[error("the API refused the input: {} ({} {})", .0.message, .0.status, .0.code)]
    Invalid(ApiError),
    #[error("the API cannot do it right now: {} ({} {}{}); try again later", .0.message, .0.status, .0.code, .0.quote())]
    Unavailable(ApiError),
    #[error("bulk {action} would act on {count} request(s) and was NOT applied; check them (above), then run again with --yes, or with --dry-run to only list")]
    Unconfirmed { action: &'static str, count: usize },
    #[error("bulk {action}: {failed} of {count} request(s) failed (listed above)")]
    BulkFailures {
        action: &'static str,
        failed: usize,
        count: usize,
    },
}

impl Error {
    /// The process exit status this error ends the command with (see [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) | Self::BadUrl(_) | Self::Invalid(_) | Self::Unconfirmed { .. } => {
                exit::USAGE
            }
            Self::NoCredential
            | Self::KeyFile { .. }
            | Self::BadCredential { .. }
            | Self::Unauthenticated(_)
            | Self::Forbidden(_) => exit::CREDENTIAL,
            Self::Connect { .. } | Self::NotTheApi { .. } => exit::CONNECT,
            Self::NotFound(_)
            | Self::NotAllowed(_)
            | Self::Refused(_)
            | Self::BulkFailures { .. } => exit::REFUSED,
            Self::Unavailable(_) => exit::UNAVAILABLE,
        }
    }

    /// The API's own error body, for `--json`.
    pub fn api_body(&self) -> Option<&Value> {
        match self {
            Self::Unauthenticated(e)
            | Self::Forbidden(e)
            | Self::NotFound(e)
            | Self::NotAllowed(e)
            | Self::Refused(e)
            | Self::Invalid(e)
            | Self::Unavailable(e) => Some(&e.body),
            _ => None,
        }
    }
}

/// An error answered in the API's body `{"error": {"code", "message", …}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    /// Cleaned of control characters: it is printed to a terminal.
    pub message: String,
    /// `x-request-id`, which the server logs the cause of a 5xx under.
    pub request_id: Option<String>,
    pub body: Value,
}

impl ApiError {
    fn parse(status: StatusCode, text: &str, request_id: Option<String>) -> Option<Self> {
        let body: Value = serde_json::from_str(text).ok()?;
        let error = body.get("error")?;
        let code = error.get("code")?.as_str()?.to_owned();
        let message = clean(error.get("message")?.as_str()?);
        Some(Self {
            status: status.as_u16(),
            code,
            message,
            request_id,
            body,
        })
    }

    /// " , x-request-id …" for server failures, the one thing worth quoting to whoever
    /// runs the server.
    fn quote(&self) -> String {
        match &self.request_id {
            Some(id) if self.status >= 500 => format!(", x-request-id {}", clean(id)),
            _ => String::new(),
        }
    }

    /// Whether the same call may be sent again at once: nothing was applied.
    fn try_again(&self) -> bool {
        matches!(self.code.as_str(), "BUSY" | "RATE_LIMITED")
    }
}

/// The operations credential. Its `Debug` is redacted (secrecy), and no error message
/// ever contains it.
#[derive(Debug)]
pub struct Credential(SecretString);

impl Credential {
    /// From `--key-file` when given (the flag wins, like every flag over the environment),
    /// else from `CLOSEOUT_OPS_KEY`. Surrounding whitespace, such as the file's final
    /// newline, is not part of the key.
    pub fn load(key_file: Option<&Path>) -> Result<Self, Error> {
        let (text, origin) = match key_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|cause| Error::KeyFile {
                    path: path.to_owned(),
                    cause,
                })?;
                (text, path.display().to_string())
            }
            None => match std::env::var(KEY_ENV) {
                Ok(text) => (text, KEY_ENV.to_owned()),
                Err(std::env::VarError::NotPresent) => return Err(Error::NoCredential),
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::BadCredential {
                        origin: KEY_ENV.to_owned(),
                        problem: "is not valid UTF-8",
                    })
                }
            },
        };
        let key = text.trim();
        if key.is_empty() {
            return Err(Error::BadCredential {
                origin,
                problem: "is empty",
            });
        }
        // Checked here rather than left to the HTTP library, whose error would not say
        // which setting to fix.
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::BadCredential {
                origin,
                problem: "holds characters a key cannot have (only printable ASCII, no spaces)",
            });
        }
        Ok(Self(SecretString::from(key.to_owned())))
    }
}

/// A client of one Closeout API with one credential.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// The URL as given, for messages.
    shown: String,
    credential: Credential,
    timeout: Duration,
}

impl Client {
    /// A client of the API at `url`, with the credential from `key_file` or
    /// `CLOSEOUT_OPS_KEY`. The URL is checked first: a typo in it is a usage error
    /// whatever the credential.
    pub fn new(url: &str, key_file: Option<&Path>, timeout: Duration) -> Result<Self, Error> {
        let base = base_url(url)?;
        Self::with_credential(base, url, Credential::load(key_file)?, timeout)
    }

    fn with_credential(
        base: Url,
        url: &str,
        credential: Credential,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            // A redirect is reported rather than followed: the operator should point --url
            // at the API itself, and the credential goes nowhere it was not sent.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("closeout-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Connect {
                url: url.to_owned(),
                cause: e.to_string(),
            })?;
        Ok(Self {
            http,
            base,
            shown: url.trim_end_matches('/').to_owned(),
            credential,
            timeout,
        })
    }

    /// A warning when the credential would cross a network unencrypted.
    pub fn cleartext_warning(&self) -> Option<String> {
        let loopback = match self.base.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => true,
        };
        (self.base.scheme() == "http" && !loopback).then(|| {
            format!(
                "warning: {} is plain http: the operations credential crosses the network unencrypted; use https",
                self.shown
            )
        })
    }

    /// Reads an answer into the view a table is drawn from.
    pub fn decode<T: serde::de::DeserializeOwned>(&self, answer: Value) -> Result<T, Error> {
        serde_json::from_value(answer)
            .map_err(|e| self.not_the_api(format!("an answer this CLI cannot read: {e}")))
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Error> {
        self.call(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        self.call(Method::POST, path, &[], Some(body)).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| Error::BadUrl(e.to_string()))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut tries = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.credential.0.expose_secret());
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| self.unreachable(&e))?;
            let status = response.status();
            let header = |name: reqwest::header::HeaderName| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let request_id = header(reqwest::header::HeaderName::from_static("x-request-id"));
            let retry_after = header(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs);
            let location = header(reqwest::header::LOCATION);
            let text = response.text().await.map_err(|e| self.unreachable(&e))?;
            if status.is_success() {
                return serde_json::from_str(&text).map_err(|_| {
                    self.not_the_api(format!("HTTP {status} with a body that is not JSON"))
                });
            }
            if status.is_redirection() {
                let to = location.map_or_else(String::new, |l| format!(" to {}", clean(&l)));
                return Err(self.not_the_api(format!("HTTP {status}, a redirect{to}")));
            }
            let Some(error) = ApiError::parse(status, &text, request_id) else {
                return Err(self.not_the_api(format!("HTTP {status} without the API's error body")));
            };
            if error.try_again() && tries < BUSY_RETRIES {
                tries += 1;
                tokio::time::sleep(retry_after.min(MAX_RETRY_WAIT)).await;
                continue;
            }
            return Err(self.classify(error));
        }
    }

    fn classify(&self, error: ApiError) -> Error {
        match (error.status, error.code.as_str()) {
            (401, _) => Error::Unauthenticated(error),
            (403, _) => Error::Forbidden(error),
            // The API itself answered, but has no such route: --url carries a wrong path.
            (404, "ROUTE_NOT_FOUND") => self.not_the_api(format!(
                "{} {}: {}",
                error.status, error.code, error.message
            )),
            (404, _) => Error::NotFound(error),
            (409, "BUSY") | (429, _) | (500.., _) => Error::Unavailable(error),
            (409, _) => Error::NotAllowed(error),
            (400 | 413 | 415 | 422, _) => Error::Invalid(error),
            _ => Error::Refused(error),
        }
    }

    fn not_the_api(&self, what: String) -> Error {
        Error::NotTheApi {
            url: self.shown.clone(),
            what,
        }
    }

    fn unreachable(&self, error: &reqwest::Error) -> Error {
        let cause = if error.is_timeout() {
            format!(
                "no answer within {} (raise --timeout if the API is just slow)",
                humantime::format_duration(self.timeout)
            )
        } else {
            // The innermost cause ("Connection refused (os error 111)", "failed to lookup
            // address information: …") is what tells an operator what is wrong.
            let mut cause: &dyn std::error::Error = error;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            cause.to_string()
        };
        Error::Connect {
            url: self.shown.clone(),
            cause,
        }
    }
}

/// The API's base URL, ending in `/` so that paths join below it (an API behind a proxy
/// at `https://host/closeout/` keeps its prefix).
fn base_url(text: &str) -> Result<Url, Error> {
    let mut url = Url::parse(text.trim()).map_err(|e| {
        Error::BadUrl(format!(
            "`{}` is not a URL ({e}); write e.g. http://127.0.0.1:8080",
            clean(text)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::BadUrl(format!(
            "`{}` is not an http:// or https:// URL; write e.g. http://127.0.0.1:8080",
            clean(text)
        )));
    }
    // Not echoed: the URL holds a password.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::BadUrl(format!(
            "remove the user and password from the URL; the credential comes from {KEY_ENV} or --key-file"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::BadUrl(format!(
            "`{}` has a query or fragment; give the API's base URL only",
            clean(text)
        )));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_keep_their_prefix_and_refuse_what_cannot_work() {
        let url = base_url("https://ops.example/closeout").unwrap();
        assert_eq!(
            url.join("v1/ops/requests").unwrap().as_str(),
            "https://ops.example/closeout/v1/ops/requests"
        );
        let url = base_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            url.join("v1/ops/requests").unwrap().as_str(),
            "http://127.0.0.1:8080/v1/ops/requests"
        );
        for bad in [
            "127.0.0.1:8080",
            "localhost:8080",
            "ftp://x/",
            "http://h/?a=1",
        ] {
            assert!(
                matches!(base_url(bad), Err(Error::BadUrl(_))),
                "{bad} must be refused"
            );
        }
        let Err(Error::BadUrl(problem)) = base_url("https://ops:hunter2@ops.example/") else {
            panic!("a URL with a password must be refused");
        };
        assert!(!problem.contains("hunter2"), "{problem}");
    }

    #[test]
    fn answers_map_to_documented_exit_codes() {
        let url = "http://127.0.0.1:8080";
        let client = Client::with_credential(
            base_url(url).unwrap(),
            url,
            Credential(SecretString::from("k".to_owned())),
            Duration::from_secs(1),
        )
        .unwrap();
        let error = |status: u16, code: &str| ApiError {
            status,
            code: code.to_owned(),
            message: "m".into(),
            request_id: Some("rid".into()),
            body: Value::Null,
        };
        let cases = [
            (401, "UNAUTHENTICATED", exit::CREDENTIAL),
            (403, "FORBIDDEN", exit::CREDENTIAL),
            (404, "NOT_FOUND", exit::REFUSED),
            (404, "ROUTE_NOT_FOUND", exit::CONNECT),
            (409, "NOT_ALLOWED", exit::REFUSED),
            (409, "BUSY", exit::UNAVAILABLE),
            (400, "INVALID_FIELD", exit::USAGE),
            (415, "UNSUPPORTED_MEDIA_TYPE", exit::USAGE),
            (429, "RATE_LIMITED", exit::UNAVAILABLE),
            (503, "UNAVAILABLE", exit::UNAVAILABLE),
            (500, "INTERNAL", exit::UNAVAILABLE),
        ];
        for (status, code, exit_code) in cases {
            let mapped = client.classify(error(status, code));
            assert_eq!(mapped.exit_code(), exit_code, "{status} {code}: {mapped}");
        }
        let internal = client.classify(error(500, "INTERNAL")).to_string();
        assert!(internal.contains("x-request-id rid"), "{internal}");
    }

    #[test]
    fn the_credential_is_never_in_debug_output() {
        let credential = Credential(SecretString::from("s3cret-key-value".to_owned()));
        assert!(!format!("{credential:?}").contains("s3cret"));
        let url = "http://10.0.0.1:8080";
        let client = Client::with_credential(
            base_url(url).unwrap(),
            url,
            credential,
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
        assert!(client.cleartext_warning().is_some(), "plain http off-host");
    }
}
