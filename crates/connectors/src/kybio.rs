//! KYBIO partner CRM (seed 003): `POST {base}/openapi/v1/customerOpenApi/queryByNumber`
//! with `{appId, customerNum}`; the member's `enable` is -1 deleted, 0 disabled,
//! 1 available.
//!
//! Signing: every request carries `Time-stamp` (Unix milliseconds) and `Data-signature`, the
//! upper-case hex MD5 of `appKey` followed by the exact JSON body bytes sent
//! ([`signature`]). That is how KYBIO's OpenAPI family (Pospal) signs; the timestamp is sent
//! but not signed. The seed also lists `Accept-encoding: gzip,deflate`; it is not sent
//! because this client does not decompress, and advertising it would invite a body it
//! cannot read.
//!
//! Answers are `{status: "success"|"error", messages, errorCode, data}`. `status: "error"`
//! is permanent (`KYBIO_REJECTED`, with KYBIO's `errorCode` in the detail) unless HTTP said
//! 5xx; `success` with `data: null` means no such member.
//!
//! **Our contract, not the seed's**: the disable call
//! `POST {base}/openapi/v1/customerOpenApi/updateBaseInfo` with
//! `{appId, customerInfo: {customerUid, enable: 0}}`, modelled on the same OpenAPI family;
//! confirm it with KYBIO before production. Erasure ([`Client::erase`]) is find, disable if
//! still available, then query again and verify `enable` is no longer 1.

use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, ErrorCode, Result, Retry};
use crate::http::{Answer, Http, HttpOptions};
use crate::ids::{Endpoint, Partner};
use crate::reply::{AlreadyDone, Reply};

/// KYBIO connector configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub base_url: Url,
    /// KYBIO's access credential sent in every body.
    pub app_id: String,
    /// The signing key; never sent.
    pub app_key: SecretString,
    #[serde(default)]
    pub http: HttpOptions,
}

/// A KYBIO member number (`customerNum`), e.g. `8008010001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberNumber(pub String);

/// A member's `enable` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i8", into = "i8")]
pub enum Enable {
    Deleted,
    Disabled,
    Available,
}

impl TryFrom<i8> for Enable {
    type Error = String;
    fn try_from(value: i8) -> Result<Self, String> {
        match value {
            -1 => Ok(Enable::Deleted),
            0 => Ok(Enable::Disabled),
            1 => Ok(Enable::Available),
            other => Err(format!("unknown enable value {other}")),
        }
    }
}

impl From<Enable> for i8 {
    fn from(value: Enable) -> i8 {
        match value {
            Enable::Deleted => -1,
            Enable::Disabled => 0,
            Enable::Available => 1,
        }
    }
}

/// The parts of a KYBIO member Closeout needs; the personal fields are not parsed at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub customer_uid: u64,
    pub number: MemberNumber,
    pub enable: Enable,
}

/// Body of `queryByNumber`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryByNumber {
    pub app_id: String,
    pub customer_num: MemberNumber,
}

/// Body of our disable call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBaseInfo {
    pub app_id: String,
    pub customer_info: CustomerInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerInfo {
    pub customer_uid: u64,
    pub enable: Enable,
}

/// KYBIO's answer envelope, success and failure alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    pub status: String,
    #[serde(default)]
    pub messages: Vec<String>,
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default = "none")]
    pub data: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

/// What erasure found and left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub customer_uid: u64,
    pub enable: Enable,
}

/// Upper-case hex MD5 of `app_key` followed by `body`.
pub fn signature(app_key: &str, body: &[u8]) -> String {
    let mut hasher = Md5::new();
    hasher.update(app_key.as_bytes());
    hasher.update(body);
    hex::encode_upper(hasher.finalize())
}

/// KYBIO client.
#[derive(Debug, Clone)]
pub struct Client {
    http: Http,
    config: Config,
}

impl Client {
    pub fn new(config: Config) -> Result<Self> {
        Ok(Self {
            http: Http::new(Partner::Kybio, &config.http)?,
            config,
        })
    }

    /// Finds a member by number; `Done(None)` when KYBIO has none.
    pub async fn query_by_number(
        &self,
        number: &MemberNumber,
        idempotency_key: &str,
    ) -> Result<Reply<Option<Member>>> {
        let body = QueryByNumber {
            app_id: self.config.app_id.clone(),
            customer_num: number.clone(),
        };
        let answer = self
            .post(
                Endpoint::KybioQueryByNumber,
                "openapi/v1/customerOpenApi/queryByNumber",
                &body,
                idempotency_key,
            )
            .await?;
        interpret::<Member>(&answer)
    }

