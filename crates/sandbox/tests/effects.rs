//! State changes are real and applied once per idempotency key; driven through the
//! connectors over loopback HTTP.

mod common;

use chrono::Utc;
use closeout_connectors::galaxypay::{BankLinkStatus, VirtualAccountStatus, Vnd, WalletStatus};
use closeout_connectors::kybio::{Enable, MemberNumber};
use closeout_connectors::skyjoy::{CloseRequest, DeletionRequest, RequestPlatform, UnlinkMember};
use closeout_connectors::vietjet::Caller;
use closeout_connectors::{
    email, Error, ErrorCode, Partner, PartnerMemberId, Personal, Phone, PosId, Reply, WalletId,
};
use closeout_sandbox::{member_id, members, EffectFilter};

#[tokio::test]
async fn remove_token_removes_tokens_once_per_key() {
    let h = common::start().await;
    let id = member_id(members::ACTIVE_FULL);
    let member = h.member_ref(members::ACTIVE_FULL);
    let vietjet = &h.connectors.vietjet;

    let first = vietjet
        .remove_token(Caller::Gpay, &member, "wf-1/remove-token")
        .await;
    assert_eq!(first, Ok(Reply::Done(())));
    assert!(h
        .sandbox
        .member(&id)
        .unwrap()
        .vietjet
        .unwrap()
        .card_tokens
        .is_empty());

    let repeated = vietjet
        .remove_token(Caller::Gpay, &member, "wf-1/remove-token")
        .await
        .unwrap();
    assert!(repeated.is_already_done(), "{repeated:?}");

    let effects = h.effects_for(&id);
    assert_eq!(effects.len(), 1, "{effects:?}");
    assert_eq!(
        effects[0].endpoint,
        closeout_connectors::Endpoint::VietjetRemoveToken
    );
    assert_eq!(
        effects[0].idempotency_key.as_deref(),
        Some("wf-1/remove-token")
    );
    assert_eq!(effects[0].change, "removed 2 card tokens");
}

#[tokio::test]
async fn after_vietjet_deletion_the_user_no_longer_exists() {
    let h = common::start().await;
    let member = h.member_ref(members::ACTIVE_FULL);
    let vietjet = &h.connectors.vietjet;
    assert_eq!(
        vietjet.notify_deletion(&member, "wf/deletion").await,
        Ok(Reply::Done(()))
    );
    match vietjet
        .remove_token(Caller::Skyjoy, &member, "wf/remove")
        .await
    {
        Ok(Reply::AlreadyDone(already)) => {
            assert_eq!(already.code, Some(ErrorCode::VietjetUserNotExist))
        }
        other => panic!("expected USER_NOT_EXIST as already done, got {other:?}"),
    }
    // A member who never had a Vietjet user answers the same way.
    let welcome = h.member_ref(members::WELCOME);
    assert!(vietjet
        .remove_token(Caller::Gpay, &welcome, "k")
        .await
        .unwrap()
        .is_already_done());
}

fn deletion(h: &common::Harness, id: &str) -> DeletionRequest {
    let member = h.sandbox.member(&member_id(id)).unwrap();
    DeletionRequest {
        skyjoy_id: member.skyjoy_id,
        phone: member.phone,
        comment: Personal::new("closing".into()),
        request_at: Utc::now(),
        request_platform: RequestPlatform::SkyjoyApp,
    }
}

