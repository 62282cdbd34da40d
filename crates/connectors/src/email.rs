//! The closure confirmation email (BRD 2.2.3 step 7), sent through the transport the
//! configuration picks: an HTTP mail API or SMTP.
//!
//! **HTTP mail API (our contract):** `POST {base}/v1/messages`, Bearer token,
//! `Idempotency-Key` header, JSON body [`HttpMessage`] `{from, to, subject, text}`;
//! 200/202 `{"id"}` is success. 400 and 422 are `EMAIL_REJECTED` (permanent), everything
//! else maps like any partner. The sandbox serves this API and captures the mail.
//!
//! **SMTP** uses `lettre` over tokio with rustls. SMTP has no idempotency, so the key becomes
//! the `Message-ID` (`<md5(key)@closeout>`): a retry after an ambiguous timeout can deliver
//! twice, but both copies carry the same ID so mail clients collapse them. Permanent SMTP
//! replies (5xx) are `EMAIL_REJECTED`; transient ones (4xx) and connection trouble retry.
//!
//! Recipient addresses are personal data and never logged.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use strum::{Display, EnumString};
use url::Url;

use crate::error::{Error, ErrorCode, Failure, Result, Retry};
use crate::http::{BearerApi, HttpOptions};
use crate::ids::{EmailAddress, Endpoint, Partner, SkyjoyId};
use crate::reply::Reply;

/// Which transport sends mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum Config {
    Http(HttpApiConfig),
    Smtp(SmtpConfig),
}

/// The HTTP mail API.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpApiConfig {
    pub base_url: Url,
    pub access_token: SecretString,
    pub from: EmailAddress,
    #[serde(default)]
    pub http: HttpOptions,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Display, EnumString, Deserialize)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all; only for a local relay or a test server.
    None,
}

/// An SMTP relay.
#[derive(Debug, Clone, Deserialize)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    pub from: EmailAddress,
    #[serde(default = "default_smtp_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_smtp_timeout_ms() -> u64 {
    15_000
}

/// One plain-text email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
}

impl Email {
    /// The confirmation that the SkyJoy account was closed, in Vietnamese then English,
    /// with what was forfeited and when the phone number may register again.
    pub fn closure_confirmation(
        to: EmailAddress,
        skyjoy_id: &SkyjoyId,
        closed_at: DateTime<Utc>,
        phone_reusable_from: DateTime<Utc>,
    ) -> Self {
        let closed = closed_at.format("%d-%m-%Y");
        let reusable = phone_reusable_from.format("%d-%m-%Y");
        let id = skyjoy_id.as_str();
        Self {
            to,
            subject: format!("SkyJoy: tài khoản {id} đã được đóng / account {id} closed"),
            text: format!(
                "Tài khoản SkyJoy {id} đã được đóng ngày {closed}. Hạng hội viên, số dư điểm \
                 và quà chưa sử dụng đã bị huỷ và không thể khôi phục. Số điện thoại của tài \
                 khoản có thể đăng ký lại từ ngày {reusable}.\n\n\
                 Your SkyJoy account {id} was closed on {closed}. Your tier, points balance \
                 and unused gifts are forfeited and cannot be restored. The account's phone \
                 number may register again from {reusable}.\n"
            ),
        }
    }
}

/// Body of the HTTP mail API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpMessage {
    pub from: EmailAddress,
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
}

/// Answer of the HTTP mail API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub id: String,
}

/// Sends email through the configured transport.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    Http {
        api: BearerApi,
        from: EmailAddress,
    },
    Smtp {
        smtp: AsyncSmtpTransport<Tokio1Executor>,
        from: EmailAddress,
    },
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.transport {
            Transport::Http { .. } => "http",
            Transport::Smtp { .. } => "smtp",
        };
        f.debug_struct("Mailer").field("transport", &kind).finish()
    }
}

