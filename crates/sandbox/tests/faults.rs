//! Fault injection over loopback HTTP: each kind, set through the library and the admin
//! endpoint, plus the admin ledger, reset and a prompt stop while a response hangs.

mod common;

use std::time::{Duration, Instant};

use closeout_connectors::vietjet::Caller;
use closeout_connectors::{Endpoint, Error, ErrorCode, Partner, Reply};
use closeout_sandbox::{member_id, members, Fault, FaultRule, Injected};
use serde_json::{json, Value};

fn retry_code<T: std::fmt::Debug>(result: closeout_connectors::Result<T>) -> (ErrorCode, bool) {
    match result {
        Err(Error::Retryable(retry)) => (retry.code, retry.ambiguous),
        other => panic!("expected a retryable failure, got {other:?}"),
    }
}

#[tokio::test]
async fn fail_next_set_over_admin_fails_exactly_n_calls() {
    let h = common::start().await;
    let created = h
        .http
        .post(h.admin("/faults"))
        .json(&json!({"endpoint": "vietjet.remove_token", "kind": "fail_next", "count": 2, "status": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let listed: Value = h.admin_get("/faults").await;
    assert_eq!(listed[0]["kind"], json!("fail_next"));

    let member = h.member_ref(members::ACTIVE_FULL);
    let vietjet = &h.connectors.vietjet;
    for _ in 0..2 {
        let result = vietjet.remove_token(Caller::Gpay, &member, "wf/rt").await;
        assert_eq!(retry_code(result), (ErrorCode::ServerError, true));
    }
    assert!(
        h.sandbox.effects(&Default::default()).is_empty(),
        "failed calls apply nothing"
    );
    assert_eq!(
        vietjet.remove_token(Caller::Gpay, &member, "wf/rt").await,
        Ok(Reply::Done(()))
    );
    // Other endpoints were never affected.
    assert!(h.sandbox.faults().is_empty());
}

#[tokio::test]
async fn an_injected_body_and_status_reach_the_client() {
    let h = common::start().await;
    h.sandbox
        .add_fault(FaultRule::on(
            Endpoint::SkyjoyDeletionRequest,
            Fault::FailNext {
                count: 1,
                answer: Injected {
                    status: Some(500),
                    body: Some(json!({
                        "errors": {"name": "CloseAccountFailed", "message": "x", "code": "CLOSE_ACCOUNT_FAILED"},
                        "message": "x", "statusCode": 500
                    })),
                },
            },
        ))
        .unwrap();
    let member = h.sandbox.member(&member_id(members::ACTIVE_FULL)).unwrap();
    let request = closeout_connectors::skyjoy::DeletionRequest {
        skyjoy_id: member.skyjoy_id,
        phone: member.phone,
        comment: closeout_connectors::Personal::new("c".into()),
        request_at: chrono::Utc::now(),
        request_platform: closeout_connectors::skyjoy::RequestPlatform::VietjetWeb,
    };
    let result = h.connectors.skyjoy.deletion_request(&request, "k").await;
    assert_eq!(retry_code(result).0, ErrorCode::SkyjoyCloseAccountFailed);
}

#[tokio::test]
async fn fail_member_fails_only_that_member() {
    let h = common::start().await;
    h.sandbox
        .add_fault(FaultRule {
            endpoint: None,
            partner: Some(closeout_connectors::Partner::Skyjoy),
            fault: Fault::FailMember {
                member: member_id(members::PENDING),
                answer: Injected {
                    status: Some(429),
                    body: None,
                },
            },
        })
        .unwrap();
    let skyjoy = &h.connectors.skyjoy;
    let result = skyjoy.balance(&member_id(members::PENDING), "k").await;
    assert_eq!(retry_code(result), (ErrorCode::RateLimited, false));
    assert!(skyjoy
        .balance(&member_id(members::ACTIVE_FULL), "k")
        .await
        .is_ok());
}

#[tokio::test]
async fn error_rate_one_always_fails_and_zero_never_does() {
    let h = common::start().await;
    let rule = |rate| {
        FaultRule::on(
            Endpoint::SkyjoyBalance,
            Fault::ErrorRate {
                rate,
                answer: Injected::default(),
            },
        )
    };
    h.sandbox.add_fault(rule(1.0)).unwrap();
    let id = member_id(members::ACTIVE_FULL);
    for _ in 0..5 {
        assert_eq!(
            retry_code(h.connectors.skyjoy.balance(&id, "k").await),
            (ErrorCode::ServerError, false)
        );
    }
    h.sandbox.clear_faults();
    h.sandbox.add_fault(rule(0.0)).unwrap();
    for _ in 0..5 {
        assert!(h.connectors.skyjoy.balance(&id, "k").await.is_ok());
    }
    let invalid = h
        .http
        .post(h.admin("/faults"))
        .json(&json!({"kind": "error_rate", "rate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
}

#[tokio::test]
async fn latency_delays_and_past_the_timeout_applies_nothing() {
    let h = common::start_with_short_timeouts().await;
    let member = h.member_ref(members::ACTIVE_FULL);
    h.sandbox
        .add_fault(FaultRule::on(
            Endpoint::VietjetRemoveToken,
            Fault::Latency { ms: 100 },
        ))
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        h.connectors
            .vietjet
            .remove_token(Caller::Gpay, &member, "a")
            .await,
        Ok(Reply::Done(()))
    );
    assert!(started.elapsed() >= Duration::from_millis(100));

    h.sandbox.clear_faults();
    h.sandbox
        .add_fault(FaultRule::on(
            Endpoint::VietjetDeletion,
            Fault::Latency { ms: 5_000 },
        ))
        .unwrap();
    let result = h.connectors.vietjet.notify_deletion(&member, "b").await;
    assert_eq!(retry_code(result), (ErrorCode::Timeout, true));
    let deletions = h.sandbox.effects(&closeout_sandbox::EffectFilter {
        endpoint: Some(Endpoint::VietjetDeletion),
        ..Default::default()
    });
    assert!(deletions.is_empty(), "latency happens before the effect");
}

#[tokio::test]
async fn apply_then_timeout_applies_once_and_the_retry_is_already_done() {
    let h = common::start_with_short_timeouts().await;
    h.sandbox
        .add_fault(FaultRule::on(
            Endpoint::GalaxypayCloseVirtualAccount,
            Fault::ApplyThenTimeout {
                count: 1,
                hang_ms: 10_000,
            },
        ))
        .unwrap();
    let wallet = closeout_connectors::WalletId::parse("W-0001").unwrap();
    let gp = &h.connectors.galaxypay;

    let first = gp.close_virtual_account(&wallet, "wf/va").await;
    assert_eq!(retry_code(first), (ErrorCode::Timeout, true));
    let ledger = h.sandbox.effects(&closeout_sandbox::EffectFilter {
        idempotency_key: Some("wf/va".into()),
        ..Default::default()
    });
    assert_eq!(
        ledger.len(),
        1,
        "the effect happened although the client timed out"
    );

    let retry = gp.close_virtual_account(&wallet, "wf/va").await.unwrap();
    assert!(retry.is_already_done(), "{retry:?}");
    let over_admin: Vec<closeout_sandbox::Effect> =
        h.admin_get("/effects?idempotency_key=wf/va").await;
    assert_eq!(over_admin, ledger, "applied once per idempotency key");
}

#[tokio::test]
async fn stop_ends_a_hanging_response_promptly() {
    let h = common::start().await;
    h.sandbox
        .add_fault(FaultRule::on(
            Endpoint::SkyjoyUnlinkMember,
            Fault::ApplyThenTimeout {
                count: 1,
                hang_ms: 60_000,
            },
        ))
        .unwrap();
    let connectors = h.connectors.clone();
    let call = tokio::spawn(async move {
        let request = closeout_connectors::skyjoy::UnlinkMember {
            skyjoy_id: member_id(members::ACTIVE_FULL),
            partner_member_id: closeout_connectors::PartnerMemberId::parse("HD000001").unwrap(),
        };
        connectors.skyjoy.unlink_member(&request, "wf/unlink").await
    });
    // The effect is recorded before the hang starts, so once it is in the ledger the
    // response is hanging.
    let ledger_filter = closeout_sandbox::EffectFilter {
        idempotency_key: Some("wf/unlink".into()),
        ..Default::default()
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        h.sandbox.wait_for_effects(&ledger_filter, 1),
    )
    .await
    .expect("the call reaches the sandbox");
    tokio::time::timeout(Duration::from_secs(5), h.sandbox.stop())
        .await
        .expect("stop does not wait for the hang");
    let _ = call.await.unwrap();
}

#[tokio::test]
async fn reset_restores_the_seed_and_clears_the_ledger() {
    let h = common::start().await;
    let member = h.member_ref(members::ACTIVE_FULL);
    h.connectors
        .vietjet
        .remove_token(Caller::Gpay, &member, "k")
        .await
        .unwrap();
    h.sandbox
        .add_fault(FaultRule::on(
            Endpoint::VietjetDeletion,
            Fault::Latency { ms: 1 },
        ))
        .unwrap();
    let reset = h.http.post(h.admin("/reset")).send().await.unwrap();
    assert_eq!(reset.status(), 204);
    assert!(h.sandbox.effects(&Default::default()).is_empty());
    assert!(h.sandbox.faults().is_empty());
    let tokens = h
        .sandbox
        .member(&member.skyjoy_id)
        .unwrap()
        .vietjet
        .unwrap()
        .card_tokens;
    assert_eq!(tokens.len(), 2);
    // The stored answer went too: the same key applies again.
    assert_eq!(
        h.connectors
            .vietjet
            .remove_token(Caller::Gpay, &member, "k")
            .await,
        Ok(Reply::Done(()))
    );
    let members: Value = h.admin_get("/members").await;
    assert_eq!(members.as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn faults_can_be_configured_at_start() {
    let config: closeout_sandbox::SandboxConfig = serde_json::from_value(json!({
        "faults": [{"partner": "crmx", "kind": "fail_next", "count": 1, "status": 502}],
        "rng_seed": 3
    }))
    .unwrap();
    let h = common::start_with(config, closeout_connectors::HttpOptions::default()).await;
    let phone = closeout_connectors::Phone::parse("0900000001").unwrap();
    let pos = closeout_connectors::PosId::parse("pos-001").unwrap();
    assert_eq!(
        retry_code(h.connectors.crmx.customer(&phone, &pos, "k").await).0,
        ErrorCode::ServerError
    );
    assert!(h.connectors.crmx.customer(&phone, &pos, "k").await.is_ok());
}

// A 5xx is never stored for replay (world.rs: "the first answer (below 500) ... is stored";
// faults.rs: rules are consulted before the replay), so the repeat of a key that got a 5xx is
// applied for real.

#[tokio::test]
async fn a_key_that_got_an_injected_5xx_is_applied_for_real_on_its_repeat() {
    let h = common::start().await;
    h.sandbox
        .add_fault(FaultRule::on(
            Endpoint::SkyjoyClose,
            Fault::FailNext {
                count: 1,
                answer: Injected::default(),
            },
        ))
        .unwrap();
    let id = member_id(members::ACTIVE_FULL);
    let request = closeout_connectors::skyjoy::CloseRequest {
        skyjoy_id: id.clone(),
        reason: closeout_connectors::Personal::new("moving".into()),
    };
    let by_key = closeout_sandbox::EffectFilter {
        idempotency_key: Some("wf/close".into()),
        ..Default::default()
    };
    let skyjoy = &h.connectors.skyjoy;

    let failed = skyjoy.close(&request, "wf/close").await;
    assert_eq!(retry_code(failed).0, ErrorCode::ServerError);
    assert!(h.sandbox.effects(&by_key).is_empty());
    assert!(h.sandbox.member(&id).unwrap().closed_at.is_none());

    // Applied now, not a replay of the 503: `Done` with the real result.
    match skyjoy.close(&request, "wf/close").await {
        Ok(Reply::Done(closed)) => assert_eq!(closed.forfeited_points, 1200),
        other => panic!("expected the repeat to be applied, got {other:?}"),
    }
    assert!(h.sandbox.member(&id).unwrap().closed_at.is_some());
    assert_eq!(h.sandbox.effects(&by_key).len(), 1);

    // And it is the real answer that is stored for the next repeat.
    let replayed = skyjoy.close(&request, "wf/close").await.unwrap();
    assert!(replayed.is_already_done(), "{replayed:?}");
    assert_eq!(replayed.data().map(|c| c.forfeited_points), Some(1200));
    assert_eq!(h.sandbox.effects(&by_key).len(), 1, "applied once");
}

#[tokio::test]
async fn a_500_set_over_admin_is_not_replayed_to_the_repeat() {
    let h = common::start().await;
    let created = h
        .http
        .post(h.admin("/faults"))
        .json(&json!({"endpoint": "email.send", "kind": "fail_next", "count": 1, "status": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let token = h.sandbox.credentials().mail_token.clone();
    let send = || {
        h.http
            .post(h.url(Partner::Email, "/v1/messages"))
            .bearer_auth(&token)
            .header(closeout_connectors::IDEMPOTENCY_KEY_HEADER, "wf/email")
            .json(&json!({
                "from": "noreply@closeout.test", "to": "someone@example.test",
                "subject": "s", "text": "t"
            }))
            .send()
    };
    let replayed = |response: &reqwest::Response| {
        response
            .headers()
            .get(closeout_connectors::IDEMPOTENT_REPLAYED_HEADER)
            .map(|v| v.to_str().unwrap().to_owned())
    };

    let failed = send().await.unwrap();
    assert_eq!(failed.status(), 500);
    assert!(h.sandbox.emails().is_empty());

    let applied = send().await.unwrap();
    assert_eq!(applied.status(), 202);
    assert_eq!(replayed(&applied), None);
    let applied: Value = applied.json().await.unwrap();
    assert_eq!(applied, json!({"id": "msg-1"}));

    let again = send().await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(replayed(&again).as_deref(), Some("true"));
    assert_eq!(again.json::<Value>().await.unwrap(), applied);

    assert_eq!(h.sandbox.emails().len(), 1);
    let ledger: Vec<closeout_sandbox::Effect> =
        h.admin_get("/effects?idempotency_key=wf/email").await;
    assert_eq!(ledger.len(), 1, "{ledger:?}");
}

// Scope (faults.rs: "A rule with neither `endpoint` nor `partner` applies to every partner
// endpoint"; `FaultRule::on` scopes a rule to one endpoint).

/// One read or effect call on each partner, each answering whether it failed with an
/// injected 5xx (panicking on any other failure).
async fn call_every_partner(h: &common::Harness, key: &str) -> Vec<(Partner, bool)> {
    fn failed<T: std::fmt::Debug>(result: closeout_connectors::Result<T>) -> bool {
        match result {
            Ok(_) => false,
            Err(_) => {
                assert_eq!(retry_code(result).0, ErrorCode::ServerError);
                true
            }
        }
    }
    let c = &h.connectors;
    let id = member_id(members::ACTIVE_FULL);
    let member = h.sandbox.member(&id).unwrap();
    let phone = closeout_connectors::Phone::parse("0900000001").unwrap();
    let pos = closeout_connectors::PosId::parse("pos-001").unwrap();
    let number = closeout_connectors::kybio::MemberNumber("8008010001".into());
    let email = closeout_connectors::email::Email::closure_confirmation(
        member.email.clone(),
        &id,
        chrono::Utc::now(),
        chrono::Utc::now(),
    );
    let vietjet = c
        .vietjet
        .remove_token(Caller::Gpay, &h.member_ref(members::ACTIVE_FULL), key)
        .await;
    vec![
        (Partner::Vietjet, failed(vietjet)),
        (Partner::Skyjoy, failed(c.skyjoy.balance(&id, key).await)),
        (
            Partner::Galaxypay,
            failed(c.galaxypay.wallet_of(&id, key).await),
        ),
        (
            Partner::Kybio,
            failed(c.kybio.query_by_number(&number, key).await),
        ),
        (
            Partner::Crmx,
            failed(c.crmx.customer(&phone, &pos, key).await),
        ),
        (Partner::Email, failed(c.email.send(&email, key).await)),
    ]
}

#[tokio::test]
async fn an_error_rate_rule_without_an_endpoint_fails_every_partner() {
    let h = common::start().await;
    let created = h
        .http
        .post(h.admin("/faults"))
        .json(&json!({"kind": "error_rate", "rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let outcomes = call_every_partner(&h, "all/1").await;
    assert!(outcomes.iter().all(|(_, failed)| *failed), "{outcomes:?}");
    assert!(h.sandbox.effects(&Default::default()).is_empty());

    let cleared = h.http.delete(h.admin("/faults")).send().await.unwrap();
    assert_eq!(cleared.status(), 204);
    let outcomes = call_every_partner(&h, "all/2").await;
    assert!(outcomes.iter().all(|(_, failed)| !*failed), "{outcomes:?}");
}

#[tokio::test]
async fn a_fail_next_rule_without_an_endpoint_counts_calls_to_any_partner() {
    let h = common::start().await;
    h.sandbox
        .add_fault(FaultRule {
            endpoint: None,
            partner: None,
            fault: Fault::FailNext {
                count: 2,
                answer: Injected::default(),
            },
        })
        .unwrap();
    let member = h.member_ref(members::ACTIVE_FULL);
    let id = member_id(members::ACTIVE_FULL);
    let c = &h.connectors;
    let removed = c.vietjet.remove_token(Caller::Gpay, &member, "k/1").await;
    assert_eq!(retry_code(removed).0, ErrorCode::ServerError);
    let balance = c.skyjoy.balance(&id, "k/2").await;
    assert_eq!(retry_code(balance).0, ErrorCode::ServerError);
    assert!(
        h.sandbox.faults().is_empty(),
        "both calls consumed the rule"
    );
    assert!(c.galaxypay.wallet_of(&id, "k/3").await.is_ok());
    assert_eq!(
        c.vietjet.remove_token(Caller::Gpay, &member, "k/1").await,
        Ok(Reply::Done(()))
    );
}

#[tokio::test]
async fn a_rule_with_an_endpoint_or_partner_fails_only_there() {
    let h = common::start().await;
    let created = h
        .http
        .post(h.admin("/faults"))
        .json(&json!({"endpoint": "skyjoy.balance", "kind": "error_rate", "rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = member_id(members::ACTIVE_FULL);
    let c = &h.connectors;
    for key in ["b/1", "b/2"] {
        assert_eq!(
            retry_code(c.skyjoy.balance(&id, key).await).0,
            ErrorCode::ServerError
        );
    }
    // The same partner's other endpoints and every other partner are untouched.
    assert!(c.skyjoy.user_profile(&id, "p").await.is_ok());
    let outcomes = call_every_partner(&h, "e").await;
    let failed: Vec<_> = outcomes.iter().filter(|(_, f)| *f).collect();
    assert_eq!(failed, [&(Partner::Skyjoy, true)], "{outcomes:?}");

    h.sandbox.clear_faults();
    h.sandbox
        .add_fault(FaultRule {
            endpoint: None,
            partner: Some(Partner::Galaxypay),
            fault: Fault::ErrorRate {
                rate: 1.0,
                answer: Injected::default(),
            },
        })
        .unwrap();
    let wallet = closeout_connectors::WalletId::parse("W-0001").unwrap();
    assert_eq!(
        retry_code(c.galaxypay.close_virtual_account(&wallet, "va").await).0,
        ErrorCode::ServerError
    );
    let outcomes = call_every_partner(&h, "p").await;
    let failed: Vec<_> = outcomes.iter().filter(|(_, f)| *f).collect();
    assert_eq!(failed, [&(Partner::Galaxypay, true)], "{outcomes:?}");
}
