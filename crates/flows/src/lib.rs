//! The BRD's three closure flows (`workflows/vietjet.toml`, `skyjoy.toml`,
//! `galaxypay.toml`) run these actions. Each action decodes the workflow input, calls a
//! partner through `closeout-connectors` with the step's idempotency key, and maps the
//! answer to an engine outcome in one place ([`outcome`]).
//!
//! Architecture invariant: no SQL and no HTTP details here. Partners are reached only
//! through the connectors, and state only through the engine.

pub mod cooldown;
pub mod crm;
pub mod galaxypay;
pub mod input;
pub mod notify;
pub mod outcome;
pub mod skyjoy;
pub mod vietjet;

use closeout_connectors::Connectors;
use closeout_cooldown::HashKeys;
use closeout_engine::action::Registry;

pub use input::ClosureInput;

/// Outcome codes the flows add to the connectors' own, spelled once. The first four
/// are the BRD's codes, which the channel API returns as they are.
pub mod codes {
    pub const USER_NOT_FOUND: &str = "USER_NOT_FOUND";
    pub const EMAIL_NOT_VERIFIED: &str = "EMAIL_NOT_VERIFIED";
    pub const DUPLICATE_REQUEST: &str = "DUPLICATE_REQUEST";
    pub const CLOSE_ACCOUNT_FAILED: &str = "CLOSE_ACCOUNT_FAILED";
    /// The member's status (Merged, Blocked, Suspected Fraud) may not ask to close.
    pub const STATUS_NOT_ALLOWED: &str = "STATUS_NOT_ALLOWED";
    pub const WALLET_NOT_FOUND: &str = "WALLET_NOT_FOUND";
    pub const WALLET_NOT_CLOSABLE: &str = "WALLET_NOT_CLOSABLE";
    pub const NO_VERIFIED_EMAIL: &str = "NO_VERIFIED_EMAIL";
    pub const INVALID_INPUT: &str = "INVALID_INPUT";
    pub const MISSING_DATA: &str = "MISSING_DATA";
    pub const INVALID_PHONE: &str = "INVALID_PHONE";
}

/// Decodes the workflow input or returns the failing outcome from the action.
macro_rules! input_or_fail {
    ($ctx:expr) => {
        match $crate::input::ClosureInput::of(&$ctx) {
            Ok(input) => input,
            Err(outcome) => return outcome,
        }
    };
}
pub(crate) use input_or_fail;

/// Registers every closure action, each calling partners through `connectors`. The
/// closing steps record the phone cooldown, hashed with `keys`, in the same transaction
/// as their result.
pub fn register(registry: &mut Registry, connectors: Connectors, keys: HashKeys) {
    skyjoy::register(registry, connectors.skyjoy, keys.clone());
    vietjet::register(registry, connectors.vietjet);
    galaxypay::register(registry, connectors.galaxypay, keys);
    crm::register(registry, connectors.kybio, connectors.crmx);
    notify::register(registry, connectors.email);
}
