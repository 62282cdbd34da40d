//! Deletion certificates: a signed JSON summary of what a completed closure did, where
//! and when, for the member's channel and for operations.
//!
//! A certificate is derived from the workflow's append-only history and its pinned
//! definition, never stored: both are immutable once the workflow completes, and Ed25519
//! signatures are deterministic, so the same request yields the same bytes on every
//! retrieval and after the personal-data purge. It carries the head of the history's
//! hash chain, so `closeout audit verify` and a certificate vouch for each other.
//!
//! Signed bytes are the canonical JSON of the `certificate` object: object keys sorted
//! by their UTF-16 code units (RFC 8785 order; our keys are ASCII), no whitespace, strings
//! and numbers as `serde_json` writes them. Ed25519 rather than an HMAC so that a channel
//! can check a certificate with the public key alone.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use closeout_engine::definition::{Definition, StepKind};
use closeout_engine::state::{EventKind, StepState, WorkflowState};
use closeout_engine::store::{Event, WorkflowRecord};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `type` every certificate carries.
pub const TYPE: &str = "closeout.deletion-certificate";
/// The certificate format's version.
pub const VERSION: u32 = 1;
/// The only signature algorithm.
pub const ALGORITHM: &str = "Ed25519";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Only a completed closure closed anything.
    #[error("the request is {0}; a deletion certificate exists only for a completed closure")]
    NotCompleted(WorkflowState),
    #[error("the workflow's history does not match its definition: {0}")]
    Inconsistent(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("certificates.signing_key must be 32 random bytes in base64 (generate one with `closeout certificate keygen`)")]
    BadSigningKey,
    #[error("certificates.verify_keys.{0} must be an Ed25519 public key (32 bytes) in base64")]
    BadVerifyKey(String),
    #[error("certificates.key_id must be 1 to 64 letters, digits, '-', '_' or '.'")]
    BadKeyId,
}

/// Why a certificate does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("not a signed certificate: {0}")]
    Malformed(String),
    #[error("signed with key {0:?}, which is not among the known public keys; pass it with --public-key or add it to certificates.verify_keys")]
    UnknownKey(String),
    #[error("the signature does not match the content: the certificate was modified or signed by another key")]
    BadSignature,
}

/// One step the closure took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEntry {
    pub step: String,
    /// The partner system the step acted on (the action's prefix, e.g. `skyjoy`);
    /// `operations` for a decision taken by a person.
    pub system: String,
    /// The action run, e.g. `skyjoy.close_account`; absent for a decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `done`, `skipped` (by an operator) or `decided` (a signal to a wait step).
    pub outcome: String,
    pub at: DateTime<Utc>,
    pub attempts: u32,
    /// The step's recorded output (only steps whose definition records it, and those
    /// outputs hold no personal data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Value>,
    /// The operator who skipped the step or made the decision (`ops:<name>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// The head of the history's hash chain when the closure completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    pub history_entries: i64,
    pub history_head: String,
}

/// What is signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub request_id: uuid::Uuid,
    pub flow: String,
    pub definition_version: u32,
    pub definition_hash: String,
    pub channel: Option<String>,
    /// The member's SkyJoy ID: the key the closure was made for. No phone, email, name
    /// or document number appears anywhere in a certificate.
    pub skyjoy_id: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub steps: Vec<StepEntry>,
    pub audit: Audit,
}

/// The signature block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub algorithm: String,
    pub key_id: String,
    /// Base64 of the 64-byte Ed25519 signature over the canonical certificate.
    pub value: String,
}

/// A certificate as handed out: the content and its signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signed {
    pub certificate: Certificate,
    pub signature: Signature,
}

