//! Shared helpers for the connector tests: clients pointed at a wiremock server with made-up
//! credentials and short timeouts, and one representative call per partner.

#![allow(dead_code)]

use closeout_connectors::{
    crmx, email, galaxypay, kybio, skyjoy, vietjet, EmailAddress, HttpOptions, Partner, Personal,
    Phone, PosId, Reply, Result, SkyjoyId, WalletId,
};
use secrecy::SecretString;
use url::Url;

pub const TEST_TIMEOUT_MS: u64 = 300;
pub const TEST_MAX_BODY: usize = 4096;

pub fn options() -> HttpOptions {
    HttpOptions {
        connect_timeout_ms: TEST_TIMEOUT_MS,
        timeout_ms: TEST_TIMEOUT_MS,
        max_body_bytes: TEST_MAX_BODY,
    }
}

pub fn base(uri: &str) -> Url {
    Url::parse(&format!("{uri}/prefix")).unwrap()
}

pub fn secret(value: &str) -> SecretString {
    SecretString::from(value.to_owned())
}

pub fn vietjet(uri: &str) -> vietjet::Client {
    vietjet::Client::new(vietjet::Config {
        base_url: base(uri),
        skyjoy: Some(vietjet::Credentials {
            username: "test-skyjoy".into(),
            password: secret("test-skyjoy-pass"),
        }),
        gpay: Some(vietjet::Credentials {
            username: "test-gpay".into(),
            password: secret("test-gpay-pass"),
        }),
        http: options(),
    })
    .unwrap()
}

pub fn skyjoy(uri: &str) -> skyjoy::Client {
    skyjoy::Client::new(skyjoy::Config {
        base_url: base(uri),
        access_token: secret("test-skyjoy-token"),
        http: options(),
    })
    .unwrap()
}

pub fn galaxypay(uri: &str) -> galaxypay::Client {
    galaxypay::Client::new(galaxypay::Config {
        base_url: base(uri),
        access_token: secret("test-gpay-token"),
        http: options(),
    })
    .unwrap()
}

pub fn kybio(uri: &str) -> kybio::Client {
    kybio::Client::new(kybio::Config {
        base_url: base(uri),
        app_id: "test-app".into(),
        app_key: secret("test-app-key"),
        http: options(),
    })
    .unwrap()
}

pub fn crmx(uri: &str) -> crmx::Client {
    crmx::Client::new(crmx::Config {
        base_url: base(uri),
        access_token: secret("test-crmx-token"),
        http: options(),
    })
    .unwrap()
}

pub fn mailer(uri: &str) -> email::Mailer {
    email::Mailer::new(email::Config::Http(email::HttpApiConfig {
        base_url: base(uri),
        access_token: secret("test-mail-token"),
        from: EmailAddress::parse("noreply@closeout.test").unwrap(),
        http: options(),
    }))
    .unwrap()
}

pub fn member() -> vietjet::MemberRef {
    vietjet::MemberRef {
        skyjoy_id: skyjoy_id(),
        phone: phone(),
    }
}

pub fn skyjoy_id() -> SkyjoyId {
    SkyjoyId::parse("SJ0123456789").unwrap()
}

pub fn phone() -> Phone {
    Phone::parse("+84354841605").unwrap()
}

pub fn deletion_request() -> skyjoy::DeletionRequest {
    skyjoy::DeletionRequest {
        skyjoy_id: skyjoy_id(),
        phone: phone(),
        comment: Personal::new("no longer flying".into()),
        request_at: "2024-03-15T04:07:32.347Z".parse().unwrap(),
        request_platform: skyjoy::RequestPlatform::VietjetWeb,
    }
}

pub const PARTNERS: [Partner; 6] = [
    Partner::Vietjet,
    Partner::Skyjoy,
    Partner::Galaxypay,
    Partner::Kybio,
    Partner::Crmx,
    Partner::Email,
];

/// One representative effect call per partner, for the mappings every partner shares.
pub async fn representative_call(partner: Partner, uri: &str, key: &str) -> Result<Reply<()>> {
    match partner {
        Partner::Vietjet => {
            vietjet(uri)
                .remove_token(vietjet::Caller::Gpay, &member(), key)
                .await
        }
        Partner::Skyjoy => skyjoy(uri).deletion_request(&deletion_request(), key).await,
        Partner::Galaxypay => galaxypay(uri)
            .close_wallet(&WalletId::parse("W1").unwrap(), key)
            .await
            .map(|reply| reply.map(|_| ())),
        Partner::Kybio => kybio(uri).disable(42, key).await,
        Partner::Crmx => {
            crmx(uri)
                .update(
                    &PosId::parse("pos-1").unwrap(),
                    &crmx::CustomerUpdate::mask(phone()),
                    key,
                )
                .await
        }
        Partner::Email => {
            mailer(uri)
                .send(
                    &email::Email {
                        to: EmailAddress::parse("member@example.test").unwrap(),
                        subject: "s".into(),
                        text: "t".into(),
                    },
                    key,
                )
                .await
        }
    }
}

/// A body each partner accepts as success for [`representative_call`].
pub fn success_body(partner: Partner) -> serde_json::Value {
    use serde_json::json;
    match partner {
        Partner::Vietjet => json!({}),
        Partner::Skyjoy => json!({"statusCode": 200, "message": "SUCCESS", "data": null}),
        Partner::Galaxypay => json!({"data": {
            "walletId": "W1", "skyjoyId": "SJ0123456789", "status": "CLOSED", "balance": 0,
            "virtualAccount": null, "bankLinks": []
        }}),
        Partner::Kybio => {
            json!({"status": "success", "messages": [], "errorCode": null, "data": null})
        }
        Partner::Crmx => json!({"status": 200, "status_code": 200, "message": "Success!"}),
        Partner::Email => json!({"id": "m-1"}),
    }
}
