//! Galaxy Pay wallet contract: paths, Bearer auth and each error code's outcome.

mod common;

use closeout_connectors::galaxypay::{Vnd, WalletStatus};
use closeout_connectors::{BankLinkId, Error, ErrorCode, Reply, SkyjoyId, WalletId};
use common::galaxypay;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn wallet_json(status: &str) -> serde_json::Value {
    json!({"data": {
        "walletId": "W1", "skyjoyId": "SJ0123456789", "status": status, "balance": 5000,
        "virtualAccount": {"status": "OPEN"},
        "bankLinks": [{"linkId": "L1", "kind": "CARD", "bankCode": "VCB", "status": "LINKED"}]
    }})
}

fn failure(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {"code": code, "message": "x"}}))
}

fn wallet_id() -> WalletId {
    WalletId::parse("W1").unwrap()
}

#[tokio::test]
async fn reads_the_wallet_by_owner_with_the_bearer_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/prefix/v1/wallets"))
        .and(query_param("skyjoyId", "SJ0123456789"))
        .and(header("authorization", "Bearer test-gpay-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(wallet_json("ACTIVE")))
        .mount(&server)
        .await;
    let wallet = galaxypay(&server.uri())
        .wallet_of(&SkyjoyId::parse("SJ0123456789").unwrap(), "k")
        .await
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(wallet.balance, Vnd(5000));
    assert_eq!(wallet.linked_banks().count(), 1);
    assert!(!wallet.may_close());
}

#[tokio::test]
async fn effect_calls_use_their_documented_paths() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/prefix/v1/wallets/W1/status"))
        .and(body_json(json!({"status": "INACTIVE"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(wallet_json("INACTIVE")))
        .expect(1)
        .mount(&server)
        .await;
    for p in ["virtual-account/close", "bank-links/L1/unlink", "close"] {
        Mock::given(method("POST"))
            .and(path(format!("/prefix/v1/wallets/W1/{p}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(wallet_json("INACTIVE")))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/prefix/v1/wallets/W1/settle"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"data": {"walletId": "W1", "settledAmount": 5000, "balance": 0}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = galaxypay(&server.uri());
    let id = wallet_id();
    assert!(!client
        .set_status(&id, WalletStatus::Inactive, "a")
        .await
        .unwrap()
        .is_already_done());
    assert!(client.close_virtual_account(&id, "b").await.is_ok());
    assert!(client
        .unlink_bank(&id, &BankLinkId::parse("L1").unwrap(), "c")
        .await
        .is_ok());
    let settled = client.settle_balance(&id, "d").await.unwrap();
    assert_eq!(settled.data().unwrap().settled_amount, Vnd(5000));
    assert!(client.close_wallet(&id, "e").await.is_ok());
}

#[tokio::test]
async fn each_error_code_maps_to_its_outcome() {
    use ErrorCode::*;
    let cases: [(u16, &str, Option<ErrorCode>); 9] = [
        (404, "WALLET_NOT_FOUND", Some(GalaxypayWalletNotFound)),
        (
            409,
            "VIRTUAL_ACCOUNT_OPEN",
            Some(GalaxypayVirtualAccountOpen),
        ),
        (409, "BALANCE_NOT_ZERO", Some(GalaxypayBalanceNotZero)),
        (409, "BANK_LINKS_REMAIN", Some(GalaxypayBankLinksRemain)),
        (409, "WALLET_NOT_INACTIVE", Some(GalaxypayWalletNotInactive)),
        (404, "BANK_LINK_NOT_FOUND", Some(GalaxypayBankLinkNotFound)),
        (401, "UNAUTHORIZED", Some(Unauthorized)),
        (409, "VIRTUAL_ACCOUNT_ALREADY_CLOSED", None),
        (409, "BANK_LINK_ALREADY_UNLINKED", None),
    ];
    for (status, code, permanent) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(failure(status, code))
            .mount(&server)
            .await;
        let reply = galaxypay(&server.uri())
            .close_virtual_account(&wallet_id(), "k")
            .await;
        match (permanent, reply) {
            (Some(expected), Err(Error::Permanent(f))) => assert_eq!(f.code, expected, "{code}"),
            (None, Ok(Reply::AlreadyDone(a))) => assert!(a.code.is_some(), "{code}"),
            (_, other) => panic!("{code}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn wallet_closed_is_already_done_only_for_close() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(failure(409, "WALLET_CLOSED"))
        .mount(&server)
        .await;
    let client = galaxypay(&server.uri());
    let closed = client.close_wallet(&wallet_id(), "k").await.unwrap();
    assert!(
        matches!(closed, Reply::AlreadyDone(a) if a.code == Some(ErrorCode::GalaxypayWalletClosed))
    );
    let status = client
        .set_status(&wallet_id(), WalletStatus::Active, "k")
        .await;
    assert!(
        matches!(status, Err(Error::Permanent(f)) if f.code == ErrorCode::GalaxypayWalletClosed)
    );
}

#[tokio::test]
async fn a_documented_code_with_a_5xx_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(failure(500, "BALANCE_NOT_ZERO"))
        .mount(&server)
        .await;
    let reply = galaxypay(&server.uri())
        .close_wallet(&wallet_id(), "k")
        .await;
    assert!(
        matches!(reply, Err(Error::Retryable(r)) if r.code == ErrorCode::GalaxypayBalanceNotZero)
    );
}
