//! Credentials: channel keys (each bound to one channel), operations credentials (each
//! with a role) and registrar keys (registration systems, which may only ask the phone
//! cooldown check). Clients send `Authorization: Bearer <key>`.
//!
//! Keys are configured as SHA-256 hashes (hex). A presented key is hashed and compared
//! with every configured hash in constant time ([`subtle`]), without stopping at the
//! first match, so response timing reveals neither whether a key is close to a valid one
//! nor which position it holds. A SHA-256 hash (not a slow password hash) is enough
//! because keys are long random tokens, not passwords people choose.
//!
//! [`authenticate`] runs on every request: it resolves the credential, applies the
//! per-key rate limit and leaves an [`Auth`] in the request's extensions. The extractors
//! ([`ChannelCaller`], [`OpsReader`], [`OpsWriter`], [`RegistrarCaller`]) then refuse with 401 (no usable
//! credential) or 403 (a valid credential for another API or role).

use std::num::NonZeroU32;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use closeout_engine::id::Channel;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::{Config, RateLimit};
use crate::error::{Brd, Error};
use crate::AppState;

/// What an operations credential may do. `write` includes `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Role {
    Read,
    Write,
}

/// Who a valid key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Channel(Channel),
    Operator {
        name: String,
        role: Role,
    },
    /// A registration system; its name is only logged.
    Registrar(String),
}

/// The hex SHA-256 of a key, as configured in `key_hashes`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Why the configured credentials cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("`api.{0}`: a key hash must be 64 hex digits (the output of `closeout api hash-key`)")]
    BadHash(String),
    #[error("`api.channels.{0}`: {1}")]
    BadChannel(String, String),
    #[error(
        "`api.{0}`: the same key hash is configured twice; every key must identify one principal"
    )]
    DuplicateHash(String),
    #[error("`api.rate_limit`: per_second and burst must be at least 1")]
    BadRateLimit,
}

/// Every configured credential, ready for constant-time lookup.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    entries: Vec<([u8; 32], Principal)>,
}

impl Keys {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let mut entries: Vec<([u8; 32], Principal)> = Vec::new();
        let mut add = |at: String, text: &str, principal: Principal| {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(text.trim().to_ascii_lowercase(), &mut hash)
                .map_err(|_| ConfigError::BadHash(at.clone()))?;
            if entries.iter().any(|(h, _)| *h == hash) {
                return Err(ConfigError::DuplicateHash(at));
            }
            entries.push((hash, principal));
            Ok(())
        };
        for (name, keys) in &config.channels {
            let channel = Channel::parse(name.clone())
                .map_err(|e| ConfigError::BadChannel(name.clone(), e.problem.to_owned()))?;
            for hash in &keys.key_hashes {
                add(
                    format!("channels.{name}.key_hashes"),
                    hash,
                    Principal::Channel(channel.clone()),
                )?;
            }
        }
        for (name, operator) in &config.operators {
            for hash in &operator.key_hashes {
                add(
                    format!("operators.{name}.key_hashes"),
                    hash,
                    Principal::Operator {
                        name: name.clone(),
                        role: operator.role,
                    },
                )?;
            }
        }
        for (name, registrar) in &config.registrars {
            for hash in &registrar.key_hashes {
                add(
                    format!("registrars.{name}.key_hashes"),
                    hash,
                    Principal::Registrar(name.clone()),
                )?;
            }
        }
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index and principal of `key`, comparing against every entry in constant time.
    pub fn lookup(&self, key: &str) -> Option<(u32, &Principal)> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = 0u32;
        let mut index = 0u32;
        for (i, (hash, _)) in self.entries.iter().enumerate() {
            let equal = hash.ct_eq(&presented);
            // Entries are unique, so at most one matches; remember it without branching.
            index.conditional_assign(&(i as u32), equal);
            found.conditional_assign(&1, equal);
        }
        (found == 1).then(|| (index, &self.entries[index as usize].1))
    }
}

/// A per-key token bucket.
#[derive(Debug)]
pub struct Limiter(DefaultKeyedRateLimiter<u32>);

