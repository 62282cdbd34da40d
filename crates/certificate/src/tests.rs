use super::*;
use chrono::TimeZone;
use serde_json::json;

fn certificate() -> Certificate {
    let at = |h| Utc.with_ymd_and_hms(2026, 11, 2, h, 0, 0).unwrap();
    Certificate {
        kind: TYPE.to_owned(),
        version: VERSION,
        request_id: uuid::Uuid::from_u128(7),
        flow: "vietjet".into(),
        definition_version: 1,
        definition_hash: "ab".repeat(32),
        channel: Some("vietjet".into()),
        skyjoy_id: Some("SJ0001".into()),
        requested_at: at(1),
        completed_at: at(3),
        steps: vec![StepEntry {
            step: "close_skyid".into(),
            system: "skyjoy".into(),
            action: Some("skyjoy.close_account".into()),
            outcome: "done".into(),
            at: at(2),
            attempts: 2,
            record: Some(json!({ "closed": true })),
            actor: None,
        }],
        audit: Audit {
            history_entries: 12,
            history_head: "cd".repeat(32),
        },
    }
}

fn keys() -> Keys {
    Keys::generate("2026-11").unwrap().0
}

fn document(signed: &Signed) -> Vec<u8> {
    serde_json::to_vec_pretty(signed).unwrap()
}

#[test]
fn canonical_json_sorts_keys_at_every_depth_and_drops_whitespace() {
    let value = json!({ "b": [ { "z": 1, "a": "x" } ], "a": null, "é": 1, "B": true });
    assert_eq!(
        canonical(&value),
        r#"{"B":true,"a":null,"b":[{"a":"x","z":1}],"é":1}"#
    );
}

#[test]
fn a_signed_certificate_verifies_whatever_its_layout() {
    let keys = keys();
    let signed = keys.sign(certificate()).unwrap();
    assert_eq!(keys.verify(&document(&signed)).unwrap(), signed);
    // Re-indented and with keys reordered, the content is the same.
    let compact = serde_json::to_vec(&serde_json::to_value(&signed).unwrap()).unwrap();
    assert_eq!(keys.verify(&compact).unwrap(), signed);
}

#[test]
fn any_change_to_the_content_breaks_the_signature() {
    let keys = keys();
    let signed = serde_json::to_value(keys.sign(certificate()).unwrap()).unwrap();
    let changes: Vec<(&str, Value)> = vec![
        ("/certificate/skyjoy_id", json!("SJ0002")),
        ("/certificate/completed_at", json!("2026-11-02T04:00:00Z")),
        ("/certificate/steps/0/system", json!("galaxypay")),
        ("/certificate/steps/0/record/closed", json!(false)),
        ("/certificate/audit/history_entries", json!(13)),
    ];
    for (pointer, new) in changes {
        let mut tampered = signed.clone();
        *tampered.pointer_mut(pointer).unwrap() = new;
        assert_eq!(
            keys.verify(&serde_json::to_vec(&tampered).unwrap()),
            Err(VerifyError::BadSignature),
            "{pointer}"
        );
    }
    // An added field is a change too.
    let mut tampered = signed.clone();
    tampered["certificate"]["note"] = json!("added");
    assert_eq!(
        keys.verify(&serde_json::to_vec(&tampered).unwrap()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn another_key_with_the_same_id_does_not_verify() {
    let signed = keys().sign(certificate()).unwrap();
    assert_eq!(
        keys().verify(&document(&signed)),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn an_unknown_key_id_is_named_and_a_trusted_public_key_verifies() {
    let (signer, _) = Keys::generate("old").unwrap();
    let signed = signer.sign(certificate()).unwrap();
    let mut verifier = Keys::new(None, None, &BTreeMap::new()).unwrap();
    assert!(!verifier.can_sign());
    assert_eq!(
        verifier.verify(&document(&signed)),
        Err(VerifyError::UnknownKey("old".into()))
    );
    let (id, public) = signer.signing_public_key().unwrap();
    verifier.trust(&id, &public).unwrap();
    assert!(verifier.verify(&document(&signed)).is_ok());
    // A retired key configured as a verify key also works.
    let retired = Keys::new(None, None, &BTreeMap::from([(id, public)])).unwrap();
    assert!(retired.verify(&document(&signed)).is_ok());
}

#[test]
fn malformed_documents_are_refused_with_the_reason() {
    let keys = keys();
    let signed = serde_json::to_value(keys.sign(certificate()).unwrap()).unwrap();
    assert!(matches!(keys.verify(b"{"), Err(VerifyError::Malformed(_))));
    let mut no_sig = signed.clone();
    no_sig.as_object_mut().unwrap().remove("signature");
    assert!(
        matches!(keys.verify(&serde_json::to_vec(&no_sig).unwrap()), Err(VerifyError::Malformed(m)) if m.contains("signature"))
    );
    let mut other_alg = signed.clone();
    other_alg["signature"]["algorithm"] = json!("HS256");
    assert!(matches!(
        keys.verify(&serde_json::to_vec(&other_alg).unwrap()),
        Err(VerifyError::Malformed(m)) if m.contains("HS256")
    ));
    let mut short = signed;
    short["signature"]["value"] = json!("AAAA");
    assert!(matches!(
        keys.verify(&serde_json::to_vec(&short).unwrap()),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn signing_is_deterministic() {
    let keys = keys();
    assert_eq!(keys.sign(certificate()), keys.sign(certificate()));
}

#[test]
fn bad_keys_are_refused_and_the_secret_never_shows() {
    let short = SecretString::from("c2hvcnQ=");
    assert_eq!(
        Keys::new(Some(&short), None, &BTreeMap::new()).unwrap_err(),
        KeyError::BadSigningKey
    );
    let (_, secret) = Keys::generate("k").unwrap();
    assert_eq!(
        Keys::new(Some(&secret), Some("has space"), &BTreeMap::new()).unwrap_err(),
        KeyError::BadKeyId
    );
    assert_eq!(
        Keys::new(None, None, &BTreeMap::from([("v1".into(), "nope".into())])).unwrap_err(),
        KeyError::BadVerifyKey("v1".into())
    );
    let keys = Keys::new(Some(&secret), Some("k"), &BTreeMap::new()).unwrap();
    let debug = format!("{keys:?}");
    assert!(!debug.contains(secret.expose_secret()), "{debug}");
    assert!(debug.contains("redacted"));
}