/// Derives the certificate of a completed closure.
pub fn build(
    record: &WorkflowRecord,
    definition: &Definition,
    history: &[Event],
) -> Result<Certificate, Error> {
    if record.progress.state != WorkflowState::Completed {
        return Err(Error::NotCompleted(record.progress.state));
    }
    if definition.steps.len() != record.progress.steps.len() {
        return Err(Error::Inconsistent(format!(
            "{} steps defined, {} recorded",
            definition.steps.len(),
            record.progress.steps.len()
        )));
    }
    let mut steps = Vec::new();
    for (def, progress) in definition.steps.iter().zip(&record.progress.steps) {
        let outcome = match progress.state {
            StepState::Succeeded => "done",
            StepState::Skipped => "skipped",
            // Steps a completed workflow never reached (none today) closed nothing.
            _ => continue,
        };
        let wanted: &[EventKind] = match (&def.kind, progress.state) {
            (_, StepState::Skipped) => &[EventKind::StepSkipped],
            (StepKind::Wait { .. }, _) => &[EventKind::SignalReceived, EventKind::WaitTimedOut],
            _ => &[EventKind::StepSucceeded],
        };
        // The last matching entry: a step done, compensated and redone counts its redo.
        let event = history
            .iter()
            .rev()
            .find(|e| e.step.as_ref() == Some(&def.id) && wanted.contains(&e.kind))
            .ok_or_else(|| {
                Error::Inconsistent(format!("no {:?} entry for step {}", wanted, def.id))
            })?;
        let action = def.kind.action().map(ToString::to_string);
        let system = action
            .as_deref()
            .map_or("operations", |a| a.split('.').next().unwrap_or(a))
            .to_owned();
        let outcome = if action.is_none() && outcome == "done" {
            "decided"
        } else {
            outcome
        };
        steps.push(StepEntry {
            step: def.id.to_string(),
            system,
            action,
            outcome: outcome.to_owned(),
            at: event.at,
            attempts: progress.attempts,
            record: (def.record_output && event.kind == EventKind::StepSucceeded)
                .then(|| event.data.clone())
                .flatten(),
            actor: event.actor.clone(),
        });
    }
    let head = record
        .history_head
        .clone()
        .ok_or_else(|| Error::Inconsistent("no history chain head".into()))?;
    Ok(Certificate {
        kind: TYPE.to_owned(),
        version: VERSION,
        request_id: record.id.as_uuid(),
        flow: record.definition.to_string(),
        definition_version: record.definition_version,
        definition_hash: record.definition_hash.clone(),
        channel: record.channel.as_ref().map(|c| c.to_string()),
        skyjoy_id: record.subject.as_ref().map(|s| s.as_str().to_owned()),
        requested_at: record.created_at,
        completed_at: record.progress.state_since,
        steps,
        audit: Audit {
            history_entries: record.history_len,
            history_head: head,
        },
    })
}

