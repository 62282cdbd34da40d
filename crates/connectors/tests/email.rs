//! Confirmation email over the HTTP mail API (wiremock) and over SMTP (a minimal SMTP server
//! on loopback).

mod common;

use chrono::TimeZone;
use closeout_connectors::email::{Config, Email, Mailer, SmtpConfig, SmtpTls};
use closeout_connectors::{EmailAddress, Error, ErrorCode, Reply, SkyjoyId};
use common::mailer;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn confirmation() -> Email {
    Email::closure_confirmation(
        EmailAddress::parse("member@example.test").unwrap(),
        &SkyjoyId::parse("SJ0123456789").unwrap(),
        chrono::Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
        chrono::Utc.with_ymd_and_hms(2024, 10, 1, 0, 0, 0).unwrap(),
    )
}

#[test]
fn the_confirmation_names_the_account_and_the_cooldown() {
    let email = confirmation();
    assert!(email.subject.contains("SJ0123456789"));
    assert!(email.text.contains("01-04-2024"));
    assert!(email.text.contains("01-10-2024"));
    assert!(email.text.contains("forfeited"));
}

#[tokio::test]
async fn http_api_posts_the_message_with_bearer_and_key() {
    let server = MockServer::start().await;
    let email = confirmation();
    Mock::given(method("POST"))
        .and(path("/prefix/v1/messages"))
        .and(header("authorization", "Bearer test-mail-token"))
        .and(header("Idempotency-Key", "wf/email"))
        .and(body_json(json!({
            "from": "noreply@closeout.test", "to": "member@example.test",
            "subject": email.subject, "text": email.text
        })))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "m-1"})))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        mailer(&server.uri()).send(&email, "wf/email").await,
        Ok(Reply::Done(()))
    );
}

#[tokio::test]
async fn http_api_rejection_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422))
        .mount(&server)
        .await;
    let result = mailer(&server.uri()).send(&confirmation(), "k").await;
    assert!(matches!(result, Err(Error::Permanent(f)) if f.code == ErrorCode::EmailRejected));
}

/// Serves one SMTP session, answering `RCPT` with `rcpt_reply`, and reports the DATA it got.
async fn smtp_server(rcpt_reply: &'static str) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
        while let Ok(Some(line)) = lines.next_line().await {
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let reply = match verb.as_str() {
                "EHLO" | "HELO" => "250 fake\r\n",
                "MAIL" | "RSET" | "NOOP" => "250 OK\r\n",
                "RCPT" => rcpt_reply,
                "DATA" => {
                    write.write_all(b"354 go ahead\r\n").await.unwrap();
                    let mut data = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line == "." {
                            break;
                        }
                        data.push_str(&line);
                        data.push('\n');
                    }
                    let _ = sender.send(data);
                    "250 queued\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => "502 unknown\r\n",
            };
            write.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    (port, receiver)
}

fn smtp_mailer(port: u16) -> Mailer {
    Mailer::new(Config::Smtp(SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: EmailAddress::parse("noreply@closeout.test").unwrap(),
        timeout_ms: 2_000,
    }))
    .unwrap()
}

#[tokio::test]
async fn smtp_delivers_with_a_message_id_derived_from_the_key() {
    let (port, mut received) = smtp_server("250 OK\r\n").await;
    let result = smtp_mailer(port).send(&confirmation(), "wf/email").await;
    assert_eq!(result, Ok(Reply::Done(())));
    let data = received.recv().await.unwrap();
    // `printf 'wf/email' | md5sum`
    assert!(
        data.contains("Message-ID: <5fa272127739e2e339eb48a7f9bdb449@closeout>"),
        "{data}"
    );
    assert!(data.contains("To: member@example.test"), "{data}");
}

#[tokio::test]
async fn smtp_permanent_rejection_is_permanent() {
    let (port, _received) = smtp_server("550 no such user\r\n").await;
    let result = smtp_mailer(port).send(&confirmation(), "k").await;
    match result {
        Err(Error::Permanent(f)) => {
            assert_eq!(f.code, ErrorCode::EmailRejected);
            assert_eq!(f.status, Some(500));
        }
        other => panic!("expected EMAIL_REJECTED, got {other:?}"),
    }
}

#[tokio::test]
async fn smtp_transient_rejection_is_retryable() {
    let (port, _received) = smtp_server("451 try later\r\n").await;
    let result = smtp_mailer(port).send(&confirmation(), "k").await;
    assert!(
        matches!(&result, Err(Error::Retryable(r)) if r.code == ErrorCode::ServerError && !r.ambiguous),
        "{result:?}"
    );
}
