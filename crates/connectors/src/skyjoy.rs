//! SkyJoy partner Member API (seed 000) and deletion request (seed 002, section 3.3), Bearer
//! token auth.
//!
//! Success bodies are `{statusCode, message, data}`; failures are
//! `{"errors":{"name","message","code"},"message","statusCode"}`. Mapping of the documented
//! codes:
//! - `USER_NOT_FOUND`, `EMAIL_NOT_VERIFIED` → permanent;
//! - `CLOSE_ACCOUNT_FAILED` ("errors occurred from SkyJoy system") → retryable when SkyJoy
//!   answered 5xx, permanent when it answered 4xx (SkyJoy refused the request itself);
//! - `DUPLICATE_REQUEST` → already done: SkyJoy already holds an unprocessed request for the
//!   member, which is what submitting wanted (and what a retry of an ambiguous submission
//!   sees). Whether that request came from another workflow is the engine's eligibility
//!   check, made before submitting.
//!
//! **Our contract, not the seed's.** The Member API has no call that closes the account (the
//! BRD leaves it to SkyJoy operations). [`Client::close`] defines one:
//! `POST /api-user/partner/v1/user/close` with `{skyjoyId, reason}`, answering
//! `data: {skyjoyId, closedAt, forfeitedTier, forfeitedPoints}`, with the extra codes
//! `ACCOUNT_ALREADY_CLOSED` (409, already done) and `ACCOUNT_NOT_CLOSABLE` (409, permanent;
//! Merged, Blocked or Suspected Fraud). `unlink-member` may answer `MEMBER_NOT_LINKED`
//! (already done), and profiles may carry `emailVerified`; both are our additions too.
//! The access token is static configuration; obtaining it from SkyJoy's identity provider
//! is outside this crate.

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, RequestBuilder};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use strum::{Display, EnumIter, EnumString};
use url::Url;

use crate::error::{ErrorCode, Result};
use crate::http::{Answer, BearerApi, HttpOptions};
use crate::ids::{
    serde_via_strum, DocumentId, EmailAddress, Endpoint, Partner, PartnerMemberId, Personal, Phone,
    SkyjoyId,
};
use crate::reply::Reply;

/// SkyJoy connector configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// For example `https://api.stg.skyjoy.io`.
    pub base_url: Url,
    pub access_token: SecretString,
    #[serde(default)]
    pub http: HttpOptions,
}

/// A SkyJoy member's status. Parsed case-insensitively from the API's forms (`ACTIVE`,
/// `SUSPECTED_FRAUD`, `Suspected Fraud`); written as the API's upper-case form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, EnumIter)]
#[strum(ascii_case_insensitive)]
pub enum MemberStatus {
    #[strum(to_string = "PENDING")]
    Pending,
    #[strum(to_string = "WELCOME")]
    Welcome,
    #[strum(to_string = "ACTIVE")]
    Active,
    #[strum(to_string = "MERGED")]
    Merged,
    #[strum(to_string = "BLOCKED")]
    Blocked,
    #[strum(
        to_string = "SUSPECTED_FRAUD",
        serialize = "Suspected Fraud",
        serialize = "SuspectedFraud"
    )]
    SuspectedFraud,
}

serde_via_strum!(MemberStatus);

impl MemberStatus {
    /// BRD 2.2.4: Pending, Welcome and Active may ask to close; Merged, Blocked and Suspected
    /// Fraud may not.
    pub fn may_request_closure(self) -> bool {
        matches!(
            self,
            MemberStatus::Pending | MemberStatus::Welcome | MemberStatus::Active
        )
    }
}

/// The channel a deletion request came from (`requestPlatform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, EnumIter)]
pub enum RequestPlatform {
    #[strum(serialize = "Vietjet web")]
    VietjetWeb,
    #[strum(serialize = "Vietjet app")]
    VietjetApp,
    #[strum(serialize = "SkyJoy app")]
    SkyjoyApp,
    #[strum(serialize = "Galaxy Pay app")]
    GalaxyPayApp,
    #[strum(serialize = "Customer care")]
    CustomerCare,
}

serde_via_strum!(RequestPlatform);

