//! SkyJoy Member API and deletion request: paths, Bearer auth, envelopes and every
//! documented error code.

mod common;

use closeout_connectors::skyjoy::{CloseRequest, Lookup, MemberStatus, UnlinkMember};
use closeout_connectors::{DocumentId, Error, ErrorCode, PartnerMemberId, Personal, Reply};
use common::{deletion_request, skyjoy, skyjoy_id};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ok(data: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"statusCode": 200, "message": "SUCCESS", "data": data}))
}

fn failure(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "errors": {"name": "X", "message": "x", "code": code},
        "message": "x",
        "statusCode": status
    }))
}

async fn deletion_answered(response: ResponseTemplate) -> closeout_connectors::Result<Reply<()>> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    skyjoy(&server.uri())
        .deletion_request(&deletion_request(), "k")
        .await
}

#[tokio::test]
async fn deletion_request_posts_the_seed_body_with_the_bearer_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/prefix/api-user/partner/v1/user/deletion-request"))
        .and(header("authorization", "Bearer test-skyjoy-token"))
        .and(header("Idempotency-Key", "wf/submit"))
        .and(body_json(json!({
            "skyjoyId": "SJ0123456789",
            "phone": "+84354841605",
            "comment": "no longer flying",
            "requestAt": "2024-03-15T04:07:32.347Z",
            "requestPlatform": "Vietjet web"
        })))
        .respond_with(ok(json!(null)))
        .expect(1)
        .mount(&server)
        .await;
    let reply = skyjoy(&server.uri())
        .deletion_request(&deletion_request(), "wf/submit")
        .await;
    assert_eq!(reply, Ok(Reply::Done(())));
}

#[tokio::test]
async fn documented_deletion_errors_map_to_one_outcome_each() {
    let permanent = |r: &closeout_connectors::Result<Reply<()>>| match r {
        Err(Error::Permanent(f)) => Some(f.code),
        _ => None,
    };
    let r = deletion_answered(failure(404, "USER_NOT_FOUND")).await;
    assert_eq!(permanent(&r), Some(ErrorCode::SkyjoyUserNotFound));
    let r = deletion_answered(failure(400, "EMAIL_NOT_VERIFIED")).await;
    assert_eq!(permanent(&r), Some(ErrorCode::SkyjoyEmailNotVerified));
    let r = deletion_answered(failure(400, "CLOSE_ACCOUNT_FAILED")).await;
    assert_eq!(permanent(&r), Some(ErrorCode::SkyjoyCloseAccountFailed));
    let r = deletion_answered(failure(500, "CLOSE_ACCOUNT_FAILED")).await;
    assert!(
        matches!(&r, Err(Error::Retryable(x)) if x.code == ErrorCode::SkyjoyCloseAccountFailed),
        "{r:?}"
    );
    let r = deletion_answered(failure(409, "DUPLICATE_REQUEST")).await;
    match r {
        Ok(Reply::AlreadyDone(already)) => {
            assert_eq!(already.code, Some(ErrorCode::SkyjoyDuplicateRequest))
        }
        other => panic!("expected already done, got {other:?}"),
    }
    let r = deletion_answered(failure(401, "UNAUTHORIZED")).await;
    assert_eq!(permanent(&r), Some(ErrorCode::Unauthorized));
}

#[tokio::test]
async fn profile_parses_status_and_contact() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/prefix/api-user/partner/v1/user-profile/SJ0123456789",
        ))
        .and(header("authorization", "Bearer test-skyjoy-token"))
        .respond_with(ok(json!({
            "skyjoyId": "SJ0123456789", "dateOfBirth": "01-01-1990", "dateOfJoin": "17-01-2023",
            "email": "member@example.test", "firstName": "A", "lastName": "B", "fullName": "A B",
            "eKycStatus": "COMPLETE", "status": "SUSPECTED_FRAUD", "phone": "+84979921380"
        })))
        .mount(&server)
        .await;
    let profile = skyjoy(&server.uri())
        .user_profile(&skyjoy_id(), "k")
        .await
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(profile.status, MemberStatus::SuspectedFraud);
    assert!(!profile.status.may_request_closure());
    assert_eq!(profile.email.unwrap().as_str(), "member@example.test");
    assert_eq!(profile.ekyc_status.as_deref(), Some("COMPLETE"));
    assert_eq!(profile.email_verified, None);
}

