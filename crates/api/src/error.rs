//! The API's one error type. Every way a request can fail is a variant here, and
//! [`Error::status`], [`Error::code`] and [`Error::message`] are the single table that
//! maps it to an HTTP status, a stable code and a message. 4xx bodies explain what to
//! fix; 5xx bodies are opaque and the cause is logged (inside the request's span, so the
//! log line carries the request ID) where the error is created.
//!
//! Two renderings share the table: the API's own body (`{"error": {...}}`) and the
//! SkyJoy envelope the BRD endpoint must answer with (see [`Brd`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use closeout_engine::id::WorkflowId;
use closeout_engine::saga;
use closeout_engine::store;
use serde::Serialize;
use utoipa::ToSchema;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// No usable credential: none sent, an unknown one, or none configured at all.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A valid credential that may not do this (wrong API or wrong role).
    #[error("{0}")]
    Forbidden(&'static str),
    /// Unknown, or belonging to another channel (the two are indistinguishable on purpose).
    #[error("no such request")]
    NotFound,
    #[error("route not found")]
    RouteNotFound,
    /// A body or query field failed validation; `field` is its path (`partner_member_ids[2]`).
    #[error("`{field}`: {problem}")]
    InvalidField { field: String, problem: String },
    /// A header failed validation.
    #[error("header `{header}`: {problem}")]
    InvalidHeader {
        header: &'static str,
        problem: String,
    },
    /// The body is not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    MalformedBody(String),
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The idempotency key was used before with a different body.
    #[error("this Idempotency-Key was already used with a different body; use a new key for a new request")]
    IdempotencyKeyReused,
    /// The member already has an open request. `existing` is set only when the caller
    /// may see it (same channel, or operations).
    #[error("the member already has an open closure request; wait for it to finish")]
    DuplicateRequest { existing: Option<WorkflowId> },
    /// The command does not apply to the workflow as it stands; the text is the
    /// engine's, with its hint.
    #[error("{0}")]
    NotAllowed(String),
    #[error("the request is being worked on right now; try again in a few seconds")]
    Busy,
    #[error("too many requests for this API key; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// BRD: SkyJoy does not know the member.
    #[error("User not found")]
    UserNotFound,
    /// BRD: the member's email is not verified.
    #[error("Email not verified")]
    EmailNotVerified,
    /// BRD: the request cannot be submitted (status not allowed: 400; SkyJoy or our own
    /// failure: 500, and then the message is opaque).
    #[error("Close account failed")]
    CloseAccountFailed { internal: bool },
    /// The database cannot be reached right now.
    #[error("the service is temporarily unavailable; try again later")]
    Unavailable,
    #[error("internal error; quote the x-request-id header when reporting it")]
    Internal,
    /// The request exists but has no certificate (it has not completed); the text says
    /// its state.
    #[error("{0}")]
    CertificateNotAvailable(String),
    #[error("this server has no certificate signing key; set certificates.signing_key (see docs/certificates.md)")]
    CertificatesNotConfigured,
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound | Self::RouteNotFound | Self::UserNotFound => StatusCode::NOT_FOUND,
            Self::InvalidField { .. }
            | Self::InvalidHeader { .. }
            | Self::MalformedBody(_)
            | Self::EmailNotVerified
            | Self::CloseAccountFailed { internal: false } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::DuplicateRequest { .. }
            | Self::NotAllowed(_)
            | Self::Busy
            | Self::CertificateNotAvailable(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::CertificatesNotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            Self::CloseAccountFailed { internal: true } | Self::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::RouteNotFound => "ROUTE_NOT_FOUND",
            Self::InvalidField { .. } => "INVALID_FIELD",
            Self::InvalidHeader { .. } => "INVALID_HEADER",
            Self::MalformedBody(_) => "MALFORMED_BODY",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::BodyTooLarge { .. } => "BODY_TOO_LARGE",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::DuplicateRequest { .. } => "DUPLICATE_REQUEST",
            Self::NotAllowed(_) => "NOT_ALLOWED",
            Self::Busy => "BUSY",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::CloseAccountFailed { .. } => "CLOSE_ACCOUNT_FAILED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::CertificateNotAvailable(_) => "CERTIFICATE_NOT_AVAILABLE",
            Self::CertificatesNotConfigured => "CERTIFICATES_NOT_CONFIGURED",
        }
    }

    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Whether the same request may succeed later unchanged.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Busy
                | Self::RateLimited { .. }
                | Self::Unavailable
                | Self::Internal
                | Self::CloseAccountFailed { internal: true }
        )
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            Self::Busy | Self::Unavailable => Some(1),
            _ => None,
        }
    }

    pub fn field(problem: impl Into<String>, field: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The body of the API's own rendering.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.message(),
                field: match self {
                    Self::InvalidField { field, .. } => Some(field.clone()),
                    Self::InvalidHeader { header, .. } => Some((*header).to_owned()),
                    _ => None,
                },
                existing_request_id: match self {
                    Self::DuplicateRequest { existing } => existing.map(|id| id.as_uuid()),
                    _ => None,
                },
                retryable: self.retryable(),
            },
        }
    }

    fn with_retry_after(&self, mut response: Response) -> Response {
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Every error the API's own routes answer with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `INVALID_FIELD`, `DUPLICATE_REQUEST`, `NOT_ALLOWED`.
    #[schema(example = "INVALID_FIELD")]
    pub code: String,
    /// What went wrong and what to do; never personal data. Opaque for 5xx.
    pub message: String,
    /// The offending field or header, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For DUPLICATE_REQUEST: the open request, when it belongs to the caller's channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_request_id: Option<uuid::Uuid>,
    /// Whether sending the same request later may succeed.
    pub retryable: bool,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let response = (self.status(), Json(self.body())).into_response();
        self.with_retry_after(response)
    }
}