/// Body of `POST /api-user/partner/v1/user/deletion-request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionRequest {
    pub skyjoy_id: SkyjoyId,
    pub phone: Phone,
    /// The member's own words; may hold personal data.
    pub comment: Personal<String>,
    #[serde(with = "millis")]
    pub request_at: DateTime<Utc>,
    pub request_platform: RequestPlatform,
}

/// `requestAt` is written like the seed's example, `2024-03-15T04:07:32.347Z`.
mod millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// `data` of `GET /api-user/partner/v1/user-profile/{skyjoyId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    pub skyjoy_id: SkyjoyId,
    pub status: MemberStatus,
    #[serde(default)]
    pub phone: Option<Phone>,
    #[serde(default)]
    pub email: Option<EmailAddress>,
    /// Our extension; absent from the seed, where `EMAIL_NOT_VERIFIED` is the only signal.
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub first_name: Option<Personal<String>>,
    #[serde(default)]
    pub last_name: Option<Personal<String>>,
    #[serde(default)]
    pub full_name: Option<Personal<String>>,
    #[serde(default)]
    pub date_of_birth: Option<Personal<String>>,
    #[serde(default)]
    pub date_of_join: Option<String>,
    #[serde(default, rename = "eKycStatus")]
    pub ekyc_status: Option<String>,
}

/// `data` of `GET /api-user/partner/v1/user-profile-ext/{skyjoyId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserProfileExt {
    pub skyjoy_id: SkyjoyId,
    #[serde(default)]
    pub enrolling_sponsor: Option<String>,
    #[serde(default)]
    pub passport_number: Option<Personal<String>>,
    #[serde(default)]
    pub national_id: Option<Personal<String>>,
    #[serde(default)]
    pub tier_class: Option<String>,
}

/// How to find a member with `GET /api-user/partner/v2/user/lookup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    SkyjoyId(SkyjoyId),
    DocumentId(DocumentId),
}

/// `data` of the lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookedUpUser {
    pub skyjoy_id: SkyjoyId,
    #[serde(default)]
    pub phone: Option<Phone>,
    #[serde(default)]
    pub email: Option<EmailAddress>,
    #[serde(default)]
    pub full_name: Option<Personal<String>>,
    #[serde(default)]
    pub date_of_birth: Option<Personal<String>>,
    #[serde(default)]
    pub date_of_join: Option<String>,
    #[serde(default, rename = "eKycStatus")]
    pub ekyc_status: Option<String>,
}

/// `data` of `GET /api-point/partner/v1/user-balance/{skyjoyId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub skyjoy_id: SkyjoyId,
    pub total_point: i64,
}

/// Body of `POST /api-user/partner/v1/user/unlink-member`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnlinkMember {
    pub skyjoy_id: SkyjoyId,
    pub partner_member_id: PartnerMemberId,
}

/// Body of our `POST /api-user/partner/v1/user/close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseRequest {
    pub skyjoy_id: SkyjoyId,
    /// The member's reason; may hold personal data.
    pub reason: Personal<String>,
}

/// `data` of our close call: what the member lost for good (BRD 2.2.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedAccount {
    pub skyjoy_id: SkyjoyId,
    pub closed_at: DateTime<Utc>,
    #[serde(default)]
    pub forfeited_tier: Option<String>,
    pub forfeited_points: i64,
}

/// SkyJoy's success envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    pub status_code: u16,
    pub message: String,
    pub data: T,
}

/// SkyJoy's failure envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    pub errors: ErrorDetail,
    pub message: String,
    pub status_code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub name: String,
    pub message: String,
    pub code: String,
}

/// The failure codes SkyJoy sends: the seed's four, then ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorKey {
    UserNotFound,
    CloseAccountFailed,
    DuplicateRequest,
    EmailNotVerified,
    AccountAlreadyClosed,
    AccountNotClosable,
    MemberNotLinked,
    Unauthorized,
}

