//! `[api]`: where the HTTP API listens, which credentials it accepts, and its limits.
//! The `closeout` binary embeds this in its layered configuration, so every key can come
//! from the file, a `CLOSEOUT_API__…` variable or a `…_FILE` secret file.
//!
//! Only SHA-256 hashes of keys are configured, never keys: a leaked configuration does
//! not leak a credential, and several hashes per principal make rotation a matter of
//! adding the new hash, moving clients over, then removing the old one.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use crate::auth::Role;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Channel name → its keys. A channel key sees only its channel's requests.
    pub channels: BTreeMap<String, ChannelKeys>,
    /// Operator credential name → role and keys. The name is recorded as the actor.
    pub operators: BTreeMap<String, OperatorKeys>,
    /// Registration system name → its keys. A registrar key may call only
    /// `POST /v1/cooldown/check`.
    pub registrars: BTreeMap<String, RegistrarKeys>,
    pub rate_limit: RateLimit,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// The channel whose keys may call the BRD endpoint
    /// `POST /api-user/partner/v1/user/deletion-request` (the BRD's caller is Vietjet).
    pub brd_channel: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            channels: BTreeMap::new(),
            operators: BTreeMap::new(),
            registrars: BTreeMap::new(),
            rate_limit: RateLimit::default(),
            body_limit: 64 * 1024,
            brd_channel: "vietjet".into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelKeys {
    #[serde(deserialize_with = "hashes")]
    pub key_hashes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorKeys {
    pub role: Role,
    #[serde(deserialize_with = "hashes")]
    pub key_hashes: Vec<String>,
}

/// The keys of a registration system (SkyJoy sign-up, the wallet's onboarding) that
/// asks whether a phone may register.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarKeys {
    #[serde(deserialize_with = "hashes")]
    pub key_hashes: Vec<String>,
}

/// A token bucket per API key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second per key.
    pub per_second: u32,
    /// Requests a key may send at once above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 20,
            burst: 40,
        }
    }
}

/// A list of hashes, or one string of hashes separated by commas or whitespace: the form
/// an environment variable or a secret file can carry.
fn hashes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Text(String),
    }
    let list = match Form::deserialize(deserializer)? {
        Form::List(list) => list,
        Form::Text(text) => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    Ok(list)
}

impl Config {
    /// Whether any credential at all is configured.
    pub fn has_keys(&self) -> bool {
        self.channels.values().any(|c| !c.key_hashes.is_empty())
            || self.operators.values().any(|o| !o.key_hashes.is_empty())
            || self.registrars.values().any(|r| !r.key_hashes.is_empty())
    }
}
