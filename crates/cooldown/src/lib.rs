//! The BRD's six-month phone cooldown, as pure rules: how a phone number is written
//! canonically ([`phone`]), when a closed account's phone may register again
//! ([`release_at`]), and the keyed hash the registry stores instead of the number
//! ([`hash`]). No SQL, no HTTP.

pub mod hash;
pub mod jobs;
pub mod phone;

use chrono::{DateTime, FixedOffset, Months, Utc};
use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumString};

pub use hash::{HashKeys, PhoneHash};
pub use phone::{PhoneError, E164};

/// What a closure blocks the phone from: a new SkyJoy account, or a new SkyPay wallet
/// (BRD 2.1.3, 2.2.4 and 2.3.4 each name one).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Display, EnumString, AsRefStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Scope {
    Skyjoy,
    Wallet,
}

/// Vietnam time (UTC+7, no daylight saving): the BRD's six months are counted there.
pub fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("a valid fixed offset")
}

/// When a phone closed at `closed_at` may register again: six calendar months later,
/// counted in Vietnam time. A day the target month lacks becomes that month's last day,
/// so a close on 31 August is released at the end of February (28th, or 29th in a leap
/// year) at the same time of day.
pub fn release_at(closed_at: DateTime<Utc>) -> DateTime<Utc> {
    closed_at
        .with_timezone(&vietnam())
        .checked_add_months(Months::new(6))
        .expect("six months after any real close date is representable")
        .with_timezone(&Utc)
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
        assert_eq!(release_at(vn(2026, 3, 15, 10)), vn(2026, 9, 15, 10));
        assert_eq!(release_at(vn(2026, 9, 30, 23)), vn(2027, 3, 30, 23));
    }

    #[test]
    fn month_ends_clamp() {
        assert_eq!(release_at(vn(2026, 8, 31, 9)), vn(2027, 2, 28, 9));
        assert_eq!(release_at(vn(2026, 12, 31, 9)), vn(2027, 6, 30, 9));
        assert_eq!(release_at(vn(2026, 5, 31, 9)), vn(2026, 11, 30, 9));
    }

    #[test]
    fn leap_years_count() {
        assert_eq!(release_at(vn(2027, 8, 31, 9)), vn(2028, 2, 29, 9));
        assert_eq!(release_at(vn(2027, 8, 29, 9)), vn(2028, 2, 29, 9));
        assert_eq!(release_at(vn(2028, 2, 29, 9)), vn(2028, 8, 29, 9));
    }

    #[test]
    fn the_day_is_the_vietnamese_day() {
        // 31 August 20:00 UTC is already 1 September in Vietnam.
        let closed = Utc.with_ymd_and_hms(2026, 8, 31, 20, 0, 0).unwrap();
        assert_eq!(release_at(closed), vn(2027, 3, 1, 3));
        // 28 February 18:00 UTC is 1 March 01:00 in Vietnam.
        let closed = Utc.with_ymd_and_hms(2027, 2, 28, 18, 0, 0).unwrap();
        assert_eq!(release_at(closed), vn(2027, 9, 1, 1));
    }
}