impl ErrorKey {
    /// The envelope SkyJoy (and the sandbox) sends for this code.
    pub fn envelope(self, status_code: u16) -> ErrorEnvelope {
        let (name, message) = match self {
            ErrorKey::UserNotFound => ("UserNotFound", "User not found"),
            ErrorKey::CloseAccountFailed => ("CloseAccountFailed", "Close account failed"),
            ErrorKey::DuplicateRequest => ("DuplicateRequest", "Duplicate request"),
            ErrorKey::EmailNotVerified => ("EmailNotVerified", "Email not verified"),
            ErrorKey::AccountAlreadyClosed => ("AccountAlreadyClosed", "Account already closed"),
            ErrorKey::AccountNotClosable => ("AccountNotClosable", "Account cannot be closed"),
            ErrorKey::MemberNotLinked => ("MemberNotLinked", "Member not linked"),
            ErrorKey::Unauthorized => ("Unauthorized", "Unauthorized"),
        };
        ErrorEnvelope {
            errors: ErrorDetail {
                name: name.to_owned(),
                message: message.to_owned(),
                code: self.to_string(),
            },
            message: message.to_owned(),
            status_code,
        }
    }
}

/// SkyJoy client.
#[derive(Debug, Clone)]
pub struct Client {
    api: BearerApi,
}

impl Client {
    pub fn new(config: Config) -> Result<Self> {
        Ok(Self {
            api: BearerApi::new(
                Partner::Skyjoy,
                config.base_url,
                config.access_token,
                &config.http,
            )?,
        })
    }

    /// Submits the member's deletion request for SkyJoy operations to process.
    pub async fn deletion_request(
        &self,
        request: &DeletionRequest,
        idempotency_key: &str,
    ) -> Result<Reply<()>> {
        let http = self
            .api
            .request(Method::POST, &["api-user/partner/v1/user/deletion-request"])?
            .json(request);
        self.call_no_data(Endpoint::SkyjoyDeletionRequest, http, idempotency_key)
            .await
    }

    pub async fn user_profile(
        &self,
        skyjoy_id: &SkyjoyId,
        idempotency_key: &str,
    ) -> Result<Reply<UserProfile>> {
        let http = self.api.request(
            Method::GET,
            &["api-user/partner/v1/user-profile", skyjoy_id.as_str()],
        )?;
        self.call(Endpoint::SkyjoyUserProfile, http, idempotency_key)
            .await
    }

    pub async fn user_profile_ext(
        &self,
        skyjoy_id: &SkyjoyId,
        idempotency_key: &str,
    ) -> Result<Reply<UserProfileExt>> {
        let http = self.api.request(
            Method::GET,
            &["api-user/partner/v1/user-profile-ext", skyjoy_id.as_str()],
        )?;
        self.call(Endpoint::SkyjoyUserProfileExt, http, idempotency_key)
            .await
    }

    pub async fn lookup(&self, by: &Lookup, idempotency_key: &str) -> Result<Reply<LookedUpUser>> {
        let query = match by {
            Lookup::SkyjoyId(id) => ("skyjoyId", id.as_str()),
            Lookup::DocumentId(id) => ("documentId", id.as_str()),
        };
        let http = self
            .api
            .request(Method::GET, &["api-user/partner/v2/user/lookup"])?
            .query(&[query]);
        self.call(Endpoint::SkyjoyLookup, http, idempotency_key)
            .await
    }

    pub async fn balance(
        &self,
        skyjoy_id: &SkyjoyId,
        idempotency_key: &str,
    ) -> Result<Reply<Balance>> {
        let http = self.api.request(
            Method::GET,
            &["api-point/partner/v1/user-balance", skyjoy_id.as_str()],
        )?;
        self.call(Endpoint::SkyjoyBalance, http, idempotency_key)
            .await
    }

    /// Unlinks a partner membership so it can be re-linked to another SkyJoy account.
    pub async fn unlink_member(
        &self,
        request: &UnlinkMember,
        idempotency_key: &str,
    ) -> Result<Reply<()>> {
        let http = self
            .api
            .request(Method::POST, &["api-user/partner/v1/user/unlink-member"])?
            .json(request);
        self.call_no_data(Endpoint::SkyjoyUnlinkMember, http, idempotency_key)
            .await
    }

    /// Closes the SkyID (our contract, see the module docs); tier, points and gifts are
    /// forfeited for good, so this is the saga's pivot.
    pub async fn close(
        &self,
        request: &CloseRequest,
        idempotency_key: &str,
    ) -> Result<Reply<ClosedAccount>> {
        let http = self
            .api
            .request(Method::POST, &["api-user/partner/v1/user/close"])?
            .json(request);
        self.call(Endpoint::SkyjoyClose, http, idempotency_key)
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        request: RequestBuilder,
        idempotency_key: &str,
    ) -> Result<Reply<T>> {
        interpret(&self.api.send(endpoint, idempotency_key, request).await?)
    }

