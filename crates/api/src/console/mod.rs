//! The operations console at `/ops`: one HTML page, a script and a style sheet, embedded
//! in the binary (no build step, nothing fetched from elsewhere). The page holds no data:
//! its script asks for an operations credential, keeps it in `sessionStorage` and calls
//! the JSON operations API (`/v1/ops/…`) with `Authorization: Bearer <key>`, so every
//! read and action is authorised there, exactly as for any other client.
//!
//! These routes need no credential: the authentication middleware only records who the
//! caller is, and the operations handlers refuse; nothing here asks. Every answer carries
//! a strict Content-Security-Policy (scripts and styles from this origin only, no inline
//! code, no framing, no forms posted anywhere), `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer`, and `Cache-Control: no-cache` with an `ETag`, so a
//! browser revalidates and picks up a new release at once (304 when unchanged).

use std::sync::LazyLock;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::AppState;

/// Where the console lives.
pub const PATH: &str = "/ops";

/// The page's policy: everything from this origin only, no inline script or style, no
/// plugins, no `<base>`, no form submission (the script sends every request itself), not
/// embeddable, and Trusted Types required so no string can become markup or script.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'none'; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file and its validator.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: String,
}

impl Asset {
    fn new(body: &'static [u8], content_type: &'static str) -> Self {
        let digest = Sha256::digest(body);
        Self {
            body,
            content_type,
            etag: format!("\"{}\"", hex::encode(&digest[..16])),
        }
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let unchanged = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| {
                tags.split(',')
                    .map(|t| t.trim().trim_start_matches("W/"))
                    .any(|t| t == "*" || t == self.etag)
            });
        let mut response = if unchanged {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type),
                )],
                self.body,
            )
                .into_response()
        };
        let headers = response.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, etag);
        }
        for (name, value) in SECURITY_HEADERS {
            headers.insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

const SECURITY_HEADERS: [(HeaderName, &str); 8] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CACHE_CONTROL, "no-cache"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
];

static INDEX: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_bytes!("index.html"), "text/html; charset=utf-8"));
static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("console.js"),
        "text/javascript; charset=utf-8",
    )
});
static STYLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_bytes!("console.css"), "text/css; charset=utf-8"));
static ICON: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_bytes!("icon.svg"), "image/svg+xml"));

async fn index(headers: HeaderMap) -> Response {
    INDEX.respond(&headers)
}

async fn script(headers: HeaderMap) -> Response {
    SCRIPT.respond(&headers)
}

async fn style(headers: HeaderMap) -> Response {
    STYLE.respond(&headers)
}

async fn icon(headers: HeaderMap) -> Response {
    ICON.respond(&headers)
}

/// The console's routes, merged into [`crate::app`]. None of them takes a credential.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(index))
        .route("/ops/", get(index))
        .route("/ops/console.js", get(script))
        .route("/ops/console.css", get(style))
        .route("/ops/icon.svg", get(icon))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[test]
    fn every_asset_carries_the_security_headers_and_revalidates() {
        for asset in [&*INDEX, &*SCRIPT, &*STYLE, &*ICON] {
            let response = asset.respond(&HeaderMap::new());
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(header(&response, "content-type"), asset.content_type);
            let csp = header(&response, "content-security-policy");
            assert!(csp.starts_with("default-src 'self';"), "{csp}");
            assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe"));
            assert!(csp.contains("frame-ancestors 'none'"));
            assert_eq!(header(&response, "x-frame-options"), "DENY");
            assert_eq!(header(&response, "referrer-policy"), "no-referrer");
            assert_eq!(header(&response, "x-content-type-options"), "nosniff");
            assert_eq!(header(&response, "cache-control"), "no-cache");
            assert_eq!(header(&response, "etag"), asset.etag);
        }
    }

    #[test]
    fn a_matching_etag_answers_304_with_the_same_headers() {
        let mut request = HeaderMap::new();
        request.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", W/{}", SCRIPT.etag)).unwrap(),
        );
        let response = SCRIPT.respond(&request);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&response, "x-frame-options"), "DENY");
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(SCRIPT.respond(&request).status(), StatusCode::OK);
    }

    #[test]
    fn the_page_has_no_inline_code_and_loads_only_its_own_files() {
        let page = std::str::from_utf8(INDEX.body).unwrap();
        for inline in [
            "<script>",
            " style=",
            " onclick",
            " onload",
            " onsubmit",
            "javascript:",
        ] {
            assert!(!page.contains(inline), "inline code: {inline}");
        }
        for tag in page
            .split('<')
            .filter(|t| t.starts_with("script") || t.starts_with("link"))
        {
            assert!(
                tag.contains("=\"/ops/") || !tag.contains("src=") && !tag.contains("href="),
                "only this origin's files: <{tag}"
            );
        }
        let script = std::str::from_utf8(SCRIPT.body).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(
                !script.contains(sink),
                "the script never builds markup from text: {sink}"
            );
        }
    }
}
