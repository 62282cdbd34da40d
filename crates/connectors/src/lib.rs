//! HTTP clients for every partner system a closure touches.
//!
//! One module per partner ([`vietjet`], [`skyjoy`], [`galaxypay`], [`kybio`], [`crmx`]) plus
//! [`email`] for the confirmation mail. Each module exposes a `Config` (serde, secrets wrapped
//! so `Debug` redacts them) and a `Client` whose calls all take an idempotency key and answer
//! `Result<Reply<T>>`:
//!
//! - `Ok(Reply::Done(data))`: the partner did it now;
//! - `Ok(Reply::AlreadyDone(..))`: the partner said it was already done (a replayed
//!   idempotency key, a user with nothing left to remove); the step succeeded;
//! - `Err(Error::Retryable(..))`: try again later with the **same** idempotency key;
//! - `Err(Error::Permanent(..))` (or `Error::Config`): retrying cannot help.
//!
//! Architecture invariants: this crate knows HTTP and the partners' wire formats and nothing
//! about workflows or storage; it never logs personal data or credentials (only partner,
//! endpoint, status and idempotency key); redirects are never followed, and every response
//! body is read under a size cap.

pub mod crmx;
pub mod email;
mod error;
pub mod galaxypay;
mod http;
mod ids;
pub mod kybio;
mod reply;
pub mod skyjoy;
pub mod vietjet;

pub use error::{Error, ErrorCode, Failure, Result, Retry};
pub use http::HttpOptions;
pub use ids::{
    BankLinkId, DocumentId, EmailAddress, Endpoint, InvalidId, Partner, PartnerMemberId, Personal,
    Phone, PosId, SkyjoyId, WalletId,
};
pub use reply::{AlreadyDone, Reply};

use serde::Deserialize;

/// Name of the header every call carries so partners can deduplicate retries.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Header a partner (and the sandbox) sets when it answers a repeated idempotency key with
/// the stored original answer; connectors turn such answers into [`Reply::AlreadyDone`].
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// Configuration of every connector, as one block of the service configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectorsConfig {
    pub vietjet: vietjet::Config,
    pub skyjoy: skyjoy::Config,
    pub galaxypay: galaxypay::Config,
    pub kybio: kybio::Config,
    pub crmx: crmx::Config,
    pub email: email::Config,
}

/// Every partner client, built once from [`ConnectorsConfig`] and cheap to clone.
#[derive(Debug, Clone)]
pub struct Connectors {
    pub vietjet: vietjet::Client,
    pub skyjoy: skyjoy::Client,
    pub galaxypay: galaxypay::Client,
    pub kybio: kybio::Client,
    pub crmx: crmx::Client,
    pub email: email::Mailer,
}

impl Connectors {
    /// Builds every client; fails only on configuration that cannot work (bad URL, bad TLS
    /// setup), never on partner reachability.
    pub fn new(config: &ConnectorsConfig) -> Result<Self> {
        Ok(Self {
            vietjet: vietjet::Client::new(config.vietjet.clone())?,
            skyjoy: skyjoy::Client::new(config.skyjoy.clone())?,
            galaxypay: galaxypay::Client::new(config.galaxypay.clone())?,
            kybio: kybio::Client::new(config.kybio.clone())?,
            crmx: crmx::Client::new(config.crmx.clone())?,
            email: email::Mailer::new(config.email.clone())?,
        })
    }
}
