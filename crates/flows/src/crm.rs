//! Partner CRM erasure: KYBIO (find by member number, disable, verify `enable`) and
//! CRMX (find by phone and location, mask the personal fields through its update call,
//! which is all it offers, then verify). A programme the member never joined is done.

use closeout_connectors::{crmx, kybio, Phone};
use closeout_engine::action::{Context, Registry};
use serde_json::json;

use crate::input_or_fail;
use crate::outcome::from_reply;

pub fn register(registry: &mut Registry, kybio: kybio::Client, crmx: crmx::Client) {
    registry.register("kybio.erase", move |ctx: Context| {
        let c = kybio.clone();
        async move {
            let input = input_or_fail!(ctx);
            let Some(number) = &input.kybio_member else {
                return closeout_engine::action::Outcome::done(json!({ "linked": false }));
            };
            from_reply(
                c.erase(number, ctx.idempotency_key.as_str()).await,
                |e| json!({ "linked": true, "enable": e.map(|e| e.enable) }),
            )
        }
    });
    registry.register("crmx.erase", move |ctx: Context| {
        let c = crmx.clone();
        async move {
            let input = input_or_fail!(ctx);
            let Some(pos_id) = &input.crmx_pos_id else {
                return closeout_engine::action::Outcome::done(json!({ "linked": false }));
            };
            from_reply(
                c.erase(
                    &national(&input.phone),
                    pos_id,
                    ctx.idempotency_key.as_str(),
                )
                .await,
                |e| json!({ "linked": true, "masked_fields": e.map(|e| e.masked_fields) }),
            )
        }
    });
}

/// CRMX finds a member by the phone as it stores it: the Vietnamese national form
/// (`0945350398` in seed 004), not the E.164 form the channels send.
fn national(phone: &Phone) -> Phone {
    match phone.as_str().strip_prefix("+84") {
        Some(rest) => Phone::parse(format!("0{rest}")).unwrap_or_else(|_| phone.clone()),
        None => phone.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crmx_gets_the_national_form() {
        let e164 = Phone::parse("+84945350398").unwrap();
        assert_eq!(national(&e164).as_str(), "0945350398");
        let local = Phone::parse("0945350398").unwrap();
        assert_eq!(national(&local), local);
    }
}