impl Mailer {
    pub fn new(config: Config) -> Result<Self> {
        let transport = match config {
            Config::Http(config) => Transport::Http {
                api: BearerApi::new(
                    Partner::Email,
                    config.base_url,
                    config.access_token,
                    &config.http,
                )?,
                from: config.from,
            },
            Config::Smtp(config) => {
                let invalid = |_| Error::config(Partner::Email, "invalid SMTP relay host");
                let mut builder = match config.tls {
                    SmtpTls::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                            .map_err(invalid)?
                    }
                    SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                        .map_err(invalid)?,
                    SmtpTls::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
                    }
                };
                if let Some(port) = config.port {
                    builder = builder.port(port);
                }
                builder = builder.timeout(Some(Duration::from_millis(config.timeout_ms)));
                match (&config.username, &config.password) {
                    (Some(user), Some(password)) => {
                        builder = builder.credentials(Credentials::new(
                            user.clone(),
                            password.expose_secret().to_owned(),
                        ));
                    }
                    (None, None) => {}
                    _ => {
                        return Err(Error::config(
                            Partner::Email,
                            "SMTP username and password must be set together",
                        ))
                    }
                }
                Transport::Smtp {
                    smtp: builder.build(),
                    from: config.from,
                }
            }
        };
        Ok(Self { transport })
    }

    /// Sends the email once per idempotency key (see the module docs for SMTP's limits).
    pub async fn send(&self, email: &Email, idempotency_key: &str) -> Result<Reply<()>> {
        match &self.transport {
            Transport::Http { api, from } => {
                let body = HttpMessage {
                    from: from.clone(),
                    to: email.to.clone(),
                    subject: email.subject.clone(),
                    text: email.text.clone(),
                };
                let request = api
                    .request(reqwest::Method::POST, &["v1/messages"])?
                    .json(&body);
                let answer = api
                    .send(Endpoint::EmailSend, idempotency_key, request)
                    .await?;
                if answer.is_success() {
                    let _: Sent = answer.parse_success()?;
                    return Ok(answer.reply(()));
                }
                match answer.status.as_u16() {
                    400 | 422 => Err(answer.permanent(ErrorCode::EmailRejected, None)),
                    _ => Err(answer.unexpected()),
                }
            }
            Transport::Smtp { smtp, from } => {
                let message = smtp_message(from, email, idempotency_key)?;
                match smtp.send(message).await {
                    Ok(_) => {
                        tracing::info!(partner = %Partner::Email, endpoint = %Endpoint::EmailSend, idempotency_key, "mail relay accepted");
                        Ok(Reply::Done(()))
                    }
                    Err(error) => {
                        let failure = smtp_error(&error);
                        tracing::warn!(partner = %Partner::Email, endpoint = %Endpoint::EmailSend, idempotency_key, code = %failure.code(), "mail relay failed");
                        Err(failure)
                    }
                }
            }
        }
    }
}

fn smtp_message(from: &EmailAddress, email: &Email, idempotency_key: &str) -> Result<Message> {
    let invalid = |what: &str| Error::config(Partner::Email, format!("invalid {what} address"));
    let from: Mailbox = from.as_str().parse().map_err(|_| invalid("sender"))?;
    let to: Mailbox = email
        .to
        .as_str()
        .parse()
        .map_err(|_| invalid("recipient"))?;
    let message_id = format!(
        "<{}@closeout>",
        hex::encode(Md5::digest(idempotency_key.as_bytes()))
    );
    Message::builder()
        .from(from)
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(message_id))
        .header(ContentType::TEXT_PLAIN)
        .body(email.text.clone())
        .map_err(|_| Error::config(Partner::Email, "the message could not be built"))
}

fn smtp_error(error: &lettre::transport::smtp::Error) -> Error {
    let status = error
        .status()
        .map(|code| u16::from(code.severity as u8) * 100);
    if error.is_permanent() {
        return Error::Permanent(Failure {
            partner: Partner::Email,
            endpoint: Endpoint::EmailSend,
            code: ErrorCode::EmailRejected,
            status,
            detail: error.status().map(|code| format!("smtp={code}")),
        });
    }
    let (code, ambiguous) = if error.is_timeout() {
        (ErrorCode::Timeout, true)
    } else if error.is_transient() {
        (ErrorCode::ServerError, false)
    } else {
        (ErrorCode::ConnectFailed, false)
    };
    Error::Retryable(Retry {
        partner: Partner::Email,
        endpoint: Endpoint::EmailSend,
        code,
        status,
        retry_after: None,
        ambiguous,
    })
}