/// Writes `value` as canonical JSON: sorted keys, no whitespace.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The signing key and the public keys certificates are checked against.
#[derive(Clone)]
pub struct Keys {
    signing: Option<(String, SigningKey)>,
    verifying: BTreeMap<String, VerifyingKey>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("signing_key_id", &self.signing.as_ref().map(|(id, _)| id))
            .field("signing_key", &"[redacted]")
            .field("verify_key_ids", &self.verifying.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The key ID used when the configuration names none.
pub const DEFAULT_KEY_ID: &str = "1";

fn valid_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Keys {
    /// From the configuration: the signing key (base64 seed), its ID, and retired public
    /// keys by ID. The signing key's own public key is always among the verifying keys.
    pub fn new(
        signing_key: Option<&SecretString>,
        key_id: Option<&str>,
        verify_keys: &BTreeMap<String, String>,
    ) -> Result<Self, KeyError> {
        let mut verifying = BTreeMap::new();
        for (id, public) in verify_keys {
            if !valid_key_id(id) {
                return Err(KeyError::BadKeyId);
            }
            verifying.insert(
                id.clone(),
                parse_public_key(public).ok_or_else(|| KeyError::BadVerifyKey(id.clone()))?,
            );
        }
        let signing = match signing_key {
            None => None,
            Some(secret) => {
                let id = key_id.unwrap_or(DEFAULT_KEY_ID).to_owned();
                if !valid_key_id(&id) {
                    return Err(KeyError::BadKeyId);
                }
                let seed: [u8; 32] = BASE64
                    .decode(secret.expose_secret().trim())
                    .ok()
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or(KeyError::BadSigningKey)?;
                let key = SigningKey::from_bytes(&seed);
                verifying.insert(id.clone(), key.verifying_key());
                Some((id, key))
            }
        };
        Ok(Self { signing, verifying })
    }

    /// A fresh random signing key, for development and for `closeout certificate keygen`.
    pub fn generate(key_id: &str) -> Result<(Self, SecretString), KeyError> {
        let seed: [u8; 32] = rand::random();
        let secret = SecretString::from(BASE64.encode(seed));
        Ok((
            Self::new(Some(&secret), Some(key_id), &BTreeMap::new())?,
            secret,
        ))
    }

    /// Whether certificates can be signed.
    pub fn can_sign(&self) -> bool {
        self.signing.is_some()
    }

    /// The public keys by ID, in base64: what a channel needs to check a certificate.
    pub fn public_keys(&self) -> BTreeMap<String, String> {
        self.verifying
            .iter()
            .map(|(id, key)| (id.clone(), BASE64.encode(key.as_bytes())))
            .collect()
    }

    /// The signing key's ID and public key (base64).
    pub fn signing_public_key(&self) -> Option<(String, String)> {
        self.signing
            .as_ref()
            .map(|(id, key)| (id.clone(), BASE64.encode(key.verifying_key().as_bytes())))
    }

    /// Adds a public key to check against (e.g. one given on the command line).
    pub fn trust(&mut self, key_id: &str, public: &str) -> Result<(), KeyError> {
        let key =
            parse_public_key(public).ok_or_else(|| KeyError::BadVerifyKey(key_id.to_owned()))?;
        self.verifying.insert(key_id.to_owned(), key);
        Ok(())
    }

    /// Signs a certificate; `None` when no signing key is configured.
    pub fn sign(&self, certificate: Certificate) -> Option<Signed> {
        let (id, key) = self.signing.as_ref()?;
        let content = serde_json::to_value(&certificate).expect("a certificate serializes");
        let signature = key.sign(canonical(&content).as_bytes());
        Some(Signed {
            certificate,
            signature: Signature {
                algorithm: ALGORITHM.to_owned(),
                key_id: id.clone(),
                value: BASE64.encode(signature.to_bytes()),
            },
        })
    }

    /// Checks a certificate document (as JSON text) against the known public keys.
    /// Verification works on the document's own content, not a re-serialisation of our
    /// types, so a field we do not know still counts (and a changed one still fails).
    pub fn verify(&self, document: &[u8]) -> Result<Signed, VerifyError> {
        let value: Value = serde_json::from_slice(document)
            .map_err(|e| VerifyError::Malformed(format!("not JSON ({e})")))?;
        let content = value
            .get("certificate")
            .ok_or_else(|| VerifyError::Malformed("no `certificate` object".into()))?;
        let signature: Signature = value
            .get("signature")
            .cloned()
            .ok_or_else(|| VerifyError::Malformed("no `signature` object".into()))
            .and_then(|s| {
                serde_json::from_value(s)
                    .map_err(|e| VerifyError::Malformed(format!("bad `signature` ({e})")))
            })?;
        if signature.algorithm != ALGORITHM {
            return Err(VerifyError::Malformed(format!(
                "unsupported algorithm {:?}; expected {ALGORITHM}",
                signature.algorithm
            )));
        }
        let key = self
            .verifying
            .get(&signature.key_id)
            .ok_or_else(|| VerifyError::UnknownKey(signature.key_id.clone()))?;
        let bytes: [u8; 64] = BASE64
            .decode(signature.value.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                VerifyError::Malformed("the signature is not 64 bytes of base64".into())
            })?;
        key.verify_strict(
            canonical(content).as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&bytes),
        )
        .map_err(|_| VerifyError::BadSignature)?;
        let certificate: Certificate = serde_json::from_value(content.clone())
            .map_err(|e| VerifyError::Malformed(format!("bad `certificate` ({e})")))?;
        if certificate.kind != TYPE {
            return Err(VerifyError::Malformed(format!(
                "type {:?} is not {TYPE}",
                certificate.kind
            )));
        }
        Ok(Signed {
            certificate,
            signature,
        })
    }
}

fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = BASE64.decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests;
