//! `POST /v1/cooldown/check`: may this phone register for this scope, and if not, when
//! may it. Asked by registration systems (SkyJoy sign-up, the wallet's onboarding) with
//! their own registrar keys; channel and operations keys are refused, and registrar keys
//! may call nothing else.
//!
//! The phone is normalised to E.164 first, so `0912 345 678` and `+84912345678` get the
//! same answer, then hashed under every configured key version: entries recorded before a
//! key rotation still match. The phone is never logged and never echoed in an error.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use closeout_cooldown::{Scope, E164};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::auth::RegistrarCaller;
use crate::body::StrictJson;
use crate::error::{Error, ErrorBody, Result};
use crate::AppState;

/// What the phone would register for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CooldownScope {
    /// A new SkyJoy account.
    Skyjoy,
    /// A new SkyPay (Galaxy Pay) wallet.
    Wallet,
}

impl From<CooldownScope> for Scope {
    fn from(scope: CooldownScope) -> Self {
        match scope {
            CooldownScope::Skyjoy => Scope::Skyjoy,
            CooldownScope::Wallet => Scope::Wallet,
        }
    }
}

/// The question. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The phone as the member typed it: `+84912345678`, `0912 345 678`, `84912345678`…
    /// Numbers without a country code are read as Vietnamese.
    #[schema(example = "+84912345678")]
    #[serde(deserialize_with = "phone_text")]
    pub phone: String,
    pub scope: CooldownScope,
}

/// The answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckAnswer {
    /// Whether the phone may register for `scope` now.
    pub allowed: bool,
    pub scope: CooldownScope,
    /// When it may, if it may not now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_at: Option<DateTime<Utc>>,
}

/// The phone as a string. A number of another JSON type is refused with a message of
/// our own: serde's would quote the value, and the value is a phone number.
fn phone_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Ok(text),
        _ => Err(serde::de::Error::custom(
            "must be a string: +84xxxxxxxxx or 0xxxxxxxxx",
        )),
    }
}

/// Check whether a phone may register.
#[utoipa::path(
    post,
    path = "/v1/cooldown/check",
    tag = "cooldown",
    request_body = CheckRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The answer; `release_at` is set when the phone may not register yet", body = CheckAnswer),
        (status = 400, description = "INVALID_FIELD (an unreadable phone, an unknown scope) or MALFORMED_BODY", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: not a registrar key", body = ErrorBody),
        (status = 413, description = "BODY_TOO_LARGE", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 500, description = "INTERNAL", body = ErrorBody),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub async fn check(
    State(state): State<AppState>,
    RegistrarCaller(registrar): RegistrarCaller,
    StrictJson(body): StrictJson<CheckRequest>,
) -> Result<Json<CheckAnswer>> {
    let phone = E164::parse(&body.phone).map_err(|e| Error::field(e.to_string(), "phone"))?;
    let scope = Scope::from(body.scope);
    let hashes: Vec<(u32, String)> = state
        .inner
        .hash_keys
        .all(&phone)
        .into_iter()
        .map(|h| (h.key_version, h.hex))
        .collect();
    let now = state.engine().now();
    let until = state
        .engine()
        .store()
        .cooldown_until(scope.as_ref(), &hashes, now)
        .await?;
    // Debug, not info: registrars ask on every sign-up. Never the phone or its hash.
    tracing::debug!(%registrar, scope = scope.as_ref(), allowed = until.is_none(), "cooldown checked");
    Ok(Json(CheckAnswer {
        allowed: until.is_none(),
        scope: body.scope,
        release_at: until,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_of_another_type_is_refused_without_echoing_it() {
        let err = StrictJson::<CheckRequest>::decode(br#"{"phone":84912345678,"scope":"wallet"}"#)
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidField { field, .. } if field == "phone"),
            "{err:?}"
        );
        assert!(!err.message().contains("912345678"), "{err}");
    }

    #[test]
    fn scopes_map_one_to_one() {
        let body: CheckRequest =
            StrictJson::decode(br#"{"phone":"0912 345 678","scope":"skyjoy"}"#).unwrap();
        assert_eq!(Scope::from(body.scope), Scope::Skyjoy);
        assert_eq!(Scope::from(CooldownScope::Wallet).as_ref(), "wallet");
        let err =
            StrictJson::<CheckRequest>::decode(br#"{"phone":"1","scope":"bank"}"#).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidField { field, .. } if field == "scope"),
            "{err:?}"
        );
    }
}
