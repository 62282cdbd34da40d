//! Vietjet partner API (seed 002, sections 3.1 and 3.2): `deletion` tells Vietjet a SkyJoy
//! account was closed, `remove-token` removes the member's saved payment-card tokens.
//!
//! Both are `POST {base}/api/partner/v1/...` with HTTP Basic auth and the body
//! `{"skyjoyId","phone"}`; success is HTTP 200, failures are 4xx/5xx with
//! `{status, message, errorCode, errorKey}`. Vietjet issues one Basic user per caller
//! (`SKYJOY`, `GPAY`), so the configuration holds a credential per [`Caller`].
//!
//! Mapping of the documented `errorKey`s, whatever the HTTP status:
//! - `USER_NOT_EXIST` → already done: Vietjet holds no such user, so no tokens remain and
//!   there is nothing to mark deleted. It is also what a retry sees after an ambiguous
//!   first call that Vietjet applied, which is why it must not fail the workflow;
//! - `INVALID_TOKEN_USER` → permanent (`VIETJET_INVALID_TOKEN_USER`): fix the credentials;
//! - `MISSING_REQUIRE_FIELD` → permanent (`VIETJET_MISSING_REQUIRE_FIELD`). The seed's
//!   description of this key talks about duplicate requests, but its name and message say
//!   a field is missing, and resending the same body cannot supply it.
//!
//! Vietjet answers 200 whether or not tokens were present, so "tokens already gone" is
//! indistinguishable from "removed now" unless Vietjet replays a stored answer.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use strum::{Display, EnumString};
use url::Url;

use crate::error::{Error, ErrorCode, Result};
use crate::http::{Answer, Http, HttpOptions};
use crate::ids::{Endpoint, Partner, Phone, SkyjoyId};
use crate::reply::Reply;

/// Vietjet connector configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// For example `https://api.stg.vietjetict.com/user-management`.
    pub base_url: Url,
    /// The Basic user Vietjet issued to SkyJoy.
    pub skyjoy: Option<Credentials>,
    /// The Basic user Vietjet issued to Galaxy Pay.
    pub gpay: Option<Credentials>,
    #[serde(default)]
    pub http: HttpOptions,
}

/// HTTP Basic credentials; the password is redacted in `Debug`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

/// On whose behalf Closeout calls Vietjet; selects the Basic credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum Caller {
    Skyjoy,
    Gpay,
}

/// The request body of both endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRef {
    pub skyjoy_id: SkyjoyId,
    pub phone: Phone,
}

/// Vietjet's failure body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub status: bool,
    pub message: String,
    #[serde(default)]
    pub error_code: Option<i64>,
    pub error_key: String,
}

/// The `errorKey`s the seed documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorKey {
    UserNotExist,
    InvalidTokenUser,
    MissingRequireField,
}

impl ErrorKey {
    /// The message the seed lists for the key.
    pub fn message(self) -> &'static str {
        match self {
            ErrorKey::UserNotExist => "không tìm thấy user",
            ErrorKey::InvalidTokenUser => "token validate không hợp lệ hoặc sai token",
            ErrorKey::MissingRequireField => "thiếu dữ kiện bắt buộc",
        }
    }
}

/// Vietjet client.
#[derive(Debug, Clone)]
pub struct Client {
    http: Http,
    config: Config,
}

impl Client {
    pub fn new(config: Config) -> Result<Self> {
        Ok(Self {
            http: Http::new(Partner::Vietjet, &config.http)?,
            config,
        })
    }

    /// `POST /api/partner/v1/deletion`: SkyJoy tells Vietjet the account was closed. Always
    /// sent as the SkyJoy caller, the only one the seed allows here.
    pub async fn notify_deletion(
        &self,
        member: &MemberRef,
        idempotency_key: &str,
    ) -> Result<Reply<()>> {
        self.call(
            Endpoint::VietjetDeletion,
            "api/partner/v1/deletion",
            Caller::Skyjoy,
            member,
            idempotency_key,
        )
        .await
    }

    /// `POST /api/partner/v1/remove-token`: removes the member's saved card tokens.
    pub async fn remove_token(
        &self,
        caller: Caller,
        member: &MemberRef,
        idempotency_key: &str,
    ) -> Result<Reply<()>> {
        self.call(
            Endpoint::VietjetRemoveToken,
            "api/partner/v1/remove-token",
            caller,
            member,
            idempotency_key,
        )
        .await
    }

    async fn call(
        &self,
        endpoint: Endpoint,
        path: &str,
        caller: Caller,
        member: &MemberRef,
        idempotency_key: &str,
    ) -> Result<Reply<()>> {
        let credentials = match caller {
            Caller::Skyjoy => self.config.skyjoy.as_ref(),
            Caller::Gpay => self.config.gpay.as_ref(),
        }
        .ok_or_else(|| {
            Error::config(
                Partner::Vietjet,
                format!("no Basic credentials configured for caller {caller}"),
            )
        })?;
        let url = self.http.url(&self.config.base_url, &[path])?;
        let request = self
            .http
            .client()
            .post(url)
            .basic_auth(
                &credentials.username,
                Some(credentials.password.expose_secret()),
            )
            .json(member);
        let answer = self.http.send(endpoint, idempotency_key, request).await?;
        interpret(&answer)
    }
}

fn interpret(answer: &Answer) -> Result<Reply<()>> {
    // The seed defines success by the status alone; the body is not read.
    if answer.is_success() {
        return Ok(answer.reply(()));
    }
    let (key, body) = answer.error_key(|body: &ErrorBody| &body.error_key)?;
    let detail = Some(format!(
        "errorKey={} errorCode={}",
        key,
        body.error_code
            .map_or_else(|| "none".to_owned(), |c| c.to_string())
    ));
    match key {
        ErrorKey::UserNotExist => Ok(Reply::already(
            ErrorCode::VietjetUserNotExist,
            match answer.endpoint {
                Endpoint::VietjetRemoveToken => {
                    "Vietjet has no such user, so no card tokens remain"
                }
                _ => "Vietjet has no such user, so there is nothing left to delete",
            },
        )),
        ErrorKey::InvalidTokenUser => {
            Err(answer.permanent(ErrorCode::VietjetInvalidTokenUser, detail))
        }
        ErrorKey::MissingRequireField => {
            Err(answer.permanent(ErrorCode::VietjetMissingRequireField, detail))
        }
    }
}
