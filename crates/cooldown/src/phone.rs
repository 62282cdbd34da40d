//! Phone numbers in one canonical form, E.164 (`+84912345678`), whatever way they were
//! typed: `0912 345 678`, `84912345678`, `+84 (91) 234-5678`, `0084.912.345.678`…
//! Numbers without a country code are read as Vietnamese.

use std::fmt;

use phonenumber::country;
use phonenumber::Mode;
use serde::{Deserialize, Serialize};

/// A phone number in E.164 form; constructed only by [`E164::parse`].
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// Why a phone number was refused. Never echoes the number: it is personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the phone number is empty; send it as +84xxxxxxxxx or 0xxxxxxxxx")]
    Empty,
    #[error("the phone number contains characters other than digits, spaces, '+', '.', '-', '(' and ')'")]
    BadCharacters,
    #[error(
        "the phone number cannot be read as a phone number; send it as +84xxxxxxxxx or 0xxxxxxxxx"
    )]
    Unreadable,
    #[error("the phone number is not a valid number for its country; check the digits")]
    Invalid,
}

impl E164 {
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '.' | '-' | '(' | ')'))
        {
            return Err(PhoneError::BadCharacters);
        }
        let digits: String = trimmed
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        // "84…" with no plus and no leading zero is how Vietnamese systems often store
        // international numbers; libphonenumber would read it as a national number.
        let candidate = if digits.starts_with("84") && digits.len() >= 11 {
            format!("+{digits}")
        } else {
            digits
        };
        let number = phonenumber::parse(Some(country::Id::VN), &candidate)
            .map_err(|_| PhoneError::Unreadable)?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneError::Invalid);
        }
        Ok(Self(number.format().mode(Mode::E164).to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("E164(<redacted>)")
    }
}

impl TryFrom<String> for E164 {
    type Error = PhoneError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<E164> for String {
    fn from(value: E164) -> String {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_world_vietnamese_forms_normalise() {
        let forms = [
            ("0912345678", "+84912345678"),
            ("0912 345 678", "+84912345678"),
            ("0912.345.678", "+84912345678"),
            ("0912-345-678", "+84912345678"),
            ("(091) 234-5678", "+84912345678"),
            ("84912345678", "+84912345678"),
            ("+84912345678", "+84912345678"),
            ("+84 912 345 678", "+84912345678"),
            ("+84 (0) 912 345 678", "+84912345678"),
            ("+84-912-345-678", "+84912345678"),
            ("+84.912.345.678", "+84912345678"),
            ("0084912345678", "+84912345678"),
            (" 0912345678 ", "+84912345678"),
            ("0354841605", "+84354841605"),
            ("+84354841605", "+84354841605"),
            ("0987654321", "+84987654321"),
            ("0979921380", "+84979921380"),
            ("0387255954", "+84387255954"),
            ("0945350398", "+84945350398"),
            ("0702 123 456", "+84702123456"),
            ("0563 456 789", "+84563456789"),
            ("0833.456.789", "+84833456789"),
            ("024 3547 1866", "+842435471866"),
            ("028 3547 1865", "+842835471865"),
            ("+1 (650) 253-0000", "+16502530000"),
        ];
        for (input, expected) in forms {
            assert_eq!(
                E164::parse(input).map(|p| p.0),
                Ok(expected.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn invalid_numbers_are_refused_without_echoing_them() {
        let cases = [
            ("", PhoneError::Empty),
            ("   ", PhoneError::Empty),
            ("0912abc678", PhoneError::BadCharacters),
            ("0912/345/678", PhoneError::BadCharacters),
            ("12", PhoneError::Invalid),
            ("0912", PhoneError::Invalid),
            ("091234567891234", PhoneError::Invalid),
            ("+84 000 000 000", PhoneError::Invalid),
        ];
        for (input, expected) in cases {
            let got = E164::parse(input);
            assert!(got.is_err(), "{input:?} must be refused");
            let err = got.unwrap_err();
            assert!(
                err == expected || matches!(err, PhoneError::Unreadable | PhoneError::Invalid),
                "{input:?}: {err:?}"
            );
            if input.len() > 3 {
                assert!(
                    !err.to_string().contains(input.trim()),
                    "the error must not echo the number"
                );
            }
        }
    }

    #[test]
    fn debug_never_shows_the_number() {
        let phone = E164::parse("0912345678").unwrap();
        assert_eq!(format!("{phone:?}"), "E164(<redacted>)");
    }
}
