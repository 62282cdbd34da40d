//! The phone cooldown a closing step starts. The entry travels with the step's result
//! as a record, so the registry row and the step's success commit together or not at
//! all. The registry keeps a keyed hash of the phone, never the phone.

use chrono::{DateTime, Utc};
use closeout_cooldown::{release_at, HashKeys, PhoneHash, Scope, E164};
use closeout_engine::action::Outcome;
use closeout_engine::store::{CooldownEntry, Record};
use serde_json::{json, Value};

use crate::codes;
use crate::input::ClosureInput;

/// The hash to record, computed before the partner call so a phone that cannot be
/// normalised fails the step before anything is closed.
pub fn prepare(keys: &HashKeys, input: &ClosureInput) -> Result<PhoneHash, Outcome> {
    let phone = E164::parse(input.phone.as_str())
        .map_err(|e| Outcome::fail(codes::INVALID_PHONE, e.to_string()))?;
    Ok(keys.current(&phone))
}

/// Adds the cooldown record (and its release instant, for the history) to a successful
/// closing outcome; any other outcome passes through.
pub fn attach(outcome: Outcome, scope: Scope, hash: PhoneHash) -> Outcome {
    let Outcome::Done {
        mut output,
        note,
        mut records,
    } = outcome
    else {
        return outcome;
    };
    let closed_at = output
        .get("closed_at")
        .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
        .unwrap_or_else(Utc::now);
    let release = release_at(closed_at);
    if let Value::Object(map) = &mut output {
        map.insert(
            "cooldown".into(),
            json!({ "scope": scope.as_ref(), "phone_reusable_from": release }),
        );
    }
    records.push(Record::Cooldown(CooldownEntry {
        scope: scope.to_string(),
        phone_hash: hash.hex,
        key_version: hash.key_version,
        closed_at,
        release_at: release,
        workflow_id: None,
    }));
    Outcome::Done {
        output,
        note,
        records,
    }
}
