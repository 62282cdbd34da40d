//! Vietjet actions: card-token removal (on behalf of SkyJoy or Galaxy Pay, each with its
//! own Basic credentials) and the deletion notification.

use closeout_connectors::vietjet::{Caller, Client, MemberRef};
use closeout_engine::action::{Context, Outcome, Registry};
use serde_json::json;

use crate::input_or_fail;
use crate::outcome::from_reply;

pub fn register(registry: &mut Registry, client: Client) {
    for (name, caller) in [
        ("vietjet.remove_token", Caller::Skyjoy),
        ("vietjet.remove_token_gpay", Caller::Gpay),
    ] {
        let c = client.clone();
        registry.register(name, move |ctx: Context| {
            let c = c.clone();
            async move { remove_token(&c, caller, &ctx).await }
        });
    }
    registry.register("vietjet.notify_deletion", move |ctx: Context| {
        let c = client.clone();
        async move {
            let input = input_or_fail!(ctx);
            let member = member(&input);
            from_reply(
                c.notify_deletion(&member, ctx.idempotency_key.as_str())
                    .await,
                |_| json!({ "notified": true }),
            )
        }
    });
}

fn member(input: &crate::input::ClosureInput) -> MemberRef {
    MemberRef {
        skyjoy_id: input.skyjoy_id.clone(),
        phone: input.phone.clone(),
    }
}

/// A member Vietjet does not know has no tokens to remove: the connector answers that
/// as already done, so the step succeeds.
async fn remove_token(c: &Client, caller: Caller, ctx: &Context) -> Outcome {
    let input = input_or_fail!(ctx);
    from_reply(
        c.remove_token(caller, &member(&input), ctx.idempotency_key.as_str())
            .await,
        |_| json!({ "tokens_removed": true }),
    )
}
