//! The connector error: every partner answer that is not a success is either retryable or
//! permanent, and carries one stable [`ErrorCode`].
//!
//! The code table ([`ErrorCode::advice`]) is the single place that says what each code means
//! and what an operator does next; the engine stores the code string in the step history.

use std::time::Duration;

use strum::{Display, EnumIter, EnumString, IntoStaticStr};

use crate::ids::{serde_via_strum, Endpoint, Partner};

/// `Result` with the connector [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable error codes; the string form (`VIETJET_USER_NOT_EXIST`) is persisted and shown.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    // Transport and generic HTTP answers, the same for every partner.
    /// The request did not complete in time; the partner may have applied it.
    Timeout,
    /// No connection could be made (refused, DNS, TLS handshake); nothing was sent.
    ConnectFailed,
    /// The connection broke after the request was sent; the partner may have applied it.
    TransportFailed,
    /// HTTP 429.
    RateLimited,
    /// HTTP 408.
    RequestTimeout,
    /// HTTP 5xx without a documented error.
    ServerError,
    /// HTTP 401 or 403 without a documented error.
    Unauthorized,
    /// Any other 4xx without a documented error.
    ClientError,
    /// A 3xx; redirects are never followed.
    UnexpectedRedirect,
    /// A body that is not what the partner documents.
    MalformedResponse,
    /// A body larger than the configured cap.
    ResponseTooLarge,
    /// Configuration that cannot work (missing credential, bad URL, bad header value).
    InvalidConfig,

    // Vietjet, seed 002 section 3.1 / 3.2.
    VietjetUserNotExist,
    VietjetInvalidTokenUser,
    VietjetMissingRequireField,

    // SkyJoy, seed 002 section 3.3, plus our close contract.
    SkyjoyUserNotFound,
    SkyjoyCloseAccountFailed,
    SkyjoyDuplicateRequest,
    SkyjoyEmailNotVerified,
    SkyjoyAccountAlreadyClosed,
    SkyjoyAccountNotClosable,
    SkyjoyMemberNotLinked,

    // Galaxy Pay, our contract in docs/galaxypay-wallet-api.md.
    GalaxypayWalletNotFound,
    GalaxypayWalletClosed,
    GalaxypayWalletNotInactive,
    GalaxypayVirtualAccountAlreadyClosed,
    GalaxypayVirtualAccountOpen,
    GalaxypayBalanceNotZero,
    GalaxypayBankLinksRemain,
    GalaxypayBankLinkNotFound,
    GalaxypayBankLinkAlreadyUnlinked,

    // KYBIO, seed 003.
    KybioRejected,
    KybioMemberNotFound,
    KybioStillEnabled,

    // CRMX, seed 004.
    CrmxCustomerNotFound,
    CrmxNotMasked,

    // Email.
    EmailRejected,
}

serde_via_strum!(ErrorCode);

impl ErrorCode {
    /// What the code means and what to do next; one line, no trailing period.
    pub fn advice(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Timeout => "no answer in time and the partner may have applied the call: retry with the same idempotency key",
            ConnectFailed => "the partner could not be reached: retry later; check the base URL if it persists",
            TransportFailed => "the connection broke mid-call and the partner may have applied it: retry with the same idempotency key",
            RateLimited => "the partner is throttling: retry after the delay it asked for",
            RequestTimeout => "the partner gave up waiting for the request: retry with the same idempotency key",
            ServerError => "the partner failed internally: retry later with the same idempotency key",
            Unauthorized => "the partner rejected our credentials: fix them in configuration, then retry the step",
            ClientError => "the partner rejected the request: inspect the request data, fix it, then retry or skip the step",
            UnexpectedRedirect => "the partner answered with a redirect, which is never followed: check the base URL",
            MalformedResponse => "the partner's answer could not be understood: retry; if it persists, compare the partner's API with the connector",
            ResponseTooLarge => "the partner's answer exceeded the size cap: raise max_body_bytes only if the partner is known to send large bodies",
            InvalidConfig => "the connector configuration cannot work: fix it and restart",
            VietjetUserNotExist => "Vietjet has no user with this SkyJoy ID and phone: nothing is left to remove there",
            VietjetInvalidTokenUser => "Vietjet rejected the Basic credentials: fix the Vietjet username/password for this caller",
            VietjetMissingRequireField => "Vietjet says a required field is missing: check the member's SkyJoy ID and phone",
            SkyjoyUserNotFound => "SkyJoy has no such member: check the SkyJoy ID, then cancel the request",
            SkyjoyCloseAccountFailed => "SkyJoy could not accept the request: retry if it answered 5xx, otherwise ask SkyJoy operations",
            SkyjoyDuplicateRequest => "SkyJoy already holds an unprocessed deletion request for this member",
            SkyjoyEmailNotVerified => "the member must verify their email before asking to close the account",
            SkyjoyAccountAlreadyClosed => "the SkyJoy account is already closed",
            SkyjoyAccountNotClosable => "the member's status (Merged, Blocked, Suspected Fraud) forbids closing: refer to SkyJoy operations",
            SkyjoyMemberNotLinked => "the partner membership is not linked to this SkyJoy account",
            GalaxypayWalletNotFound => "Galaxy Pay has no such wallet: check the wallet ID",
            GalaxypayWalletClosed => "the wallet is closed and cannot change status",
            GalaxypayWalletNotInactive => "the wallet must be set Inactive before its balance is settled",
            GalaxypayVirtualAccountAlreadyClosed => "the virtual account is already closed",
            GalaxypayVirtualAccountOpen => "close the virtual account before closing the wallet",
            GalaxypayBalanceNotZero => "settle the balance to zero before closing the wallet",
            GalaxypayBankLinksRemain => "unlink every bank card and account before closing the wallet",
            GalaxypayBankLinkNotFound => "Galaxy Pay has no such bank link on this wallet: re-read the wallet",
            GalaxypayBankLinkAlreadyUnlinked => "the bank link is already unlinked",
            KybioRejected => "KYBIO refused the request (see its errorCode): check appId, appKey and the member number",
            KybioMemberNotFound => "KYBIO has no member with this number",
            KybioStillEnabled => "KYBIO still shows the member enabled after the disable call: retry; escalate if it persists",
            CrmxCustomerNotFound => "CRMX has no member with this phone at this location",
            CrmxNotMasked => "CRMX still shows personal fields after the mask update: retry; escalate if it persists",
            EmailRejected => "the mail service refused the message: check the recipient and sender configuration",
        }
    }
}

