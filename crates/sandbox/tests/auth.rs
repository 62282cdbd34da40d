//! Every simulated partner rejects bad credentials with its own error body, over real HTTP.

mod common;

use closeout_connectors::kybio::signature;
use closeout_connectors::Partner;
use serde_json::{json, Value};

#[tokio::test]
async fn vietjet_rejects_wrong_basic_credentials_with_the_seed_body() {
    let h = common::start().await;
    let body = json!({"skyjoyId": "SJ1000000001", "phone": "+84900000001"});
    let response = h
        .http
        .post(h.url(Partner::Vietjet, "/api/partner/v1/remove-token"))
        .basic_auth("someone", Some("wrong"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], json!(false));
    assert_eq!(answer["errorKey"], json!("INVALID_TOKEN_USER"));
    assert_eq!(
        answer["message"],
        json!("token validate không hợp lệ hoặc sai token")
    );

    // The GPAY user may remove tokens but not send deletion events.
    let gpay = h.sandbox.credentials().vietjet_gpay.clone();
    let response = h
        .http
        .post(h.url(Partner::Vietjet, "/api/partner/v1/deletion"))
        .basic_auth(&gpay.username, Some(&gpay.password))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(h.sandbox.effects(&Default::default()).is_empty());
}

#[tokio::test]
async fn vietjet_answers_missing_fields_with_the_seed_key() {
    let h = common::start().await;
    let skyjoy = h.sandbox.credentials().vietjet_skyjoy.clone();
    let response = h
        .http
        .post(h.url(Partner::Vietjet, "/api/partner/v1/remove-token"))
        .basic_auth(&skyjoy.username, Some(&skyjoy.password))
        .json(&json!({"skyjoyId": "SJ1000000001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["errorKey"], json!("MISSING_REQUIRE_FIELD"));
}

#[tokio::test]
async fn skyjoy_rejects_a_missing_or_wrong_bearer_token_with_its_envelope() {
    let h = common::start().await;
    for token in [None, Some("not-the-token")] {
        let mut request = h.http.get(h.url(
            Partner::Skyjoy,
            "/api-user/partner/v1/user-profile/SJ1000000001",
        ));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["errors"]["code"], json!("UNAUTHORIZED"));
        assert_eq!(answer["statusCode"], json!(401));
    }
}

#[tokio::test]
async fn galaxypay_crmx_and_mail_reject_a_wrong_bearer_token() {
    let h = common::start().await;
    let galaxypay = h
        .http
        .get(h.url(Partner::Galaxypay, "/v1/wallets/W-0001"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(galaxypay.status(), 401);
    let answer: Value = galaxypay.json().await.unwrap();
    assert_eq!(answer["error"]["code"], json!("UNAUTHORIZED"));

    let crmx = h
        .http
        .get(h.url(
            Partner::Crmx,
            "/customers_location?phone=0900000001&pos_id=pos-001",
        ))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(crmx.status(), 401);
    let answer: Value = crmx.json().await.unwrap();
    assert_eq!(answer["status"], json!(401));

    let mail = h
        .http
        .post(h.url(Partner::Email, "/v1/messages"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(mail.status(), 401);
}

#[tokio::test]
async fn kybio_requires_a_valid_signature_and_app_id() {
    let h = common::start().await;
    let credentials = h.sandbox.credentials().clone();
    let body = serde_json::to_vec(
        &json!({"appId": credentials.kybio_app_id, "customerNum": "8008010001"}),
    )
    .unwrap();
    let url = h.url(Partner::Kybio, "/openapi/v1/customerOpenApi/queryByNumber");
    let send = |signature: String| {
        h.http
            .post(&url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Time-stamp", "1437528688233")
            .header("Data-signature", signature)
            .body(body.clone())
            .send()
    };
    let refused = send(signature("wrong-key", &body)).await.unwrap();
    assert_eq!(refused.status(), 401);
    let answer: Value = refused.json().await.unwrap();
    assert_eq!(answer["status"], json!("error"));
    assert_eq!(answer["errorCode"], json!(1001));

    let accepted = send(signature(&credentials.kybio_app_key, &body))
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let answer: Value = accepted.json().await.unwrap();
    assert_eq!(answer["status"], json!("success"));
    assert_eq!(answer["data"]["enable"], json!(1));
}
