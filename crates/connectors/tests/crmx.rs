//! CRMX customers_location: query parameters, Bearer auth, body status, and erasure by
//! masking.

mod common;

use closeout_connectors::crmx::MASK;
use closeout_connectors::{Error, ErrorCode, Phone, PosId, Reply};
use common::crmx;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn phone() -> Phone {
    Phone::parse("0945350398").unwrap()
}

fn pos() -> PosId {
    PosId::parse("pos-1").unwrap()
}

fn customer(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"status": 200, "message": "Customer info", "data": {
            "_id": "5d8c", "phone": "0945350398", "name": name, "email": name, "birthday": name,
            "year_birthday": name, "home_town": name, "address": name, "fb_id": name,
            "facebook": name, "twitter": null, "relationship_status": name, "gender": "1"
        }}),
    )
}

fn saved() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"status": 200, "status_code": 200, "message": "Success!"}))
}

#[tokio::test]
async fn reads_a_member_by_phone_and_location() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/prefix/customers_location"))
        .and(query_param("phone", "0945350398"))
        .and(query_param("pos_id", "pos-1"))
        .and(header("authorization", "Bearer test-crmx-token"))
        .respond_with(customer("Ly Tu"))
        .mount(&server)
        .await;
    let found = crmx(&server.uri())
        .customer(&phone(), &pos(), "k")
        .await
        .unwrap()
        .into_data()
        .flatten()
        .unwrap();
    assert_eq!(found.unmasked_fields().len(), 9, "twitter is null");
}

#[tokio::test]
async fn not_found_and_body_status_errors_are_mapped() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"status": 404, "message": "Customer not found"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"status": 500, "message": "db down"})),
        )
        .mount(&server)
        .await;
    let client = crmx(&server.uri());
    assert_eq!(
        client.customer(&phone(), &pos(), "k").await,
        Ok(Reply::Done(None))
    );
    let update = closeout_connectors::crmx::CustomerUpdate::mask(phone());
    let failed = client.update(&pos(), &update, "k").await;
    assert!(
        matches!(&failed, Err(Error::Retryable(r)) if r.code == ErrorCode::ServerError),
        "{failed:?}"
    );
}

#[tokio::test]
async fn erase_masks_then_verifies() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/prefix/customers_location"))
        .and(query_param("pos_id", "pos-1"))
        .and(header("Idempotency-Key", "wf/mask"))
        .and(body_partial_json(json!({"phone": "0945350398", "name": MASK, "email": MASK, "twitter": MASK, "relationship_status": MASK})))
        .respond_with(saved())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("Idempotency-Key", "wf/verify"))
        .respond_with(customer(MASK))
        .mount(&server)
        .await;
    let erased = crmx(&server.uri())
        .erase(&phone(), &pos(), "wf")
        .await
        .unwrap();
    assert_eq!(erased.data().unwrap().masked_fields.len(), 10);
}

#[tokio::test]
async fn erase_retries_when_fields_are_still_visible_and_is_done_when_absent() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(saved())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(customer("still here"))
        .mount(&server)
        .await;
    let result = crmx(&server.uri()).erase(&phone(), &pos(), "wf").await;
    assert!(matches!(result, Err(Error::Retryable(r)) if r.code == ErrorCode::CrmxNotMasked));

    let empty = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"status": 404, "message": "Customer not found"})),
        )
        .mount(&empty)
        .await;
    let absent = crmx(&empty.uri())
        .erase(&phone(), &pos(), "wf")
        .await
        .unwrap();
    assert!(
        matches!(absent, Reply::AlreadyDone(a) if a.code == Some(ErrorCode::CrmxCustomerNotFound))
    );
}
