//! Domain identifiers shared by the connectors and the sandbox.
//!
//! Identifiers are validated newtypes so a phone number cannot be passed where a SkyJoy ID is
//! expected. Personal data (phone, email, document numbers, names) has a `Debug` that redacts
//! the value, so a stray `{:?}` in a log line cannot leak it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strum::{Display, EnumIter, EnumString, IntoStaticStr};

/// A partner system the connectors talk to.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum Partner {
    Vietjet,
    Skyjoy,
    Galaxypay,
    Kybio,
    Crmx,
    Email,
}

/// Every partner endpoint a connector calls; the string form (`vietjet.remove_token`) is
/// what logs, the sandbox's fault rules and its effects ledger use.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
)]
pub enum Endpoint {
    #[strum(serialize = "vietjet.deletion")]
    VietjetDeletion,
    #[strum(serialize = "vietjet.remove_token")]
    VietjetRemoveToken,
    #[strum(serialize = "skyjoy.deletion_request")]
    SkyjoyDeletionRequest,
    #[strum(serialize = "skyjoy.user_profile")]
    SkyjoyUserProfile,
    #[strum(serialize = "skyjoy.user_profile_ext")]
    SkyjoyUserProfileExt,
    #[strum(serialize = "skyjoy.lookup")]
    SkyjoyLookup,
    #[strum(serialize = "skyjoy.balance")]
    SkyjoyBalance,
    #[strum(serialize = "skyjoy.unlink_member")]
    SkyjoyUnlinkMember,
    #[strum(serialize = "skyjoy.close")]
    SkyjoyClose,
    #[strum(serialize = "galaxypay.get_wallet")]
    GalaxypayGetWallet,
    #[strum(serialize = "galaxypay.set_status")]
    GalaxypaySetStatus,
    #[strum(serialize = "galaxypay.close_virtual_account")]
    GalaxypayCloseVirtualAccount,
    #[strum(serialize = "galaxypay.unlink_bank")]
    GalaxypayUnlinkBank,
    #[strum(serialize = "galaxypay.settle_balance")]
    GalaxypaySettleBalance,
    #[strum(serialize = "galaxypay.close_wallet")]
    GalaxypayCloseWallet,
    #[strum(serialize = "kybio.query_by_number")]
    KybioQueryByNumber,
    #[strum(serialize = "kybio.disable")]
    KybioDisable,
    #[strum(serialize = "crmx.get_customer")]
    CrmxGetCustomer,
    #[strum(serialize = "crmx.update_customer")]
    CrmxUpdateCustomer,
    #[strum(serialize = "email.send")]
    EmailSend,
}

impl Endpoint {
    /// The partner that serves this endpoint.
    pub fn partner(self) -> Partner {
        use Endpoint::*;
        match self {
            VietjetDeletion | VietjetRemoveToken => Partner::Vietjet,
            SkyjoyDeletionRequest
            | SkyjoyUserProfile
            | SkyjoyUserProfileExt
            | SkyjoyLookup
            | SkyjoyBalance
            | SkyjoyUnlinkMember
            | SkyjoyClose => Partner::Skyjoy,
            GalaxypayGetWallet
            | GalaxypaySetStatus
            | GalaxypayCloseVirtualAccount
            | GalaxypayUnlinkBank
            | GalaxypaySettleBalance
            | GalaxypayCloseWallet => Partner::Galaxypay,
            KybioQueryByNumber | KybioDisable => Partner::Kybio,
            CrmxGetCustomer | CrmxUpdateCustomer => Partner::Crmx,
            EmailSend => Partner::Email,
        }
    }

    /// Whether the endpoint changes partner state (as opposed to only reading it). Only
    /// effects are deduplicated by idempotency key.
    pub fn is_effect(self) -> bool {
        use Endpoint::*;
        !matches!(
            self,
            SkyjoyUserProfile
                | SkyjoyUserProfileExt
                | SkyjoyLookup
                | SkyjoyBalance
                | GalaxypayGetWallet
                | KybioQueryByNumber
                | CrmxGetCustomer
        )
    }
}

/// Serialises a strum enum through its string form so Rust, JSON and SQL spell it once.
macro_rules! serde_via_strum {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(|_| {
                    serde::de::Error::custom(format!("unknown {} {text:?}", stringify!($ty)))
                })
            }
        }
    };
}
pub(crate) use serde_via_strum;

serde_via_strum!(Partner);
serde_via_strum!(Endpoint);