    /// Our disable call (see the module docs).
    pub async fn disable(&self, customer_uid: u64, idempotency_key: &str) -> Result<Reply<()>> {
        let body = UpdateBaseInfo {
            app_id: self.config.app_id.clone(),
            customer_info: CustomerInfo {
                customer_uid,
                enable: Enable::Disabled,
            },
        };
        let answer = self
            .post(
                Endpoint::KybioDisable,
                "openapi/v1/customerOpenApi/updateBaseInfo",
                &body,
                idempotency_key,
            )
            .await?;
        interpret::<serde::de::IgnoredAny>(&answer).map(|reply| reply.map(|_| ()))
    }

    /// Find, disable if still available, verify. The sub-calls use the keys
    /// `{key}/find`, `{key}/disable` and `{key}/verify` so each stays idempotent on its own.
    pub async fn erase(
        &self,
        number: &MemberNumber,
        idempotency_key: &str,
    ) -> Result<Reply<Erasure>> {
        let found = self
            .query_by_number(number, &format!("{idempotency_key}/find"))
            .await?
            .into_data()
            .flatten();
        let Some(member) = found else {
            return Ok(Reply::AlreadyDone(AlreadyDone {
                data: None,
                code: Some(ErrorCode::KybioMemberNotFound),
                note: "KYBIO has no member with this number".into(),
            }));
        };
        if member.enable != Enable::Available {
            return Ok(Reply::AlreadyDone(AlreadyDone {
                data: Some(Erasure {
                    customer_uid: member.customer_uid,
                    enable: member.enable,
                }),
                code: None,
                note: "KYBIO already shows the member disabled or deleted".into(),
            }));
        }
        self.disable(member.customer_uid, &format!("{idempotency_key}/disable"))
            .await?;
        let verified = self
            .query_by_number(number, &format!("{idempotency_key}/verify"))
            .await?
            .into_data()
            .flatten();
        match verified {
            Some(member) if member.enable == Enable::Available => Err(Error::Retryable(Retry {
                partner: Partner::Kybio,
                endpoint: Endpoint::KybioQueryByNumber,
                code: ErrorCode::KybioStillEnabled,
                status: None,
                retry_after: None,
                ambiguous: true,
            })),
            Some(member) => Ok(Reply::Done(Erasure {
                customer_uid: member.customer_uid,
                enable: member.enable,
            })),
            // Disabling made the member vanish from queries: as erased as it gets.
            None => Ok(Reply::Done(Erasure {
                customer_uid: member.customer_uid,
                enable: Enable::Deleted,
            })),
        }
    }

    async fn post<B: Serialize>(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: &B,
        idempotency_key: &str,
    ) -> Result<Answer> {
        let url: Url = self.http.url(&self.config.base_url, &[path])?;
        // Signed over the exact bytes sent, so the body is serialised once here.
        let bytes = serde_json::to_vec(body)
            .map_err(|_| Error::config(Partner::Kybio, "request body not serialisable"))?;
        let timestamp = chrono::Utc::now().timestamp_millis().to_string();
        let signature = signature(self.config.app_key.expose_secret(), &bytes);
        let request = self
            .http
            .client()
            .post(url)
            .header(reqwest::header::USER_AGENT, "openApi")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header("Time-stamp", timestamp)
            .header("Data-signature", signature)
            .body(bytes);
        self.http.send(endpoint, idempotency_key, request).await
    }
}

fn interpret<T: DeserializeOwned>(answer: &Answer) -> Result<Reply<Option<T>>> {
    let envelope = if answer.is_success() {
        answer.parse_success::<Envelope<T>>()?
    } else {
        match answer.json::<Envelope<serde::de::IgnoredAny>>() {
            Some(envelope) if !answer.status.is_server_error() => Envelope {
                status: envelope.status,
                messages: envelope.messages,
                error_code: envelope.error_code,
                data: None,
            },
            _ => return Err(answer.unexpected()),
        }
    };
    if envelope.status.eq_ignore_ascii_case("success") {
        return Ok(answer.reply(envelope.data));
    }
    if envelope.status.eq_ignore_ascii_case("error") {
        let detail = Some(format!(
            "errorCode={}",
            envelope
                .error_code
                .map_or_else(|| "none".to_owned(), |c| c.to_string())
        ));
        return Err(answer.permanent(ErrorCode::KybioRejected, detail));
    }
    Err(answer.unexpected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_uppercase_md5_of_key_then_body() {
        // Expected values from `printf '<key><body>' | md5sum`.
        assert_eq!(signature("key", b"{}"), "3404A6F9C23CB7445C09C728551DB5C9");
        assert_eq!(
            signature("secret", br#"{"appId":"a","customerNum":"1"}"#),
            "D15D1EEF469BF00B84FA8D9178267552"
        );
    }
}
