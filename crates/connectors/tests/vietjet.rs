//! Vietjet `deletion` and `remove-token`: wire format, Basic auth per caller, and the
//! documented error keys.

mod common;

use closeout_connectors::vietjet::{Caller, Config, Credentials};
use closeout_connectors::{Error, ErrorCode, Reply};
use common::{member, options, secret, vietjet};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn error_body(key: &str, code: i64) -> serde_json::Value {
    json!({"status": false, "message": "x", "errorCode": code, "errorKey": key})
}

#[tokio::test]
async fn remove_token_posts_the_member_with_the_callers_basic_credentials() {
    let server = MockServer::start().await;
    // base64("test-gpay:test-gpay-pass")
    Mock::given(method("POST"))
        .and(path("/prefix/api/partner/v1/remove-token"))
        .and(header(
            "authorization",
            "Basic dGVzdC1ncGF5OnRlc3QtZ3BheS1wYXNz",
        ))
        .and(header("Idempotency-Key", "k1"))
        .and(body_json(
            json!({"skyjoyId": "SJ0123456789", "phone": "+84354841605"}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let reply = vietjet(&server.uri())
        .remove_token(Caller::Gpay, &member(), "k1")
        .await;
    assert_eq!(reply, Ok(Reply::Done(())));
}

#[tokio::test]
async fn deletion_is_sent_as_skyjoy() {
    let server = MockServer::start().await;
    // base64("test-skyjoy:test-skyjoy-pass")
    Mock::given(method("POST"))
        .and(path("/prefix/api/partner/v1/deletion"))
        .and(header(
            "authorization",
            "Basic dGVzdC1za3lqb3k6dGVzdC1za3lqb3ktcGFzcw==",
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let reply = vietjet(&server.uri())
        .notify_deletion(&member(), "k2")
        .await;
    assert_eq!(reply, Ok(Reply::Done(())));
}

#[tokio::test]
async fn user_not_exist_means_already_done_on_both_endpoints() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error_body("USER_NOT_EXIST", 1501)))
        .mount(&server)
        .await;
    let client = vietjet(&server.uri());
    for reply in [
        client.remove_token(Caller::Skyjoy, &member(), "k").await,
        client.notify_deletion(&member(), "k").await,
    ] {
        match reply {
            Ok(Reply::AlreadyDone(already)) => {
                assert_eq!(already.code, Some(ErrorCode::VietjetUserNotExist));
                assert!(already.note.contains("no such user"));
            }
            other => panic!("expected already done, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn invalid_token_and_missing_field_are_permanent() {
    for (status, key, code) in [
        (
            401,
            "INVALID_TOKEN_USER",
            ErrorCode::VietjetInvalidTokenUser,
        ),
        (
            400,
            "MISSING_REQUIRE_FIELD",
            ErrorCode::VietjetMissingRequireField,
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(error_body(key, 1400)))
            .mount(&server)
            .await;
        let reply = vietjet(&server.uri())
            .remove_token(Caller::Gpay, &member(), "k")
            .await;
        match reply {
            Err(Error::Permanent(failure)) => {
                assert_eq!(failure.code, code);
                assert_eq!(failure.status, Some(status));
                assert_eq!(
                    failure.detail.as_deref(),
                    Some(format!("errorKey={key} errorCode=1400").as_str())
                );
            }
            other => panic!("expected permanent {code}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unknown_error_key_falls_back_to_the_status() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(error_body("SOMETHING_NEW", 1999)))
        .mount(&server)
        .await;
    let reply = vietjet(&server.uri())
        .remove_token(Caller::Gpay, &member(), "k")
        .await;
    assert!(matches!(reply, Err(Error::Permanent(f)) if f.code == ErrorCode::ClientError));
}

#[tokio::test]
async fn a_caller_without_credentials_is_a_configuration_error() {
    let server = MockServer::start().await;
    let client = closeout_connectors::vietjet::Client::new(Config {
        base_url: common::base(&server.uri()),
        skyjoy: Some(Credentials {
            username: "u".into(),
            password: secret("p"),
        }),
        gpay: None,
        http: options(),
    })
    .unwrap();
    let reply = client.remove_token(Caller::Gpay, &member(), "k").await;
    assert!(matches!(reply, Err(Error::Config { .. })), "{reply:?}");
    assert_eq!(reply.unwrap_err().code(), ErrorCode::InvalidConfig);
}

#[test]
fn config_debug_redacts_the_password_and_parses_from_toml_like_json() {
    let config: Config = serde_json::from_value(json!({
        "base_url": "https://vietjet.example.test/user-management",
        "skyjoy": {"username": "made-up-user", "password": "made-up-secret"}
    }))
    .unwrap();
    let printed = format!("{config:?}");
    assert!(!printed.contains("made-up-secret"), "{printed}");
    assert_eq!(config.http, closeout_connectors::HttpOptions::default());
}