    /// A call whose `data` Closeout does not use.
    async fn call_no_data(
        &self,
        endpoint: Endpoint,
        request: RequestBuilder,
        idempotency_key: &str,
    ) -> Result<Reply<()>> {
        let reply = self
            .call::<serde::de::IgnoredAny>(endpoint, request, idempotency_key)
            .await?;
        Ok(reply.map(|_| ()))
    }
}

fn interpret<T: DeserializeOwned>(answer: &Answer) -> Result<Reply<T>> {
    if answer.is_success() {
        let envelope: Envelope<T> = answer.parse_success()?;
        return Ok(answer.reply(envelope.data));
    }
    let (key, _) = answer.error_key(|envelope: &ErrorEnvelope| &envelope.errors.code)?;
    let detail = Some(format!("code={key}"));
    match key {
        ErrorKey::UserNotFound => Err(answer.permanent(ErrorCode::SkyjoyUserNotFound, detail)),
        ErrorKey::EmailNotVerified => {
            Err(answer.permanent(ErrorCode::SkyjoyEmailNotVerified, detail))
        }
        ErrorKey::CloseAccountFailed => {
            Err(answer.documented(ErrorCode::SkyjoyCloseAccountFailed, detail))
        }
        ErrorKey::AccountNotClosable => {
            Err(answer.permanent(ErrorCode::SkyjoyAccountNotClosable, detail))
        }
        ErrorKey::DuplicateRequest => Ok(Reply::already(
            ErrorCode::SkyjoyDuplicateRequest,
            "SkyJoy already holds an unprocessed deletion request for this member",
        )),
        ErrorKey::AccountAlreadyClosed => Ok(Reply::already(
            ErrorCode::SkyjoyAccountAlreadyClosed,
            "SkyJoy says the account is already closed",
        )),
        ErrorKey::MemberNotLinked => Ok(Reply::already(
            ErrorCode::SkyjoyMemberNotLinked,
            "SkyJoy says the partner membership is not linked",
        )),
        ErrorKey::Unauthorized => Err(answer.unexpected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn member_status_parses_api_forms_case_insensitively() {
        assert_eq!(
            "ACTIVE".parse::<MemberStatus>().unwrap(),
            MemberStatus::Active
        );
        assert_eq!(
            "active".parse::<MemberStatus>().unwrap(),
            MemberStatus::Active
        );
        assert_eq!(
            "SUSPECTED_FRAUD".parse::<MemberStatus>().unwrap(),
            MemberStatus::SuspectedFraud
        );
        assert_eq!(
            "Suspected Fraud".parse::<MemberStatus>().unwrap(),
            MemberStatus::SuspectedFraud
        );
        for status in MemberStatus::iter() {
            assert_eq!(status.to_string().parse::<MemberStatus>().unwrap(), status);
        }
        assert!("CLOSED".parse::<MemberStatus>().is_err());
    }

    #[test]
    fn only_pending_welcome_and_active_may_request_closure() {
        let allowed: Vec<_> = MemberStatus::iter()
            .filter(|s| s.may_request_closure())
            .collect();
        assert_eq!(
            allowed,
            [
                MemberStatus::Pending,
                MemberStatus::Welcome,
                MemberStatus::Active
            ]
        );
    }

    #[test]
    fn deletion_request_serialises_like_the_seed() {
        let request = DeletionRequest {
            skyjoy_id: SkyjoyId::parse("SJ0123456789").unwrap(),
            phone: Phone::parse("+841234567890").unwrap(),
            comment: Personal::new("user request close".to_owned()),
            request_at: "2024-03-15T04:07:32.347Z".parse().unwrap(),
            request_platform: RequestPlatform::VietjetWeb,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({
                "skyjoyId": "SJ0123456789",
                "phone": "+841234567890",
                "comment": "user request close",
                "requestAt": "2024-03-15T04:07:32.347Z",
                "requestPlatform": "Vietjet web"
            })
        );
    }
}
