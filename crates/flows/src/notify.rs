//! The confirmation email to the verified address, the last step of the SkyJoy-side
//! flows. The phone cooldown itself is recorded by the closing steps (`cooldown`).

use chrono::{DateTime, Utc};
use closeout_connectors::email::{Email, Mailer};
use closeout_connectors::EmailAddress;
use closeout_engine::action::{Context, Outcome, Registry};
use serde_json::{json, Value};

use crate::outcome::from_reply;
use crate::{codes, input_or_fail};

/// The first output field named `field` with a non-null value, searching every earlier
/// step: the flows differ in which step produced it.
fn earlier(ctx: &Context, field: &str) -> Option<Value> {
    ctx.outputs
        .values()
        .filter_map(|output| output.get(field))
        .find(|value| !value.is_null())
        .cloned()
}

fn closed_at(ctx: &Context) -> DateTime<Utc> {
    earlier(ctx, "closed_at")
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_else(Utc::now)
}

pub fn register(registry: &mut Registry, mailer: Mailer) {
    registry.register("email.send_confirmation", move |ctx: Context| {
        let mailer = mailer.clone();
        async move {
            let input = input_or_fail!(ctx);
            let Some(to) = earlier(&ctx, "email").and_then(|v| serde_json::from_value::<EmailAddress>(v).ok()) else {
                return Outcome::fail(
                    codes::NO_VERIFIED_EMAIL,
                    "no verified email address was recorded by the eligibility step; skip this step with a note if the member was told another way",
                );
            };
            let closed = closed_at(&ctx);
            let email = Email::closure_confirmation(to, &input.skyjoy_id, closed, closeout_cooldown::release_at(closed));
            from_reply(mailer.send(&email, ctx.idempotency_key.as_str()).await, |_| {
                json!({ "sent": true })
            })
        }
    });
}
