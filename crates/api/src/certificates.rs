//! Deletion certificates over HTTP: the submitting channel and operations fetch the
//! signed certificate of a completed closure; anyone may fetch the public keys that check
//! it. The certificate itself is built and signed by `closeout_certificate`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use closeout_engine::id::WorkflowId;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{ChannelCaller, OpsReader};
use crate::error::{Error, ErrorBody, Result};
use crate::AppState;

/// The public keys certificates are signed with, by key ID.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicKeys {
    #[schema(example = "Ed25519")]
    pub algorithm: &'static str,
    /// The key ID new certificates are signed with; absent when signing is not configured.
    pub signing_key_id: Option<String>,
    /// Base64 Ed25519 public keys by key ID, retired ones included.
    pub keys: BTreeMap<String, String>,
}

/// The signing keys; a server without one says so before looking anything up.
fn signing_keys(state: &AppState) -> Result<&closeout_certificate::Keys> {
    let keys = state.certificate_keys();
    if !keys.can_sign() {
        return Err(Error::CertificatesNotConfigured);
    }
    Ok(keys)
}

/// The signed certificate of `record`, which the caller has read (and, for a channel,
/// checked the ownership of).
async fn signed(
    state: &AppState,
    keys: &closeout_certificate::Keys,
    record: &closeout_engine::store::WorkflowRecord,
) -> Result<closeout_certificate::Signed> {
    let engine = state.engine();
    let id = record.id;
    let definition = engine.pinned(&record.definition_hash).await?;
    let history = engine.history(id).await?;
    let certificate =
        closeout_certificate::build(record, &definition, &history).map_err(|e| match e {
            closeout_certificate::Error::NotCompleted(_) => {
                Error::CertificateNotAvailable(e.to_string())
            }
            closeout_certificate::Error::Inconsistent(problem) => {
                tracing::error!(request = %id, %problem, "cannot build a deletion certificate");
                Error::Internal
            }
        })?;
    keys.sign(certificate)
        .ok_or(Error::CertificatesNotConfigured)
}

/// The signed deletion certificate of one of this channel's completed requests.
#[utoipa::path(
    get,
    path = "/v1/requests/{id}/certificate",
    tag = "channel",
    params(("id" = uuid::Uuid, Path, description = "The request_id from the submission")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The certificate and its Ed25519 signature (docs/certificates.md)", body = Object),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: not a channel key", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: unknown, or another channel's", body = ErrorBody),
        (status = 409, description = "CERTIFICATE_NOT_AVAILABLE: the closure has not completed", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 500, description = "INTERNAL", body = ErrorBody),
        (status = 503, description = "CERTIFICATES_NOT_CONFIGURED", body = ErrorBody),
    )
)]
pub async fn for_channel(
    State(state): State<AppState>,
    ChannelCaller(channel): ChannelCaller,
    Path(id): Path<String>,
) -> Result<Json<closeout_certificate::Signed>> {
    let keys = signing_keys(&state)?;
    let id: WorkflowId = id.parse().map_err(|_| Error::NotFound)?;
    let record = state.engine().get(id).await?;
    if record.channel.as_ref() != Some(&channel) {
        return Err(Error::NotFound);
    }
    Ok(Json(signed(&state, keys, &record).await?))
}

/// The signed deletion certificate of a completed request.
#[utoipa::path(
    get,
    path = "/v1/ops/requests/{id}/certificate",
    tag = "operations",
    params(("id" = uuid::Uuid, Path)),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The certificate and its Ed25519 signature (docs/certificates.md)", body = Object),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: not an operations credential", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 409, description = "CERTIFICATE_NOT_AVAILABLE: the closure has not completed", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 500, description = "INTERNAL", body = ErrorBody),
        (status = 503, description = "CERTIFICATES_NOT_CONFIGURED", body = ErrorBody),
    )
)]
pub async fn for_ops(
    State(state): State<AppState>,
    _reader: OpsReader,
    Path(id): Path<String>,
) -> Result<Json<closeout_certificate::Signed>> {
    let keys = signing_keys(&state)?;
    let id: WorkflowId = id.parse().map_err(|_| Error::NotFound)?;
    let record = state.engine().get(id).await?;
    Ok(Json(signed(&state, keys, &record).await?))
}

/// The public keys that check certificates. Public by nature: no credential needed.
#[utoipa::path(
    get,
    path = "/v1/certificates/keys",
    tag = "channel",
    responses(
        (status = 200, description = "Public keys by key ID", body = PublicKeys),
    )
)]
pub async fn public_keys(State(state): State<AppState>) -> Json<PublicKeys> {
    let keys = state.certificate_keys();
    Json(PublicKeys {
        algorithm: closeout_certificate::ALGORITHM,
        signing_key_id: keys.signing_public_key().map(|(id, _)| id),
        keys: keys.public_keys(),
    })
}