/// A failure that may succeed if the same call is repeated later with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub partner: Partner,
    pub endpoint: Endpoint,
    pub code: ErrorCode,
    /// HTTP status, when the partner answered at all.
    pub status: Option<u16>,
    /// The delay the partner asked for (`Retry-After`), if any.
    pub retry_after: Option<Duration>,
    /// The partner may have applied the call; the caller must retry with the same
    /// idempotency key and must not compensate as if nothing happened.
    pub ambiguous: bool,
}

/// A failure that repeating the call cannot fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub partner: Partner,
    pub endpoint: Endpoint,
    pub code: ErrorCode,
    pub status: Option<u16>,
    /// The partner's own error identifiers (never its free text, which may quote personal
    /// data), for the history.
    pub detail: Option<String>,
}

/// A connector call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{} {} answered {}{}: {}{}", .0.partner, .0.endpoint, .0.code, status_suffix(.0.status), .0.code.advice(), retry_suffix(.0.retry_after))]
    Retryable(Retry),
    #[error("{} {} refused with {}{}: {}", .0.partner, .0.endpoint, .0.code, status_suffix(.0.status), .0.code.advice())]
    Permanent(Failure),
    #[error("invalid {partner} connector configuration: {reason}; fix it and restart")]
    Config { partner: Partner, reason: String },
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

fn retry_suffix(after: Option<Duration>) -> String {
    after
        .map(|d| format!(", not before {} ms", d.as_millis()))
        .unwrap_or_default()
}

impl Error {
    /// The stable code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Retryable(retry) => retry.code,
            Error::Permanent(failure) => failure.code,
            Error::Config { .. } => ErrorCode::InvalidConfig,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Retryable(_))
    }

    /// True when the partner may have applied the call (a timeout or broken connection after
    /// sending): retry with the same idempotency key, never compensate blindly.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Error::Retryable(retry) if retry.ambiguous)
    }

    /// The delay the partner asked for before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Retryable(retry) => retry.retry_after,
            _ => None,
        }
    }

    pub(crate) fn config(partner: Partner, reason: impl Into<String>) -> Self {
        Error::Config {
            partner,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn codes_round_trip_through_their_string_form() {
        for code in ErrorCode::iter() {
            let text = code.to_string();
            assert_eq!(text, text.to_uppercase());
            assert_eq!(text.parse::<ErrorCode>().unwrap(), code);
            assert!(!code.advice().ends_with('.'), "{code}");
        }
        assert_eq!(
            ErrorCode::VietjetUserNotExist.to_string(),
            "VIETJET_USER_NOT_EXIST"
        );
    }

    #[test]
    fn messages_say_what_to_do_next() {
        let error = Error::Retryable(Retry {
            partner: Partner::Vietjet,
            endpoint: Endpoint::VietjetRemoveToken,
            code: ErrorCode::RateLimited,
            status: Some(429),
            retry_after: Some(Duration::from_secs(2)),
            ambiguous: false,
        });
        assert_eq!(
            error.to_string(),
            "vietjet vietjet.remove_token answered RATE_LIMITED (HTTP 429): the partner is \
             throttling: retry after the delay it asked for, not before 2000 ms"
        );
    }
}