impl Limiter {
    pub fn new(config: &RateLimit) -> Result<Self, ConfigError> {
        let per_second = NonZeroU32::new(config.per_second).ok_or(ConfigError::BadRateLimit)?;
        let burst = NonZeroU32::new(config.burst).ok_or(ConfigError::BadRateLimit)?;
        Ok(Self(RateLimiter::keyed(
            Quota::per_second(per_second).allow_burst(burst),
        )))
    }

    /// `Err(seconds to wait)` when the key is over its rate.
    fn check(&self, key: u32) -> Result<(), u64> {
        self.0.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// The outcome of authentication, left in the request's extensions.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials are configured on this server.
    NoneConfigured,
    Missing,
    Unknown,
    Known(Principal),
}

impl Auth {
    fn refusal(&self) -> Error {
        match self {
            Auth::NoneConfigured => Error::Unauthenticated(
                "no API keys are configured on this server; configure [api] keys (see docs/api.md)",
            ),
            Auth::Missing => {
                Error::Unauthenticated("missing API key; send Authorization: Bearer <key>")
            }
            Auth::Unknown | Auth::Known(_) => Error::Unauthenticated("unknown API key"),
        }
    }
}

/// Resolves the credential, rate-limits it, and records the outcome for the extractors.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let keys = &state.inner.keys;
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let auth = match presented {
        _ if keys.is_empty() => Auth::NoneConfigured,
        None => Auth::Missing,
        Some(key) => match keys.lookup(key) {
            Some((index, principal)) => {
                if let Err(retry_after_secs) = state.inner.limiter.check(index) {
                    let error = Error::RateLimited { retry_after_secs };
                    return if crate::brd::is_brd_path(request.uri().path()) {
                        Brd(error).into_response()
                    } else {
                        error.into_response()
                    };
                }
                Auth::Known(principal.clone())
            }
            None => Auth::Unknown,
        },
    };
    request.extensions_mut().insert(auth);
    next.run(request).await
}

fn auth_of(parts: &Parts) -> Auth {
    parts
        .extensions
        .get::<Auth>()
        .cloned()
        .unwrap_or(Auth::NoneConfigured)
}

/// A caller authenticated with a channel key.
#[derive(Debug, Clone)]
pub struct ChannelCaller(pub Channel);

