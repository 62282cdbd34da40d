//! Galaxy Pay wallet actions, in the BRD's order: set Inactive (undone by setting
//! Active again), close the virtual account, unlink every bank link, settle the balance
//! to zero, then close the wallet only once the wallet system itself shows it closable.

use closeout_connectors::galaxypay::{Client, Wallet, WalletStatus};
use closeout_connectors::ErrorCode;
use closeout_engine::action::{Context, Outcome, Registry};
use serde_json::json;

use closeout_cooldown::{HashKeys, Scope};

use crate::cooldown;
use crate::outcome::{data, from_error, from_reply};
use crate::{codes, input_or_fail};

pub fn register(registry: &mut Registry, client: Client, keys: HashKeys) {
    let c = client.clone();
    registry.register("galaxypay.deactivate_wallet", move |ctx: Context| {
        let c = c.clone();
        async move { set_status(&c, &ctx, WalletStatus::Inactive).await }
    });
    let c = client.clone();
    registry.register("galaxypay.reactivate_wallet", move |ctx: Context| {
        let c = c.clone();
        async move { set_status(&c, &ctx, WalletStatus::Active).await }
    });
    let c = client.clone();
    registry.register("galaxypay.close_virtual_account", move |ctx: Context| {
        let c = c.clone();
        async move {
            let wallet = match wallet(&c, &ctx).await {
                Ok(wallet) => wallet,
                Err(outcome) => return outcome,
            };
            if wallet.virtual_account.is_none() {
                return Outcome::done(json!({ "virtual_account": "none" }));
            }
            match c
                .close_virtual_account(&wallet.wallet_id, ctx.idempotency_key.as_str())
                .await
            {
                Err(e) if e.code() == ErrorCode::GalaxypayVirtualAccountAlreadyClosed => {
                    Outcome::done(json!({ "virtual_account": "closed", "already_done": true }))
                }
                other => from_reply(other, |_| json!({ "virtual_account": "closed" })),
            }
        }
    });
    let c = client.clone();
    registry.register("galaxypay.unlink_banks", move |ctx: Context| {
        let c = c.clone();
        async move { unlink_banks(&c, &ctx).await }
    });
    let c = client.clone();
    registry.register("galaxypay.settle_balance", move |ctx: Context| {
        let c = c.clone();
        async move {
            let wallet = match wallet(&c, &ctx).await {
                Ok(wallet) => wallet,
                Err(outcome) => return outcome,
            };
            from_reply(
                c.settle_balance(&wallet.wallet_id, ctx.idempotency_key.as_str())
                    .await,
                |s| json!({ "settled_amount": s.map(|s| s.settled_amount.0) }),
            )
        }
    });
    registry.register("galaxypay.close_wallet", move |ctx: Context| {
        let c = client.clone();
        let keys = keys.clone();
        async move { close_wallet(&c, &keys, &ctx).await }
    });
}

async fn wallet(c: &Client, ctx: &Context) -> Result<Wallet, Outcome> {
    let input = match crate::input::ClosureInput::of(ctx) {
        Ok(input) => input,
        Err(outcome) => return Err(outcome),
    };
    let key = format!("{}/wallet", ctx.idempotency_key);
    match c.wallet_of(&input.skyjoy_id, &key).await {
        Err(e) if e.code() == ErrorCode::GalaxypayWalletNotFound => Err(Outcome::fail(
            codes::WALLET_NOT_FOUND,
            "Galaxy Pay has no wallet for this member; check the SkyJoy ID",
        )),
        other => data(other, "wallet"),
    }
}

async fn set_status(c: &Client, ctx: &Context, status: WalletStatus) -> Outcome {
    let _ = input_or_fail!(ctx);
    let wallet = match wallet(c, ctx).await {
        Ok(wallet) => wallet,
        Err(outcome) => return outcome,
    };
    if wallet.status == status {
        return Outcome::noted(
            json!({ "wallet_status": status.to_string() }),
            format!("the wallet was already {status}"),
        );
    }
    from_reply(
        c.set_status(&wallet.wallet_id, status, ctx.idempotency_key.as_str())
            .await,
        |_| json!({ "wallet_status": status.to_string() }),
    )
}

/// One key per link, so a retry after a partial run touches only what is left.
async fn unlink_banks(c: &Client, ctx: &Context) -> Outcome {
    let wallet = match wallet(c, ctx).await {
        Ok(wallet) => wallet,
        Err(outcome) => return outcome,
    };
    let mut unlinked = Vec::new();
    for link in wallet.linked_banks() {
        let key = format!("{}/{}", ctx.idempotency_key, link.link_id.as_str());
        match c.unlink_bank(&wallet.wallet_id, &link.link_id, &key).await {
            Ok(_) => {}
            Err(e) if e.code() == ErrorCode::GalaxypayBankLinkAlreadyUnlinked => {}
            Err(e) => return from_error(&e),
        }
        unlinked.push(link.link_id.as_str().to_owned());
    }
    Outcome::done(json!({ "unlinked": unlinked }))
}

/// The pivot of the Galaxy Pay flow. The preconditions are read from the wallet system
/// right before closing, never assumed from earlier steps.
async fn close_wallet(c: &Client, keys: &HashKeys, ctx: &Context) -> Outcome {
    let input = input_or_fail!(ctx);
    let hash = match cooldown::prepare(keys, &input) {
        Ok(hash) => hash,
        Err(outcome) => return outcome,
    };
    let wallet = match wallet(c, ctx).await {
        Ok(wallet) => wallet,
        Err(outcome) => return outcome,
    };
    if wallet.status == WalletStatus::Closed {
        let done = Outcome::noted(
            json!({ "wallet_status": "closed", "already_done": true }),
            "the wallet was already closed",
        );
        return cooldown::attach(done, Scope::Wallet, hash);
    }
    if !wallet.may_close() {
        return Outcome::retry(
            codes::WALLET_NOT_CLOSABLE,
            format!(
                "the wallet system shows it not closable yet (virtual account closed: {}, balance zero: {}, bank links left: {}); retrying",
                wallet
                    .virtual_account
                    .as_ref()
                    .is_none_or(|va| va.status == closeout_connectors::galaxypay::VirtualAccountStatus::Closed),
                wallet.balance.0 == 0,
                wallet.linked_banks().count()
            ),
        );
    }
    let outcome = from_reply(
        c.close_wallet(&wallet.wallet_id, ctx.idempotency_key.as_str())
            .await,
        |_| json!({ "wallet_status": "closed", "closed_at": chrono::Utc::now() }),
    );
    cooldown::attach(outcome, Scope::Wallet, hash)
}
