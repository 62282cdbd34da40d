//! The last steps of a closure: the confirmation email to the verified address and the
//! closure record that starts the six-month phone cooldown.

use chrono::{DateTime, FixedOffset, Months, Utc};
use closeout_connectors::email::{Email, Mailer};
use closeout_connectors::EmailAddress;
use closeout_engine::action::{Context, Outcome, Registry};
use serde_json::{json, Value};

use crate::outcome::from_reply;
use crate::{codes, input_or_fail};

/// Vietnam time (UTC+7, no daylight saving): the BRD's "six months" are counted there.
fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("a valid fixed offset")
}

/// When a phone closed at `closed_at` may register again: six calendar months later in
/// Vietnam time. A day the target month lacks clamps to its last day, so a close on
/// 31 August releases at the end of February (the 28th, or the 29th in a leap year).
pub fn phone_reusable_from(closed_at: DateTime<Utc>) -> DateTime<Utc> {
    closed_at
        .with_timezone(&vietnam())
        .checked_add_months(Months::new(6))
        .expect("six months after any real close date is representable")
        .with_timezone(&Utc)
}

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
            let email = Email::closure_confirmation(to, &input.skyjoy_id, closed, phone_reusable_from(closed));
            from_reply(mailer.send(&email, ctx.idempotency_key.as_str()).await, |_| {
                json!({ "sent": true })
            })
        }
    });
    for (name, scope) in [
        ("closure.record_skyjoy", "skyjoy"),
        ("closure.record_wallet", "wallet"),
    ] {
        registry.register(name, move |ctx: Context| async move {
            let closed = closed_at(&ctx);
            // The cooldown registry consumes this event; the phone itself is taken from
            // the workflow input there and stored only as a keyed hash.
            Outcome::done(json!({
                "event": "account_closed",
                "scope": scope,
                "closed_at": closed,
                "phone_reusable_from": phone_reusable_from(closed),
            }))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn vn(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        vietnam()
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn six_calendar_months_in_vietnam_time() {
        assert_eq!(
            phone_reusable_from(vn(2026, 3, 15, 10)),
            vn(2026, 9, 15, 10)
        );
    }

    #[test]
    fn month_ends_clamp_and_leap_years_count() {
        assert_eq!(phone_reusable_from(vn(2026, 8, 31, 9)), vn(2027, 2, 28, 9));
        assert_eq!(phone_reusable_from(vn(2027, 8, 31, 9)), vn(2028, 2, 29, 9));
    }

    #[test]
    fn the_day_is_the_vietnamese_day() {
        // 31 August 20:00 UTC is already 1 September in Vietnam.
        let closed = Utc.with_ymd_and_hms(2026, 8, 31, 20, 0, 0).unwrap();
        assert_eq!(phone_reusable_from(closed), vn(2027, 3, 1, 3));
    }
}