impl ChannelCaller {
    pub fn from_auth(auth: &Auth) -> Result<Self, Error> {
        match auth {
            Auth::Known(Principal::Channel(channel)) => Ok(Self(channel.clone())),
            Auth::Known(Principal::Operator { .. }) => Err(Error::Forbidden(
                "an operations credential cannot use the channel API; use a channel key",
            )),
            Auth::Known(Principal::Registrar(_)) => Err(Error::Forbidden(REGISTRAR_ONLY)),
            other => Err(other.refusal()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ChannelCaller {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        Self::from_auth(&auth_of(parts))
    }
}

fn operator(parts: &Parts, need: Role) -> Result<String, Error> {
    match auth_of(parts) {
        Auth::Known(Principal::Operator { name, role }) => {
            if need == Role::Write && role != Role::Write {
                Err(Error::Forbidden(
                    "this operations credential has the read role; actions need the write role",
                ))
            } else {
                Ok(name)
            }
        }
        Auth::Known(Principal::Channel(_)) => Err(Error::Forbidden(
            "a channel key cannot use the operations API; use an operations credential",
        )),
        Auth::Known(Principal::Registrar(_)) => Err(Error::Forbidden(REGISTRAR_ONLY)),
        other => Err(other.refusal()),
    }
}

const REGISTRAR_ONLY: &str =
    "a registrar key may only call POST /v1/cooldown/check; use a channel key or an operations credential";

/// A caller authenticated with a registrar key: the only credential the cooldown check
/// accepts, so a leaked registrar key cannot submit closures or read requests, and a
/// channel or operations key cannot be used to probe the registry.
#[derive(Debug, Clone)]
pub struct RegistrarCaller(pub String);

impl RegistrarCaller {
    pub fn from_auth(auth: &Auth) -> Result<Self, Error> {
        match auth {
            Auth::Known(Principal::Registrar(name)) => Ok(Self(name.clone())),
            Auth::Known(Principal::Channel(_) | Principal::Operator { .. }) => {
                Err(Error::Forbidden(
                    "only a registrar key ([api.registrars]) may check phone cooldowns",
                ))
            }
            other => Err(other.refusal()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RegistrarCaller {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        Self::from_auth(&auth_of(parts))
    }
}

/// An operations credential with at least the `read` role.
#[derive(Debug, Clone)]
pub struct OpsReader(pub String);

impl<S: Send + Sync> FromRequestParts<S> for OpsReader {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        operator(parts, Role::Read).map(Self)
    }
}

/// An operations credential with the `write` role; `.actor()` is what history records.
#[derive(Debug, Clone)]
pub struct OpsWriter(pub String);

impl OpsWriter {
    pub fn actor(&self) -> String {
        format!("ops:{}", self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OpsWriter {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        operator(parts, Role::Write).map(Self)
    }
}

/// The credential state as the BRD handler sees it (it renders refusals itself).
#[derive(Debug, Clone)]
pub struct RawAuth(pub Auth);

impl<S: Send + Sync> FromRequestParts<S> for RawAuth {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        Ok(Self(auth_of(parts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChannelKeys, OperatorKeys};

    fn config() -> Config {
        let mut config = Config::default();
        config.channels.insert(
            "vietjet".into(),
            ChannelKeys {
                key_hashes: vec![hash_key("old-vietjet-key"), hash_key("new-vietjet-key")],
            },
        );
        config.operators.insert(
            "alice".into(),
            OperatorKeys {
                role: Role::Read,
                key_hashes: vec![hash_key("alice-key").to_ascii_uppercase()],
            },
        );
        config
    }

    #[test]
    fn hash_key_is_hex_sha256() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn every_configured_hash_is_valid_so_keys_rotate() {
        let keys = Keys::from_config(&config()).unwrap();
        let vietjet = Principal::Channel(Channel::parse("vietjet").unwrap());
        assert_eq!(keys.lookup("old-vietjet-key").map(|p| p.1), Some(&vietjet));
        assert_eq!(keys.lookup("new-vietjet-key").map(|p| p.1), Some(&vietjet));
        assert_eq!(
            keys.lookup("alice-key").map(|p| p.1.clone()),
            Some(Principal::Operator {
                name: "alice".into(),
                role: Role::Read
            }),
            "upper-case hex is accepted"
        );
        assert!(keys.lookup("wrong").is_none());
        assert!(keys.lookup("").is_none());
        assert_ne!(
            keys.lookup("old-vietjet-key").unwrap().0,
            keys.lookup("new-vietjet-key").unwrap().0,
            "each key has its own rate-limit bucket"
        );
    }

    #[test]
    fn bad_and_duplicate_hashes_are_refused() {
        let mut bad = config();
        bad.channels.get_mut("vietjet").unwrap().key_hashes = vec!["not-hex".into()];
        assert!(matches!(
            Keys::from_config(&bad),
            Err(ConfigError::BadHash(_))
        ));
        let mut twice = config();
        twice.channels.insert(
            "skyjoy".into(),
            ChannelKeys {
                key_hashes: vec![hash_key("old-vietjet-key")],
            },
        );
        assert!(matches!(
            Keys::from_config(&twice),
            Err(ConfigError::DuplicateHash(_))
        ));
    }

    #[test]
    fn refusals_tell_401_from_403() {
        let operator = Auth::Known(Principal::Operator {
            name: "alice".into(),
            role: Role::Read,
        });
        assert_eq!(
            ChannelCaller::from_auth(&operator).unwrap_err().status(),
            axum::http::StatusCode::FORBIDDEN
        );
        for auth in [Auth::Missing, Auth::Unknown, Auth::NoneConfigured] {
            assert_eq!(
                ChannelCaller::from_auth(&auth).unwrap_err().status(),
                axum::http::StatusCode::UNAUTHORIZED
            );
        }
    }

    #[test]
    fn the_limiter_refuses_above_the_burst_and_says_when() {
        let limiter = Limiter::new(&RateLimit {
            per_second: 1,
            burst: 2,
        })
        .unwrap();
        assert!(limiter.check(0).is_ok());
        assert!(limiter.check(0).is_ok());
        let wait = limiter.check(0).unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(limiter.check(1).is_ok(), "another key has its own bucket");
    }
}
