//! The registry stores a keyed hash of the phone, never the phone: HMAC-SHA256 with a
//! configured secret. Keys carry a version so the secret can be rotated: new entries
//! use the current key, and a lookup tries every key still configured, so entries made
//! under an older key stay checkable until they expire.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::phone::E164;

/// A stored phone hash and the key version that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PhoneHash {
    pub key_version: u32,
    /// Lowercase hex of HMAC-SHA256(key, E.164 phone).
    pub hex: String,
}

/// The configured hashing keys by version; the highest version hashes new entries.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct HashKeys(BTreeMap<u32, SecretString>);

impl fmt::Debug for HashKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashKeys")
            .field("versions", &self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("no phone hashing key is configured; set cooldown.hash_keys.<version> to a long random secret")]
    None,
    #[error(
        "phone hashing key version {0} is shorter than 32 characters; use a long random secret"
    )]
    TooShort(u32),
}

type HmacSha256 = Hmac<Sha256>;

impl HashKeys {
    pub fn new(keys: impl IntoIterator<Item = (u32, SecretString)>) -> Result<Self, KeysError> {
        let keys = Self(keys.into_iter().collect());
        keys.check()?;
        Ok(keys)
    }

    pub fn check(&self) -> Result<(), KeysError> {
        if self.0.is_empty() {
            return Err(KeysError::None);
        }
        for (version, key) in &self.0 {
            if key.expose_secret().len() < 32 {
                return Err(KeysError::TooShort(*version));
            }
        }
        Ok(())
    }

    /// The hash new entries are stored under.
    pub fn current(&self, phone: &E164) -> PhoneHash {
        let (version, key) = self
            .0
            .iter()
            .next_back()
            .expect("checked: at least one key");
        hash_with(*version, key, phone)
    }

    /// The phone's hash under every configured key, newest first: what a lookup matches.
    pub fn all(&self, phone: &E164) -> Vec<PhoneHash> {
        self.0
            .iter()
            .rev()
            .map(|(version, key)| hash_with(*version, key, phone))
            .collect()
    }
}

fn hash_with(version: u32, key: &SecretString, phone: &E164) -> PhoneHash {
    let mut mac = HmacSha256::new_from_slice(key.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(phone.as_str().as_bytes());
    PhoneHash {
        key_version: version,
        hex: hex::encode(mac.finalize().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SecretString {
        SecretString::from(s.repeat(8))
    }

    #[test]
    fn the_same_phone_in_any_form_hashes_the_same() {
        let keys = HashKeys::new([(1, key("abcd"))]).unwrap();
        let a = keys.current(&E164::parse("0912 345 678").unwrap());
        let b = keys.current(&E164::parse("+84912345678").unwrap());
        assert_eq!(a, b);
        assert_eq!(a.hex.len(), 64);
        assert!(!a.hex.contains("912345678"));
    }

    #[test]
    fn rotation_keeps_old_entries_matchable() {
        let phone = E164::parse("0912345678").unwrap();
        let old = HashKeys::new([(1, key("abcd"))]).unwrap().current(&phone);
        let rotated = HashKeys::new([(1, key("abcd")), (2, key("wxyz"))]).unwrap();
        assert_eq!(rotated.current(&phone).key_version, 2);
        assert_ne!(rotated.current(&phone).hex, old.hex);
        assert!(
            rotated.all(&phone).contains(&old),
            "entries hashed under version 1 still match"
        );
    }

    #[test]
    fn weak_or_missing_keys_are_refused_and_never_printed() {
        assert_eq!(HashKeys::new([]).unwrap_err(), KeysError::None);
        assert_eq!(
            HashKeys::new([(3, SecretString::from("short"))]).unwrap_err(),
            KeysError::TooShort(3)
        );
        let keys = HashKeys::new([(1, key("abcd"))]).unwrap();
        assert!(!format!("{keys:?}").contains("abcd"));
    }
}
