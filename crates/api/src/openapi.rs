//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` attributes and
//! the request and response types (`utoipa`: derive-based, so the document cannot drift
//! from the code the way a hand-written one would). Served at `/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{brd, certificates, channel, cooldown, error, health, ops};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Closeout API",
        description = "Close a member's account across Vietjet, SkyJoy, Galaxy Pay and partner CRMs. \
                       Authenticate with `Authorization: Bearer <key>`: a channel key for `/v1/requests` \
                       and the BRD endpoint, an operations credential (role `read` or `write`) for `/v1/ops`, \
                       a registrar key for `/v1/cooldown/check` (and nothing else)."
    ),
    paths(
        channel::submit,
        channel::status,
        certificates::for_channel,
        certificates::public_keys,
        brd::deletion_request,
        ops::list,
        ops::detail,
        ops::approve,
        ops::reject,
        ops::retry,
        ops::resume,
        ops::skip,
        ops::cancel,
        ops::bulk,
        certificates::for_ops,
        cooldown::check,
        health::healthz,
        health::readyz,
        health::metrics,
        document,
    ),
    components(schemas(
        error::ErrorBody,
        error::ErrorDetail,
        error::BrdErrorBody,
        error::BrdErrorDetail,
        channel::Flow,
        cooldown::CooldownScope,
    )),
    modifiers(&BearerKey),
    tags(
        (name = "channel", description = "Channels submit and follow closure requests"),
        (name = "brd", description = "The BRD's SkyJoy deletion-request endpoint (seed 002, 3.3)"),
        (name = "operations", description = "Operations staff inspect and act on requests"),
        (name = "cooldown", description = "Registration systems ask whether a phone may register (the six-month cooldown)"),
        (name = "health", description = "Probes, metrics and this document"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A channel key, an operations credential or a registrar key",
                    ))
                    .build(),
            ),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
