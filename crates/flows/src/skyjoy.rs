//! SkyJoy actions: eligibility, the deletion request, the balance snapshot, closing the
//! SkyID and unlinking partner memberships.

use closeout_connectors::skyjoy::{Client, CloseRequest, DeletionRequest, UnlinkMember};
use closeout_connectors::{ErrorCode, Reply};
use closeout_engine::action::{Context, Outcome, Registry};
use serde_json::json;

use closeout_cooldown::{HashKeys, Scope};

use crate::cooldown;
use crate::outcome::{data, from_error, from_reply};
use crate::{codes, input_or_fail};

pub fn register(registry: &mut Registry, client: Client, keys: HashKeys) {
    let c = client.clone();
    registry.register("skyjoy.check_eligibility", move |ctx: Context| {
        let c = c.clone();
        async move { check_eligibility(&c, &ctx).await }
    });
    let c = client.clone();
    registry.register("skyjoy.submit_deletion_request", move |ctx: Context| {
        let c = c.clone();
        async move { submit_deletion_request(&c, &ctx).await }
    });
    let c = client.clone();
    registry.register("skyjoy.snapshot_balance", move |ctx: Context| {
        let c = c.clone();
        async move {
            let input = input_or_fail!(ctx);
            let result = c
                .balance(&input.skyjoy_id, ctx.idempotency_key.as_str())
                .await;
            from_reply(
                result,
                |b| json!({ "total_point": b.map(|b| b.total_point) }),
            )
        }
    });
    let c = client.clone();
    registry.register("skyjoy.close_account", move |ctx: Context| {
        let c = c.clone();
        let keys = keys.clone();
        async move { close_account(&c, &keys, &ctx).await }
    });
    registry.register("skyjoy.unlink_partners", move |ctx: Context| {
        let c = client.clone();
        async move { unlink_partners(&c, &ctx).await }
    });
}

/// BRD eligibility: a SkyJoy member, in a status that may ask (Pending, Welcome,
/// Active), with a verified email. The verified address is kept for the confirmation
/// email, which must go out after SkyJoy has forgotten the member.
async fn check_eligibility(c: &Client, ctx: &Context) -> Outcome {
    let input = input_or_fail!(ctx);
    let profile = match c
        .user_profile(&input.skyjoy_id, ctx.idempotency_key.as_str())
        .await
    {
        Err(e) if e.code() == ErrorCode::SkyjoyUserNotFound => {
            return Outcome::fail(
                codes::USER_NOT_FOUND,
                "SkyJoy has no member with this SkyJoy ID; check the ID with the member",
            )
        }
        other => match data(other, "user profile") {
            Ok(profile) => profile,
            Err(outcome) => return outcome,
        },
    };
    if !profile.status.may_request_closure() {
        return Outcome::fail(
            codes::STATUS_NOT_ALLOWED,
            format!(
                "member status {} may not request closure (only Pending, Welcome and Active may); refer the member to SkyJoy operations",
                profile.status
            ),
        );
    }
    match (profile.email_verified, profile.email) {
        (Some(true), Some(email)) => Outcome::done(json!({
            "status": profile.status.to_string(),
            "email": email,
        })),
        _ => Outcome::fail(
            codes::EMAIL_NOT_VERIFIED,
            "the member's email is not verified; ask them to verify it, then submit again",
        ),
    }
}

/// SkyJoy answers DUPLICATE_REQUEST both to someone else's unprocessed request and,
/// without idempotency support, to our own earlier attempt that landed. On the first
/// attempt it can only be someone else's; a replay of our own key is answered with the
/// stored original (already done, no code).
async fn submit_deletion_request(c: &Client, ctx: &Context) -> Outcome {
    let input = input_or_fail!(ctx);
    let request = DeletionRequest {
        skyjoy_id: input.skyjoy_id.clone(),
        phone: input.phone.clone(),
        comment: input.reason.clone(),
        request_at: input.requested_at,
        request_platform: input.platform,
    };
    match c.deletion_request(&request, ctx.idempotency_key.as_str()).await {
        Ok(Reply::AlreadyDone(already))
            if already.code == Some(ErrorCode::SkyjoyDuplicateRequest) && ctx.attempt == 1 =>
        {
            Outcome::fail(
                codes::DUPLICATE_REQUEST,
                "SkyJoy already holds an unprocessed deletion request for this member; wait for it to be processed",
            )
        }
        Err(e) if e.code() == ErrorCode::SkyjoyUserNotFound => {
            Outcome::fail(codes::USER_NOT_FOUND, "SkyJoy has no member with this SkyJoy ID")
        }
        Err(e) if e.code() == ErrorCode::SkyjoyEmailNotVerified => Outcome::fail(
            codes::EMAIL_NOT_VERIFIED,
            "SkyJoy says the member's email is not verified; ask them to verify it, then submit again",
        ),
        Err(e) if !e.is_retryable() && e.code() == ErrorCode::SkyjoyCloseAccountFailed => {
            Outcome::fail(codes::CLOSE_ACCOUNT_FAILED, e.to_string())
        }
        other => from_reply(other, |_| json!({ "submitted": true })),
    }
}

/// The pivot of the SkyJoy-side flows: tier, points and unused gifts are forfeited.
async fn close_account(c: &Client, keys: &HashKeys, ctx: &Context) -> Outcome {
    let input = input_or_fail!(ctx);
    let hash = match cooldown::prepare(keys, &input) {
        Ok(hash) => hash,
        Err(outcome) => return outcome,
    };
    let request = CloseRequest {
        skyjoy_id: input.skyjoy_id.clone(),
        reason: input.reason.clone(),
    };
    let result = c.close(&request, ctx.idempotency_key.as_str()).await;
    let outcome = from_reply(result, |closed| match closed {
        Some(closed) => json!({
            "closed_at": closed.closed_at,
            "forfeited_tier": closed.forfeited_tier,
            "forfeited_points": closed.forfeited_points,
        }),
        // Closed before (a repeat after an ambiguous answer): SkyJoy sent no details.
        None => json!({ "closed_at": null }),
    });
    cooldown::attach(outcome, Scope::Skyjoy, hash)
}

/// Each membership gets its own key so a retry after a partial run unlinks only what
/// is left and repeats nothing. Closing a SkyID releases its memberships, and SkyJoy
/// answers "user not found" for a closed account: that means nothing is left to unlink.
async fn unlink_partners(c: &Client, ctx: &Context) -> Outcome {
    let input = input_or_fail!(ctx);
    let mut unlinked = Vec::new();
    for partner_member_id in &input.partner_member_ids {
        let request = UnlinkMember {
            skyjoy_id: input.skyjoy_id.clone(),
            partner_member_id: partner_member_id.clone(),
        };
        let key = format!("{}/{}", ctx.idempotency_key, partner_member_id.as_str());
        match c.unlink_member(&request, &key).await {
            Ok(_) => unlinked.push(partner_member_id.as_str().to_owned()),
            Err(e) if e.code() == ErrorCode::SkyjoyMemberNotLinked => {
                unlinked.push(partner_member_id.as_str().to_owned())
            }
            Err(e) if e.code() == ErrorCode::SkyjoyUserNotFound => {
                return Outcome::noted(json!({ "unlinked": unlinked, "released_by_close": true }), "the closed account no longer holds partner memberships; nothing left to unlink");
            }
            Err(e) => return from_error(&e),
        }
    }
    Outcome::done(json!({ "unlinked": unlinked }))
}