/// An identifier that failed validation; says which kind and why, never the value itself
/// (it may be personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

/// Declares a validated string newtype with serde through `parse`.
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal, redact = $redact:literal, $validate:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps the value.
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value: String = value.into();
                let validate: fn(&str) -> Result<(), &'static str> = $validate;
                validate(&value).map_err(|reason| InvalidId { kind: $kind, reason })?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if $redact {
                    write!(f, "{}(<redacted>)", stringify!($name))
                } else {
                    write!(f, "{}({:?})", stringify!($name), self.0)
                }
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(value: &str) -> Result<Self, InvalidId> {
                Self::parse(value)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::parse(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn non_blank(value: &str) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        return Err("must not be blank");
    }
    if value.len() > 128 {
        return Err("longer than 128 characters");
    }
    if value.chars().any(char::is_control) {
        return Err("contains control characters");
    }
    Ok(())
}

string_id!(
    /// A SkyJoy member ID, `SJ` followed by digits (`SJ0123456789`).
    SkyjoyId,
    "SkyJoy ID",
    redact = false,
    |value| {
        let digits = value.strip_prefix("SJ").ok_or("must start with SJ")?;
        if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be SJ followed by 1 to 16 digits");
        }
        Ok(())
    }
);

string_id!(
    /// A phone number as partners send it: optional `+`, then 8 to 15 digits
    /// (`+84354841605`, or CRMX's local `0945350398`).
    Phone,
    "phone number",
    redact = true,
    |value| {
        let digits = value.strip_prefix('+').unwrap_or(value);
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be an optional + and 8 to 15 digits");
        }
        Ok(())
    }
);

string_id!(
    /// An email address; only its shape is checked (one `@`, no spaces).
    EmailAddress,
    "email address",
    redact = true,
    |value| {
        let (local, domain) = value.split_once('@').ok_or("must contain @")?;
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
            || value.len() > 254
        {
            return Err("must look like name@domain");
        }
        Ok(())
    }
);

string_id!(
    /// An identity document number (national ID or passport) used by SkyJoy lookup.
    DocumentId,
    "document ID",
    redact = true,
    non_blank
);

string_id!(
    /// A partner's own member ID linked to a SkyJoy account (`VK084282`).
    PartnerMemberId,
    "partner member ID",
    redact = false,
    non_blank
);

string_id!(
    /// A Galaxy Pay wallet ID.
    WalletId,
    "wallet ID",
    redact = false,
    non_blank
);

string_id!(
    /// A Galaxy Pay bank card or bank account link ID.
    BankLinkId,
    "bank link ID",
    redact = false,
    non_blank
);

string_id!(
    /// A CRMX location (shop, restaurant) ID, the `pos_id` query parameter.
    PosId,
    "CRMX pos_id",
    redact = false,
    non_blank
);

/// Personal data received from a partner: `Debug` prints `<redacted>`, reading the value
/// takes an explicit [`Personal::expose`].
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Personal<T>(T);

impl<T> Personal<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn endpoint_names_round_trip_and_belong_to_their_partner() {
        for endpoint in Endpoint::iter() {
            let name = endpoint.to_string();
            assert_eq!(name.parse::<Endpoint>().unwrap(), endpoint);
            let prefix = name.split('.').next().unwrap();
            assert_eq!(prefix, endpoint.partner().to_string());
        }
    }

    #[test]
    fn skyjoy_id_requires_sj_and_digits() {
        assert!(SkyjoyId::parse("SJ0123456789").is_ok());
        assert!(SkyjoyId::parse("sj0123456789").is_err());
        assert!(SkyjoyId::parse("SJ").is_err());
        assert!(SkyjoyId::parse("SJ12a").is_err());
    }

    #[test]
    fn personal_data_is_redacted_in_debug() {
        let phone = Phone::parse("+84354841605").unwrap();
        let email = EmailAddress::parse("someone@example.test").unwrap();
        let name = Personal::new("NGUYEN VAN A".to_owned());
        let printed = format!("{phone:?} {email:?} {name:?}");
        assert!(!printed.contains("354841605"), "{printed}");
        assert!(!printed.contains("someone"), "{printed}");
        assert!(!printed.contains("NGUYEN"), "{printed}");
    }

    #[test]
    fn phone_accepts_international_and_local_forms() {
        assert!(Phone::parse("+84354841605").is_ok());
        assert!(Phone::parse("0945350398").is_ok());
        assert!(Phone::parse("+84 354").is_err());
    }
}