/// The error as the BRD endpoint answers it: SkyJoy's envelope
/// `{"errors": {"name", "message", "code"}, "message", "statusCode"}` (seed 002, 3.3).
#[derive(Debug)]
pub struct Brd(pub Error);

/// SkyJoy's error envelope, as documented for the OpenAPI document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrdErrorBody {
    pub errors: BrdErrorDetail,
    pub message: String,
    pub status_code: u16,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BrdErrorDetail {
    #[schema(example = "UserNotFound")]
    pub name: String,
    #[schema(example = "User not found")]
    pub message: String,
    #[schema(example = "USER_NOT_FOUND")]
    pub code: String,
}

impl Brd {
    pub fn body(&self) -> BrdErrorBody {
        let error = &self.0;
        let message = error.message();
        BrdErrorBody {
            errors: BrdErrorDetail {
                name: pascal_case(error.code()),
                message: message.clone(),
                code: error.code().to_owned(),
            },
            message,
            status_code: error.status().as_u16(),
        }
    }
}

impl IntoResponse for Brd {
    fn into_response(self) -> Response {
        let response = (self.0.status(), Json(self.body())).into_response();
        self.0.with_retry_after(response)
    }
}

/// `USER_NOT_FOUND` → `UserNotFound`, the seed's `name` spelling.
fn pascal_case(code: &str) -> String {
    code.split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_string() + &chars.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect()
}

impl From<closeout_engine::Error> for Error {
    fn from(error: closeout_engine::Error) -> Self {
        use closeout_engine::Error as E;
        match error {
            E::NotFound(_) => Self::NotFound,
            E::Busy(_) => Self::Busy,
            E::Saga(e @ saga::Error::NotAllowed { .. }) => Self::NotAllowed(e.to_string()),
            E::Store(store::Error::SubjectBusy { .. }) => Self::DuplicateRequest { existing: None },
            E::Store(store::Error::Unavailable(cause)) => {
                tracing::error!(%cause, "database unavailable");
                Self::Unavailable
            }
            other => {
                tracing::error!(error = %other, "engine error");
                Self::Internal
            }
        }
    }
}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        closeout_engine::Error::Store(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use closeout_engine::state::WorkflowState;

    #[test]
    fn engine_errors_map_to_documented_statuses() {
        let id = WorkflowId::new();
        let cases: Vec<(closeout_engine::Error, StatusCode, &str)> = vec![
            (
                closeout_engine::Error::NotFound(id),
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
            ),
            (
                closeout_engine::Error::Busy(id),
                StatusCode::CONFLICT,
                "BUSY",
            ),
            (
                saga::Error::NotAllowed {
                    action: "resume",
                    state: WorkflowState::Completed,
                    hint: "it has ended".into(),
                }
                .into(),
                StatusCode::CONFLICT,
                "NOT_ALLOWED",
            ),
            (
                store::Error::SubjectBusy { existing: id }.into(),
                StatusCode::CONFLICT,
                "DUPLICATE_REQUEST",
            ),
            (
                store::Error::Unavailable("connection refused to db.internal".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
            ),
            (
                store::Error::Corrupt("row 7 has secret column x".into()).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
            ),
        ];
        for (engine, status, code) in cases {
            let error = Error::from(engine);
            assert_eq!(error.status(), status, "{error:?}");
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn not_allowed_keeps_the_engines_hint() {
        let error = Error::from(closeout_engine::Error::Saga(saga::Error::NotAllowed {
            action: "approve",
            state: WorkflowState::Running,
            hint: "only a waiting request can be approved".into(),
        }));
        assert!(error
            .message()
            .contains("only a waiting request can be approved"));
    }

    #[test]
    fn server_errors_are_opaque_and_duplicates_hide_other_channels_requests() {
        let error = Error::from(store::Error::Corrupt("secret detail".into()));
        let body = serde_json::to_string(&error.body()).unwrap();
        assert!(!body.contains("secret detail"), "{body}");
        let error = Error::from(store::Error::Unavailable("db.internal:5432".into()));
        let body = serde_json::to_string(&error.body()).unwrap();
        assert!(!body.contains("db.internal"), "{body}");
        let error = Error::from(store::Error::SubjectBusy {
            existing: WorkflowId::new(),
        });
        assert_eq!(error.body().error.existing_request_id, None);
    }

    #[test]
    fn validation_errors_name_the_field_and_rate_limits_say_when() {
        let body = Error::field("too long", "reason").body();
        assert_eq!(body.error.field.as_deref(), Some("reason"));
        let response = Error::RateLimited {
            retry_after_secs: 3,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn the_brd_envelope_has_the_seeds_shape() {
        let body = serde_json::to_value(Brd(Error::UserNotFound).body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "errors": {"name": "UserNotFound", "message": "User not found", "code": "USER_NOT_FOUND"},
                "message": "User not found",
                "statusCode": 404
            })
        );
        assert_eq!(
            Error::CloseAccountFailed { internal: false }.status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Error::CloseAccountFailed { internal: true }.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