fn permanent_code<T: std::fmt::Debug>(result: closeout_connectors::Result<T>) -> ErrorCode {
    match result {
        Err(Error::Permanent(failure)) => failure.code,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[tokio::test]
async fn skyjoy_deletion_request_applies_the_brd_eligibility_rules() {
    let h = common::start().await;
    let skyjoy = &h.connectors.skyjoy;
    let r = skyjoy
        .deletion_request(&deletion(&h, members::UNVERIFIED_EMAIL), "a")
        .await;
    assert_eq!(permanent_code(r), ErrorCode::SkyjoyEmailNotVerified);
    for id in [members::MERGED, members::BLOCKED, members::SUSPECTED_FRAUD] {
        let r = skyjoy.deletion_request(&deletion(&h, id), "b").await;
        assert_eq!(
            permanent_code(r),
            ErrorCode::SkyjoyCloseAccountFailed,
            "{id}"
        );
    }
    let mut unknown = deletion(&h, members::ACTIVE_FULL);
    unknown.skyjoy_id = member_id("SJ9999999999");
    assert_eq!(
        permanent_code(skyjoy.deletion_request(&unknown, "c").await),
        ErrorCode::SkyjoyUserNotFound
    );

    let pending = skyjoy
        .deletion_request(&deletion(&h, members::REQUEST_PENDING), "d")
        .await
        .unwrap();
    assert!(
        matches!(pending, Reply::AlreadyDone(a) if a.code == Some(ErrorCode::SkyjoyDuplicateRequest))
    );

    for id in [members::ACTIVE_FULL, members::PENDING, members::WELCOME] {
        let request = deletion(&h, id);
        assert_eq!(
            skyjoy.deletion_request(&request, &format!("{id}/1")).await,
            Ok(Reply::Done(())),
            "{id}"
        );
        assert!(h.sandbox.member(&member_id(id)).unwrap().deletion_requested);
        let again = skyjoy
            .deletion_request(&request, &format!("{id}/2"))
            .await
            .unwrap();
        assert!(again.is_already_done(), "{id}");
    }
    let applied = h.sandbox.effects(&EffectFilter {
        endpoint: Some(closeout_connectors::Endpoint::SkyjoyDeletionRequest),
        ..Default::default()
    });
    assert_eq!(applied.len(), 3);
}

#[tokio::test]
async fn closing_forfeits_points_hides_the_member_and_frees_partner_links() {
    let h = common::start().await;
    let skyjoy = &h.connectors.skyjoy;
    let id = member_id(members::ACTIVE_FULL);
    let unlink = UnlinkMember {
        skyjoy_id: id.clone(),
        partner_member_id: PartnerMemberId::parse("VK000001").unwrap(),
    };
    assert_eq!(
        skyjoy.unlink_member(&unlink, "u1").await,
        Ok(Reply::Done(()))
    );
    assert!(skyjoy
        .unlink_member(&unlink, "u2")
        .await
        .unwrap()
        .is_already_done());

    let balance = skyjoy.balance(&id, "b").await.unwrap().into_data().unwrap();
    assert_eq!(balance.total_point, 1200);
    let request = CloseRequest {
        skyjoy_id: id.clone(),
        reason: Personal::new("moving".into()),
    };
    let closed = skyjoy.close(&request, "wf/close").await.unwrap();
    let closed = closed.data().unwrap();
    assert_eq!(closed.forfeited_points, 1200);
    assert_eq!(closed.forfeited_tier.as_deref(), Some("Gold"));

    let state = h.sandbox.member(&id).unwrap();
    assert!(state.closed_at.is_some());
    assert!(state.partner_member_ids.is_empty());
    assert_eq!(state.points, 0);
    assert_eq!(
        permanent_code(skyjoy.user_profile(&id, "p").await),
        ErrorCode::SkyjoyUserNotFound
    );

    let again = skyjoy.close(&request, "wf/close-again").await.unwrap();
    assert!(
        matches!(again, Reply::AlreadyDone(a) if a.code == Some(ErrorCode::SkyjoyAccountAlreadyClosed))
    );
    let replayed = skyjoy.close(&request, "wf/close").await.unwrap();
    assert_eq!(
        replayed.data().map(|c| c.forfeited_points),
        Some(1200),
        "replay keeps the original answer"
    );

    let blocked = CloseRequest {
        skyjoy_id: member_id(members::BLOCKED),
        reason: Personal::new("x".into()),
    };
    assert_eq!(
        permanent_code(skyjoy.close(&blocked, "k").await),
        ErrorCode::SkyjoyAccountNotClosable
    );
    assert_eq!(
        h.sandbox
            .effects(&EffectFilter {
                endpoint: Some(closeout_connectors::Endpoint::SkyjoyClose),
                ..Default::default()
            })
            .len(),
        1
    );
}

#[tokio::test]
async fn the_wallet_closes_only_after_its_preconditions_hold() {
    let h = common::start().await;
    let gp = &h.connectors.galaxypay;
    let owner = member_id(members::ACTIVE_FULL);
    let wallet = gp
        .wallet_of(&owner, "get")
        .await
        .unwrap()
        .into_data()
        .unwrap();
    let id = wallet.wallet_id.clone();
    assert_eq!(wallet.balance, Vnd(150_000));
    assert!(!wallet.may_close());

    assert_eq!(
        permanent_code(gp.close_wallet(&id, "close-1").await),
        ErrorCode::GalaxypayVirtualAccountOpen
    );
    assert_eq!(
        permanent_code(gp.settle_balance(&id, "settle-early").await),
        ErrorCode::GalaxypayWalletNotInactive
    );

    let inactive = gp
        .set_status(&id, WalletStatus::Inactive, "inactive")
        .await
        .unwrap();
    assert_eq!(inactive.data().unwrap().status, WalletStatus::Inactive);
    let va = gp.close_virtual_account(&id, "va").await.unwrap();
    assert_eq!(
        va.data().unwrap().virtual_account.as_ref().unwrap().status,
        VirtualAccountStatus::Closed
    );
    assert!(gp
        .close_virtual_account(&id, "va-again")
        .await
        .unwrap()
        .is_already_done());
    assert_eq!(
        permanent_code(gp.close_wallet(&id, "close-2").await),
        ErrorCode::GalaxypayBalanceNotZero
    );

    let settled = gp.settle_balance(&id, "settle").await.unwrap();
    assert_eq!(settled.data().unwrap().settled_amount, Vnd(150_000));
    assert_eq!(
        permanent_code(gp.close_wallet(&id, "close-3").await),
        ErrorCode::GalaxypayBankLinksRemain
    );

    for link in wallet.linked_banks() {
        let unlinked = gp
            .unlink_bank(
                &id,
                &link.link_id,
                &format!("unlink/{}", link.link_id.as_str()),
            )
            .await
            .unwrap();
        assert!(!unlinked.is_already_done());
        assert!(gp
            .unlink_bank(&id, &link.link_id, "unlink-again")
            .await
            .unwrap()
            .is_already_done());
    }
    let missing = closeout_connectors::BankLinkId::parse("BL-404").unwrap();
    assert_eq!(
        permanent_code(gp.unlink_bank(&id, &missing, "x").await),
        ErrorCode::GalaxypayBankLinkNotFound
    );

    let closed = gp.close_wallet(&id, "close-4").await.unwrap();
    assert_eq!(closed.data().unwrap().status, WalletStatus::Closed);
    assert!(gp
        .close_wallet(&id, "close-5")
        .await
        .unwrap()
        .is_already_done());
    assert_eq!(
        permanent_code(gp.set_status(&id, WalletStatus::Active, "reopen").await),
        ErrorCode::GalaxypayWalletClosed
    );

    let state = h.sandbox.member(&owner).unwrap().wallet.unwrap();
    assert!(state
        .bank_links
        .iter()
        .all(|l| l.status == BankLinkStatus::Unlinked));
    let changes: Vec<_> = h
        .effects_for(&owner)
        .into_iter()
        .map(|e| e.change)
        .collect();
    assert_eq!(
        changes,
        [
            "set the wallet INACTIVE",
            "closed the virtual account",
            "paid out 150000 VND to bring the balance to zero",
            "unlinked bank link BL-0001",
            "unlinked bank link BL-0002",
            "closed the wallet",
        ]
    );
    let unknown = WalletId::parse("W-404").unwrap();
    assert_eq!(
        permanent_code(gp.wallet(&unknown, "w").await),
        ErrorCode::GalaxypayWalletNotFound
    );
}

#[tokio::test]
async fn kybio_erasure_disables_and_verifies() {
    let h = common::start().await;
    let kybio = &h.connectors.kybio;
    let number = MemberNumber("8008010001".into());
    let erased = kybio.erase(&number, "wf/kybio").await.unwrap();
    assert_eq!(erased.data().unwrap().enable, Enable::Disabled);
    let owner = member_id(members::ACTIVE_FULL);
    assert_eq!(
        h.sandbox.member(&owner).unwrap().kybio.unwrap().enable,
        Enable::Disabled
    );
    assert!(kybio
        .erase(&number, "wf/kybio-2")
        .await
        .unwrap()
        .is_already_done());

    let disabled = kybio
        .erase(&MemberNumber("8008010002".into()), "k")
        .await
        .unwrap();
    assert!(disabled.is_already_done());
    let unknown = kybio
        .erase(&MemberNumber("0000".into()), "k2")
        .await
        .unwrap();
    assert!(
        matches!(unknown, Reply::AlreadyDone(a) if a.code == Some(ErrorCode::KybioMemberNotFound))
    );
    let effects = h.sandbox.effects(&EffectFilter {
        partner: Some(Partner::Kybio),
        ..Default::default()
    });
    assert_eq!(effects.len(), 1);
    assert_eq!(
        effects[0].idempotency_key.as_deref(),
        Some("wf/kybio/disable")
    );
}

#[tokio::test]
async fn crmx_erasure_masks_every_personal_field() {
    let h = common::start().await;
    let crmx = &h.connectors.crmx;
    let phone = Phone::parse("0900000001").unwrap();
    let pos = PosId::parse("pos-001").unwrap();
    let before = crmx
        .customer(&phone, &pos, "read")
        .await
        .unwrap()
        .into_data()
        .flatten()
        .unwrap();
    assert!(!before.unmasked_fields().is_empty());

    let erased = crmx.erase(&phone, &pos, "wf/crmx").await.unwrap();
    assert_eq!(erased.data().unwrap().masked_fields.len(), 10);
    let stored = h
        .sandbox
        .member(&member_id(members::ACTIVE_FULL))
        .unwrap()
        .crmx
        .unwrap()
        .customer;
    assert!(stored.unmasked_fields().is_empty());
    assert_eq!(stored.phone.unwrap().expose(), "0900000001");

    let elsewhere = PosId::parse("pos-999").unwrap();
    assert!(crmx
        .customer(&phone, &elsewhere, "r")
        .await
        .unwrap()
        .into_data()
        .flatten()
        .is_none());
    let absent = crmx.erase(&phone, &elsewhere, "wf/crmx-2").await.unwrap();
    assert!(
        matches!(absent, Reply::AlreadyDone(a) if a.code == Some(ErrorCode::CrmxCustomerNotFound))
    );
}

#[tokio::test]
async fn confirmation_email_is_captured_once_per_key() {
    let h = common::start().await;
    let member = h.sandbox.member(&member_id(members::ACTIVE_FULL)).unwrap();
    let message = email::Email::closure_confirmation(
        member.email.clone(),
        &member.skyjoy_id,
        Utc::now(),
        Utc::now(),
    );
    assert_eq!(
        h.connectors.email.send(&message, "wf/email").await,
        Ok(Reply::Done(()))
    );
    assert!(h
        .connectors
        .email
        .send(&message, "wf/email")
        .await
        .unwrap()
        .is_already_done());
    let emails = h.sandbox.emails();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].to, member.email);
    assert!(emails[0].text.contains(member.skyjoy_id.as_str()));
    assert_eq!(emails[0].idempotency_key.as_deref(), Some("wf/email"));
}

#[tokio::test]
async fn a_call_without_an_idempotency_key_is_applied_every_time() {
    // world.rs: calls without the header are never replayed.
    let h = common::start().await;
    let token = h.sandbox.credentials().mail_token.clone();
    let body = serde_json::json!({
        "from": "noreply@closeout.test", "to": "someone@example.test",
        "subject": "s", "text": "t"
    });
    for _ in 0..2 {
        let response = h
            .http
            .post(h.url(Partner::Email, "/v1/messages"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        assert!(response
            .headers()
            .get(closeout_connectors::IDEMPOTENT_REPLAYED_HEADER)
            .is_none());
    }
    let emails = h.sandbox.emails();
    assert_eq!(emails.len(), 2);
    assert!(emails.iter().all(|e| e.idempotency_key.is_none()));
}
