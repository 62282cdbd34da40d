//! The answers every partner maps the same way: success, replays, throttling, server errors,
//! timeouts, refused connections, garbage and oversized bodies, redirects. Each case runs
//! against every partner's representative call.

mod common;

use std::time::Duration;

use closeout_connectors::{Error, ErrorCode, Partner, Reply, IDEMPOTENCY_KEY_HEADER};
use common::{representative_call, success_body, PARTNERS, TEST_MAX_BODY};
use wiremock::matchers::{any, header};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn answer_with(
    partner: Partner,
    response: ResponseTemplate,
) -> closeout_connectors::Result<Reply<()>> {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(response)
        .mount(&server)
        .await;
    representative_call(partner, &server.uri(), "wf-1/step-1").await
}

fn assert_retry(
    partner: Partner,
    result: &closeout_connectors::Result<Reply<()>>,
    code: ErrorCode,
    ambiguous: bool,
) {
    match result {
        Err(Error::Retryable(retry)) => {
            assert_eq!(retry.code, code, "{partner}");
            assert_eq!(retry.ambiguous, ambiguous, "{partner} ambiguity");
            assert_eq!(retry.partner, partner);
        }
        other => panic!("{partner}: expected retryable {code}, got {other:?}"),
    }
}

fn assert_permanent(
    partner: Partner,
    result: &closeout_connectors::Result<Reply<()>>,
    code: ErrorCode,
) {
    match result {
        Err(Error::Permanent(failure)) => assert_eq!(failure.code, code, "{partner}"),
        other => panic!("{partner}: expected permanent {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn success_is_done_and_carries_the_idempotency_key() {
    for partner in PARTNERS {
        let server = MockServer::start().await;
        Mock::given(header(IDEMPOTENCY_KEY_HEADER, "wf-1/step-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(success_body(partner)))
            .expect(1)
            .mount(&server)
            .await;
        let result = representative_call(partner, &server.uri(), "wf-1/step-1").await;
        assert_eq!(result, Ok(Reply::Done(())), "{partner}");
    }
}

#[tokio::test]
async fn a_replayed_answer_is_already_done() {
    for partner in PARTNERS {
        let result = answer_with(
            partner,
            ResponseTemplate::new(200)
                .insert_header("Idempotent-Replayed", "true")
                .set_body_json(success_body(partner)),
        )
        .await;
        match result {
            Ok(Reply::AlreadyDone(already)) => {
                assert_eq!(already.data, Some(()), "{partner}");
                assert!(already.note.contains("replayed"), "{partner}");
            }
            other => panic!("{partner}: expected already done, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn rate_limiting_is_retryable_after_the_requested_delay() {
    for partner in PARTNERS {
        let result = answer_with(
            partner,
            ResponseTemplate::new(429).insert_header("Retry-After", "3"),
        )
        .await;
        assert_retry(partner, &result, ErrorCode::RateLimited, false);
        assert_eq!(
            result.unwrap_err().retry_after(),
            Some(Duration::from_secs(3)),
            "{partner}"
        );
    }
}

#[tokio::test]
async fn server_errors_are_retryable_and_503_is_not_ambiguous() {
    for partner in PARTNERS {
        let result = answer_with(partner, ResponseTemplate::new(500).set_body_string("boom")).await;
        assert_retry(partner, &result, ErrorCode::ServerError, true);
        let result = answer_with(
            partner,
            ResponseTemplate::new(503).insert_header("Retry-After", "1"),
        )
        .await;
        assert_retry(partner, &result, ErrorCode::ServerError, false);
        assert_eq!(
            result.unwrap_err().retry_after(),
            Some(Duration::from_secs(1))
        );
        let result = answer_with(partner, ResponseTemplate::new(408)).await;
        assert_retry(partner, &result, ErrorCode::RequestTimeout, true);
    }
}

#[tokio::test]
async fn a_timeout_is_retryable_and_ambiguous() {
    for partner in PARTNERS {
        let result = answer_with(
            partner,
            ResponseTemplate::new(200)
                .set_body_json(success_body(partner))
                .set_delay(Duration::from_secs(3)),
        )
        .await;
        assert_retry(partner, &result, ErrorCode::Timeout, true);
        assert!(result.unwrap_err().is_ambiguous());
    }
}

#[tokio::test]
async fn a_refused_connection_is_retryable_and_not_ambiguous() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    for partner in PARTNERS {
        let result = representative_call(partner, &uri, "k").await;
        assert_retry(partner, &result, ErrorCode::ConnectFailed, false);
    }
}

#[tokio::test]
async fn garbage_in_a_2xx_is_retryable_and_ambiguous() {
    for partner in PARTNERS {
        let result = answer_with(
            partner,
            ResponseTemplate::new(200).set_body_string("<html>oops"),
        )
        .await;
        if partner == Partner::Vietjet {
            // Vietjet defines success by the status alone and its body is never parsed.
            assert_eq!(result, Ok(Reply::Done(())));
        } else {
            assert_retry(partner, &result, ErrorCode::MalformedResponse, true);
        }
    }
}

#[tokio::test]
async fn an_oversized_2xx_is_retryable_and_ambiguous() {
    let big = "x".repeat(TEST_MAX_BODY * 4);
    for partner in PARTNERS {
        let result = answer_with(
            partner,
            ResponseTemplate::new(200).set_body_string(big.clone()),
        )
        .await;
        if partner == Partner::Vietjet {
            assert_eq!(result, Ok(Reply::Done(())));
        } else {
            assert_retry(partner, &result, ErrorCode::ResponseTooLarge, true);
        }
    }
}

#[tokio::test]
async fn garbage_or_oversized_4xx_is_permanent() {
    let big = "x".repeat(TEST_MAX_BODY * 4);
    for partner in PARTNERS {
        let result = answer_with(
            partner,
            ResponseTemplate::new(418).set_body_string("<html>teapot"),
        )
        .await;
        assert_permanent(partner, &result, ErrorCode::ClientError);
        let result = answer_with(
            partner,
            ResponseTemplate::new(418).set_body_string(big.clone()),
        )
        .await;
        assert_permanent(partner, &result, ErrorCode::ResponseTooLarge);
        let result = answer_with(
            partner,
            ResponseTemplate::new(403).set_body_string("denied"),
        )
        .await;
        assert_permanent(partner, &result, ErrorCode::Unauthorized);
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    for partner in PARTNERS {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("Location", "http://127.0.0.1:1/elsewhere"),
            )
            .expect(1)
            .mount(&server)
            .await;
        let result = representative_call(partner, &server.uri(), "k").await;
        assert_permanent(partner, &result, ErrorCode::UnexpectedRedirect);
    }
}

#[tokio::test]
async fn an_invalid_idempotency_key_is_refused_before_sending() {
    for partner in PARTNERS {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let result = representative_call(partner, &server.uri(), "bad\nkey").await;
        assert!(
            matches!(result, Err(Error::Config { .. })),
            "{partner}: {result:?}"
        );
    }
}
