//! KYBIO queryByNumber: signed headers, the `enable` states, `status: "error"`, and erasure.

mod common;

use closeout_connectors::kybio::{signature, Enable, MemberNumber};
use closeout_connectors::{Error, ErrorCode, Reply};
use common::kybio;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// Accepts only requests signed with the test app key over the exact body received.
struct Signed;

impl Match for Signed {
    fn matches(&self, request: &Request) -> bool {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        header("Data-signature") == Some(signature("test-app-key", &request.body).as_str())
            && header("Time-stamp")
                .is_some_and(|t| t.parse::<u64>().is_ok_and(|ms| ms > 1_600_000_000_000))
            && header("User-Agent") == Some("openApi")
            && header("Content-Type") == Some("application/json; charset=utf-8")
    }
}

fn member(enable: i8) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "status": "success", "messages": [], "errorCode": null,
        "data": {"customerUid": 813951242628553689u64, "number": "8008010001", "name": "x", "enable": enable}
    }))
}

fn number() -> MemberNumber {
    MemberNumber("8008010001".into())
}

const QUERY: &str = "/prefix/openapi/v1/customerOpenApi/queryByNumber";
const UPDATE: &str = "/prefix/openapi/v1/customerOpenApi/updateBaseInfo";

#[tokio::test]
async fn query_is_signed_and_parses_enable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .and(Signed)
        .and(body_partial_json(
            json!({"appId": "test-app", "customerNum": "8008010001"}),
        ))
        .respond_with(member(-1))
        .expect(1)
        .mount(&server)
        .await;
    let found = kybio(&server.uri())
        .query_by_number(&number(), "k")
        .await
        .unwrap()
        .into_data()
        .flatten()
        .unwrap();
    assert_eq!(found.enable, Enable::Deleted);
    assert_eq!(found.customer_uid, 813_951_242_628_553_689);
}

#[tokio::test]
async fn no_data_means_no_member_and_status_error_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"status": "success", "messages": [], "errorCode": null, "data": null}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"status": "error", "messages": ["bad"], "errorCode": 1001, "data": null}),
        ))
        .mount(&server)
        .await;
    let client = kybio(&server.uri());
    assert_eq!(
        client.query_by_number(&number(), "k").await,
        Ok(Reply::Done(None))
    );
    let refused = client.query_by_number(&number(), "k").await;
    match refused {
        Err(Error::Permanent(f)) => {
            assert_eq!(f.code, ErrorCode::KybioRejected);
            assert_eq!(f.detail.as_deref(), Some("errorCode=1001"));
        }
        other => panic!("expected KYBIO_REJECTED, got {other:?}"),
    }
}

#[tokio::test]
async fn erase_disables_an_available_member_and_verifies() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .and(header("Idempotency-Key", "e/find"))
        .respond_with(member(1))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(UPDATE))
        .and(Signed)
        .and(header("Idempotency-Key", "e/disable"))
        .and(body_partial_json(json!({"appId": "test-app", "customerInfo": {"customerUid": 813951242628553689u64, "enable": 0}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "success", "messages": [], "data": null})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .and(header("Idempotency-Key", "e/verify"))
        .respond_with(member(0))
        .mount(&server)
        .await;
    let erased = kybio(&server.uri()).erase(&number(), "e").await.unwrap();
    assert_eq!(
        erased,
        Reply::Done(closeout_connectors::kybio::Erasure {
            customer_uid: 813_951_242_628_553_689,
            enable: Enable::Disabled
        })
    );
}

#[tokio::test]
async fn erase_is_already_done_when_disabled_and_retries_when_still_enabled() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(member(0))
        .mount(&server)
        .await;
    assert!(kybio(&server.uri())
        .erase(&number(), "e")
        .await
        .unwrap()
        .is_already_done());

    let stubborn = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(member(1))
        .mount(&stubborn)
        .await;
    Mock::given(method("POST"))
        .and(path(UPDATE))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "success", "messages": [], "data": null})),
        )
        .mount(&stubborn)
        .await;
    let result = kybio(&stubborn.uri()).erase(&number(), "e").await;
    assert!(matches!(result, Err(Error::Retryable(r)) if r.code == ErrorCode::KybioStillEnabled));
}