#[tokio::test]
async fn an_unknown_status_is_a_malformed_answer() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(
            json!({"skyjoyId": "SJ0123456789", "status": "HIBERNATING"}),
        ))
        .mount(&server)
        .await;
    let reply = skyjoy(&server.uri()).user_profile(&skyjoy_id(), "k").await;
    assert!(
        matches!(reply, Err(Error::Retryable(r)) if r.code == ErrorCode::MalformedResponse && r.ambiguous)
    );
}

#[tokio::test]
async fn profile_ext_lookup_and_balance_use_the_seed_paths() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/prefix/api-user/partner/v1/user-profile-ext/SJ0123456789",
        ))
        .respond_with(ok(
            json!({"skyjoyId": "SJ0123456789", "tierClass": "Diamond", "nationalId": "N01"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prefix/api-user/partner/v2/user/lookup"))
        .and(query_param("documentId", "083182018655"))
        .respond_with(ok(
            json!({"skyjoyId": "SJ0123456789", "phone": "+84987654321"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/prefix/api-point/partner/v1/user-balance/SJ0123456789",
        ))
        .respond_with(ok(json!({"skyjoyId": "SJ0123456789", "totalPoint": 964})))
        .mount(&server)
        .await;
    let client = skyjoy(&server.uri());
    let ext = client
        .user_profile_ext(&skyjoy_id(), "k")
        .await
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(ext.tier_class.as_deref(), Some("Diamond"));
    let found = client
        .lookup(
            &Lookup::DocumentId(DocumentId::parse("083182018655").unwrap()),
            "k",
        )
        .await
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(found.skyjoy_id, skyjoy_id());
    let balance = client
        .balance(&skyjoy_id(), "k")
        .await
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(balance.total_point, 964);
}

#[tokio::test]
async fn unlink_member_is_done_or_already_done() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/prefix/api-user/partner/v1/user/unlink-member"))
        .and(body_json(
            json!({"skyjoyId": "SJ0123456789", "partnerMemberId": "VK084282"}),
        ))
        .respond_with(ok(json!(true)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(failure(409, "MEMBER_NOT_LINKED"))
        .mount(&server)
        .await;
    let client = skyjoy(&server.uri());
    let request = UnlinkMember {
        skyjoy_id: skyjoy_id(),
        partner_member_id: PartnerMemberId::parse("VK084282").unwrap(),
    };
    assert_eq!(
        client.unlink_member(&request, "k").await,
        Ok(Reply::Done(()))
    );
    let again = client.unlink_member(&request, "k2").await.unwrap();
    assert!(again.is_already_done());
}

#[tokio::test]
async fn close_returns_what_was_forfeited_and_maps_its_codes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/prefix/api-user/partner/v1/user/close"))
        .and(body_json(
            json!({"skyjoyId": "SJ0123456789", "reason": "moving abroad"}),
        ))
        .respond_with(ok(json!({
            "skyjoyId": "SJ0123456789", "closedAt": "2024-04-01T00:00:00Z",
            "forfeitedTier": "Gold", "forfeitedPoints": 1200
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(failure(409, "ACCOUNT_ALREADY_CLOSED"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(failure(409, "ACCOUNT_NOT_CLOSABLE"))
        .mount(&server)
        .await;
    let client = skyjoy(&server.uri());
    let request = CloseRequest {
        skyjoy_id: skyjoy_id(),
        reason: Personal::new("moving abroad".into()),
    };
    let closed = client.close(&request, "k").await.unwrap();
    assert!(!closed.is_already_done());
    assert_eq!(closed.data().unwrap().forfeited_points, 1200);
    let already = client.close(&request, "k").await.unwrap();
    assert!(
        matches!(already, Reply::AlreadyDone(a) if a.code == Some(ErrorCode::SkyjoyAccountAlreadyClosed))
    );
    let refused = client.close(&request, "k").await;
    assert!(
        matches!(refused, Err(Error::Permanent(f)) if f.code == ErrorCode::SkyjoyAccountNotClosable)
    );
}
