//! Organisation credentials and revocation lists: the adversaries of issue
//! 14 at the level of the sans-IO checks, and the conformance vectors of
//! `docs/vectors/credentials.json`.
//!
//! `cargo test -p tacit-handshake --test credentials -- --ignored write_vectors`
//! rewrites the vectors file and the fuzz seeds (Ed25519 signing is
//! deterministic, so the output is stable).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use serde_json::{Value, json};
use tacit_handshake::credential::{
    Applied, Credential, CredentialError, MAX_CREDENTIAL_LEN, OrgKey, OrgSigner, SignedCredential,
    SignedRevocationList, TrustStore,
};
use tacit_handshake::{AgentId, Identity};
use tacit_wire::{ErrorCode, IntentId, pb};

const NOW: u64 = 1_800_000_000;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn org() -> OrgSigner {
    OrgSigner::from_secret_bytes(&[0x0a; 32])
}

fn other_org() -> OrgSigner {
    OrgSigner::from_secret_bytes(&[0x0b; 32])
}

fn agent() -> AgentId {
    Identity::from_secret_bytes(&[0x01; 32]).agent_id()
}

fn other_agent() -> AgentId {
    Identity::from_secret_bytes(&[0x02; 32]).agent_id()
}

fn valid() -> Credential {
    Credential::new(agent(), at(NOW - 3600), at(NOW + 3600)).role("buyer").role("auditor").serial(7)
}

fn store(orgs: &[OrgKey]) -> TrustStore {
    let mut store = TrustStore::new();
    for org in orgs {
        store.trust(*org);
    }
    store
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap()).collect()
}

fn code_name(code: ErrorCode) -> &'static str {
    code.as_str_name().trim_start_matches("ERROR_CODE_")
}

/// `trust.verify-order`, `trust.subject`, `trust.format`, `trust.org-key`:
/// a valid credential verifies, shows its org, roles and serial, and
/// round-trips.
#[test]
fn a_valid_credential_verifies() {
    let signed = org().issue(&valid().intents([IntentId::from_bytes([3; 32])]));
    let verified = store(&[org().org_key()]).verify(&signed, &agent(), at(NOW)).unwrap();
    assert_eq!(verified.org, org().org_key());
    assert_eq!(verified.subject, agent());
    assert_eq!(verified.roles, ["buyer", "auditor"]);
    assert_eq!(verified.intents, Some(vec![IntentId::from_bytes([3; 32])]));
    assert_eq!(verified.serial, 7);
    assert_eq!(verified.not_after, at(NOW + 3600));
    let again = SignedCredential::decode(&signed.encode()).unwrap();
    assert_eq!(again, signed);
}

/// `trust.validity`: `not_after` is exclusive, `not_before` inclusive.
#[test]
fn an_expired_credential_is_refused() {
    let signed = org().issue(&valid());
    let store = store(&[org().org_key()]);
    let expired = store.verify(&signed, &agent(), at(NOW + 3600)).unwrap_err();
    assert_eq!(expired, CredentialError::Expired(NOW + 3600));
    assert_eq!(expired.code(), ErrorCode::CredentialExpired);
    assert!(store.verify(&signed, &agent(), at(NOW + 3599)).is_ok());
    assert!(store.verify(&signed, &agent(), at(NOW - 3600)).is_ok());
    let early = store.verify(&signed, &agent(), at(NOW - 3601)).unwrap_err();
    assert_eq!(early.code(), ErrorCode::CredentialExpired);
}

/// `trust.signature`: a credential naming a trusted org but signed by
/// another key is refused as invalid.
#[test]
fn a_forged_credential_is_refused() {
    let genuine = org().issue(&valid());
    // The other org signs a body naming the trusted org.
    let body = pb::Credential::decode(genuine.body()).unwrap().encode_to_vec();
    let forged = resign(&other_org(), &body);
    let error = store(&[org().org_key()]).verify(&forged, &agent(), at(NOW)).unwrap_err();
    assert_eq!(error, CredentialError::BadSignature(org().org_key()));
    assert_eq!(error.code(), ErrorCode::CredentialInvalid);
    // A flipped bit in the body breaks the signature too.
    let mut tampered = pb::SignedCredential::decode(genuine.encode().as_slice()).unwrap();
    let mut body = tampered.body.to_vec();
    *body.last_mut().unwrap() ^= 1;
    tampered.body = body.into();
    let tampered = SignedCredential::decode(&tampered.encode_to_vec()).unwrap();
    assert_eq!(
        store(&[org().org_key()]).verify(&tampered, &agent(), at(NOW)).unwrap_err().code(),
        ErrorCode::CredentialInvalid
    );
}

/// Signs `body` with `signer` under the credential label, bypassing `issue`.
fn resign(signer: &OrgSigner, body: &[u8]) -> SignedCredential {
    let mut message = tacit_handshake::credential::CREDENTIAL_LABEL.to_vec();
    message.extend_from_slice(body);
    let signature = signer.identity().sign(&message).to_bytes();
    let signed = pb::SignedCredential { body: body.to_vec().into(), signature: signature.to_vec().into() };
    SignedCredential::decode(&signed.encode_to_vec()).unwrap()
}

/// `trust.subject`: a credential for another AgentId, or one replayed by a
/// key that is not its subject, is refused.
#[test]
fn a_credential_for_another_agent_is_refused() {
    let signed = org().issue(&valid());
    let error = store(&[org().org_key()]).verify(&signed, &other_agent(), at(NOW)).unwrap_err();
    assert_eq!(error, CredentialError::WrongSubject { subject: agent(), presenter: other_agent() });
    assert_eq!(error.code(), ErrorCode::CredentialInvalid);
}

/// `trust.untrusted`: an organisation the store does not trust.
#[test]
fn an_untrusted_organisation_is_refused() {
    let signed = other_org().issue(&valid());
    let error = store(&[org().org_key()]).verify(&signed, &agent(), at(NOW)).unwrap_err();
    assert_eq!(error, CredentialError::UntrustedOrganisation(other_org().org_key()));
    assert_eq!(error.code(), ErrorCode::UntrustedOrganisation);
}

/// `revoke.refused`, `revoke.newer`, `revoke.trusted`, `revoke.signature`.
#[test]
fn revocation_lists() {
    let signed = org().issue(&valid());
    let mut store = store(&[org().org_key()]);
    assert_eq!(store.apply_revocations(&org().revoke([7, 9], at(NOW - 10))).unwrap(), Applied::Replaced);
    let error = store.verify(&signed, &agent(), at(NOW)).unwrap_err();
    assert_eq!(error, CredentialError::Revoked { org: org().org_key(), serial: 7 });
    assert_eq!(error.code(), ErrorCode::CredentialRevoked);
    // An older or equally old list changes nothing.
    assert_eq!(store.apply_revocations(&org().revoke([], at(NOW - 20))).unwrap(), Applied::Stale);
    assert_eq!(store.apply_revocations(&org().revoke([], at(NOW - 10))).unwrap(), Applied::Stale);
    assert!(store.is_revoked(&org().org_key(), 7));
    // A newer list replaces it: serial 7 is reinstated.
    assert_eq!(store.apply_revocations(&org().revoke([9], at(NOW))).unwrap(), Applied::Replaced);
    assert!(store.verify(&signed, &agent(), at(NOW)).is_ok());
    // Lists of untrusted organisations are refused.
    let error = store.apply_revocations(&other_org().revoke([7], at(NOW + 1))).unwrap_err();
    assert_eq!(error.code(), ErrorCode::UntrustedOrganisation);
    // A list signed under the credential label (or by another key) is refused.
    let list = org().revoke([7], at(NOW + 1));
    let mut raw = pb::SignedRevocationList::decode(list.encode().as_slice()).unwrap();
    let mut message = tacit_handshake::credential::CREDENTIAL_LABEL.to_vec();
    message.extend_from_slice(&raw.body);
    raw.signature = org().identity().sign(&message).to_bytes().to_vec().into();
    let wrong_label = SignedRevocationList::decode(&raw.encode_to_vec()).unwrap();
    assert_eq!(store.apply_revocations(&wrong_label).unwrap_err(), CredentialError::BadSignature(org().org_key()));
    assert!(!store.is_revoked(&org().org_key(), 7));
}

/// `revoke.file`, `revoke.format`, `revoke.bounds`: a list written to a
/// file loads back; a file that is not a list is refused.
#[test]
fn revocation_list_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("org.revocations");
    std::fs::write(&path, org().revoke([7], at(NOW)).encode()).unwrap();
    let mut store = store(&[org().org_key()]);
    assert_eq!(store.load_revocations(&path).unwrap(), Applied::Replaced);
    assert!(store.is_revoked(&org().org_key(), 7));
    let big = vec![0u8; tacit_handshake::credential::MAX_REVOCATION_LIST_LEN + 1];
    assert!(matches!(SignedRevocationList::decode(&big), Err(CredentialError::TooLarge { .. })));
    let too_many = org().revoke(0..4097, at(NOW));
    assert!(matches!(store.apply_revocations(&too_many), Err(CredentialError::Malformed { .. })));
    std::fs::write(&path, b"not a list").unwrap();
    assert_eq!(store.load_revocations(&path).unwrap_err().code(), ErrorCode::CredentialInvalid);
}

/// `trust.bounds`, `trust.refusal-codes`: sizes and counts are bounded;
/// malformed fields are typed errors with `CREDENTIAL_INVALID`.
#[test]
fn bounds_and_malformed_fields() {
    let big = vec![0u8; MAX_CREDENTIAL_LEN + 1];
    assert!(matches!(SignedCredential::decode(&big), Err(CredentialError::TooLarge { .. })));
    let short_signature = pb::SignedCredential { body: vec![].into(), signature: vec![0; 63].into() };
    assert!(matches!(
        SignedCredential::decode(&short_signature.encode_to_vec()),
        Err(CredentialError::Malformed { .. })
    ));
    let cases: Vec<(&str, Credential)> = vec![
        ("too many roles", (0..17).fold(valid(), |c, i| c.role(format!("r{i}")))),
        ("empty role", valid().role("")),
        ("long role", valid().role("x".repeat(65))),
        ("duplicate role", valid().role("buyer")),
        ("empty period", Credential::new(agent(), at(NOW), at(NOW))),
        ("too many intents", valid().intents((0..65).map(|i| IntentId::from_bytes([i; 32])))),
    ];
    for (what, credential) in cases {
        let signed = org().issue(&credential);
        let error = store(&[org().org_key()]).verify(&signed, &agent(), at(NOW)).unwrap_err();
        assert!(matches!(error, CredentialError::Malformed { .. }), "{what}: {error:?}");
        assert_eq!(error.code(), ErrorCode::CredentialInvalid, "{what}");
    }
}

// --- docs/vectors/credentials.json -----------------------------------------

fn raw_credential(subject: &[u8], org_key: &[u8], serial: u64) -> Vec<u8> {
    pb::Credential {
        org_key: org_key.to_vec().into(),
        subject: subject.to_vec().into(),
        roles: vec!["buyer".into()],
        not_before_unix_s: NOW - 3600,
        not_after_unix_s: NOW + 3600,
        intents: vec![],
        serial,
    }
    .encode_to_vec()
}

fn build_vectors() -> Value {
    let org_key = org().org_key();
    let trusted = json!([org_key.to_string()]);
    let credential =
        |name: &str, rule: &str, signed: &SignedCredential, presenter: AgentId, lists: Vec<String>, expect: Value| {
            json!({
                "name": name, "rule": rule, "kind": "credential",
                "signed_credential": hex(&signed.encode()), "presenter": presenter.to_string(),
                "trusted": trusted, "revocation_lists": lists, "expect": expect,
            })
        };
    let ok = json!({"org": org_key.to_string(), "roles": ["buyer", "auditor"], "serial": 7});
    let revoking = org().revoke([7, 11], at(NOW - 60));
    let wrong_signer = resign(&other_org(), &raw_credential(agent().as_bytes(), org_key.as_bytes(), 7));
    let vectors = vec![
        credential("valid", "trust.verify-order", &org().issue(&valid()), agent(), vec![], ok),
        credential(
            "expired",
            "trust.validity",
            &org().issue(&Credential::new(agent(), at(NOW - 7200), at(NOW)).role("buyer").serial(8)),
            agent(),
            vec![],
            json!({"error": "CREDENTIAL_EXPIRED"}),
        ),
        credential(
            "not_yet_valid",
            "trust.validity",
            &org().issue(&Credential::new(agent(), at(NOW + 1), at(NOW + 7200)).role("buyer").serial(9)),
            agent(),
            vec![],
            json!({"error": "CREDENTIAL_EXPIRED"}),
        ),
        credential(
            "wrong_signer",
            "trust.signature",
            &wrong_signer,
            agent(),
            vec![],
            json!({"error": "CREDENTIAL_INVALID"}),
        ),
        credential(
            "wrong_subject",
            "trust.subject",
            &org().issue(&valid()),
            other_agent(),
            vec![],
            json!({"error": "CREDENTIAL_INVALID"}),
        ),
        credential(
            "untrusted_organisation",
            "trust.untrusted",
            &other_org().issue(&valid()),
            agent(),
            vec![],
            json!({"error": "UNTRUSTED_ORGANISATION"}),
        ),
        credential(
            "revoked",
            "revoke.refused",
            &org().issue(&valid()),
            agent(),
            vec![hex(&revoking.encode())],
            json!({"error": "CREDENTIAL_REVOKED"}),
        ),
        json!({
            "name": "revocation_list", "rule": "revoke.signature", "kind": "revocation_list",
            "signed_revocation_list": hex(&revoking.encode()), "trusted": trusted,
            "expect": {"org": org_key.to_string(), "issued_at_unix_s": NOW - 60, "serials": [7, 11]},
        }),
        json!({
            "name": "revocation_list_untrusted", "rule": "revoke.trusted", "kind": "revocation_list",
            "signed_revocation_list": hex(&other_org().revoke([7], at(NOW)).encode()), "trusted": trusted,
            "expect": {"error": "UNTRUSTED_ORGANISATION"},
        }),
    ];
    json!({
        "description": "Organisation credentials and revocation lists (docs/PROTOCOL.md, \"Trust: organisations and credentials\"). Check each with the trusted organisations listed, after applying revocation_lists in order, at now_unix_s.",
        "now_unix_s": NOW,
        "org_secret_key": hex(&[0x0a; 32]),
        "org_key": org_key.to_string(),
        "subject_secret_key": hex(&[0x01; 32]),
        "vectors": vectors,
    })
}

/// Rewrites `docs/vectors/credentials.json` and the fuzz seeds.
#[test]
#[ignore = "rewrites committed files"]
fn write_vectors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = build_vectors();
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    std::fs::write(root.join("docs/vectors/credentials.json"), text).unwrap();
    for vector in doc["vectors"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        if let Some(credential) = vector["signed_credential"].as_str() {
            std::fs::write(root.join("fuzz/corpus/credential").join(name), unhex(credential)).unwrap();
        }
        if let Some(list) = vector["signed_revocation_list"].as_str() {
            std::fs::write(root.join("fuzz/corpus/revocations").join(name), unhex(list)).unwrap();
        }
    }
}

/// Every vector of `docs/vectors/credentials.json` holds, and the file is
/// what this code writes.
#[test]
fn credential_vectors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors/credentials.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc, build_vectors(), "credentials.json is stale: run the ignored test write_vectors");
    let now = at(doc["now_unix_s"].as_u64().unwrap());
    for vector in doc["vectors"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        assert!(vector["rule"].as_str().unwrap().contains('.'), "{name}");
        let mut store = TrustStore::new();
        for org in vector["trusted"].as_array().unwrap() {
            store.trust(org.as_str().unwrap().parse().unwrap());
        }
        let expect = &vector["expect"];
        match vector["kind"].as_str().unwrap() {
            "credential" => {
                for list in vector["revocation_lists"].as_array().unwrap() {
                    let list = SignedRevocationList::decode(&unhex(list.as_str().unwrap())).unwrap();
                    store.apply_revocations(&list).unwrap();
                }
                let signed = SignedCredential::decode(&unhex(vector["signed_credential"].as_str().unwrap()));
                let presenter: AgentId = vector["presenter"].as_str().unwrap().parse().unwrap();
                let result = signed.and_then(|signed| store.verify(&signed, &presenter, now));
                match (expect["error"].as_str(), result) {
                    (Some(code), Err(error)) => assert_eq!(code_name(error.code()), code, "{name}: {error}"),
                    (None, Ok(verified)) => {
                        assert_eq!(verified.org.to_string(), expect["org"], "{name}");
                        assert_eq!(json!(verified.roles), expect["roles"], "{name}");
                        assert_eq!(verified.serial, expect["serial"].as_u64().unwrap(), "{name}");
                    }
                    (_, result) => panic!("vector {name}: got {result:?}"),
                }
            }
            "revocation_list" => {
                let signed =
                    SignedRevocationList::decode(&unhex(vector["signed_revocation_list"].as_str().unwrap())).unwrap();
                match (expect["error"].as_str(), store.apply_revocations(&signed)) {
                    (Some(code), Err(error)) => assert_eq!(code_name(error.code()), code, "{name}: {error}"),
                    (None, Ok(Applied::Replaced)) => {
                        let list = signed.list().unwrap();
                        assert_eq!(list.org.to_string(), expect["org"], "{name}");
                        assert_eq!(list.issued_at, expect["issued_at_unix_s"].as_u64().unwrap(), "{name}");
                        assert_eq!(json!(list.serials), expect["serials"], "{name}");
                    }
                    (_, result) => panic!("vector {name}: got {result:?}"),
                }
            }
            kind => panic!("vector {name}: unknown kind {kind}"),
        }
    }
}

// --- credentials in the handshake (sans-IO) ---------------------------------

mod in_handshake {
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use tacit_handshake::credential::{Credential, OrgSigner, SignedCredential, TrustStore};
    use tacit_handshake::{
        AgentCard, AgentId, Capabilities, Event, Handshake, HandshakeConfig, Identity, MAX_PRESENTED_CREDENTIALS,
        Negotiated, Refusal,
    };
    use tacit_wire::ErrorCode;

    fn dialer_id() -> AgentId {
        Identity::from_secret_bytes(&[0x11; 32]).agent_id()
    }

    fn acceptor_id() -> AgentId {
        Identity::from_secret_bytes(&[0x12; 32]).agent_id()
    }

    fn org() -> OrgSigner {
        OrgSigner::from_secret_bytes(&[0x0a; 32])
    }

    fn issue(signer: &OrgSigner, subject: AgentId, role: &str, serial: u64) -> SignedCredential {
        let now = SystemTime::now();
        signer.issue(
            &Credential::new(subject, now - Duration::from_secs(60), now + Duration::from_secs(3600))
                .role(role)
                .serial(serial),
        )
    }

    fn config(name: &str, presents: &[SignedCredential], trust: Option<TrustStore>) -> Arc<HandshakeConfig> {
        let mut config = HandshakeConfig::new(AgentCard::new(name), Capabilities::default()).unwrap();
        for credential in presents {
            config.credential(credential);
        }
        if let Some(trust) = trust {
            config.trust_store(Arc::new(std::sync::RwLock::new(trust)));
        }
        Arc::new(config)
    }

    fn trusting() -> TrustStore {
        let mut store = TrustStore::new();
        store.trust(org().org_key());
        store
    }

    /// Runs a handshake; `seen_by_acceptor` is the AgentId the acceptor's
    /// transport proved for the dialer (its TLS key).
    fn run(
        dialer: Arc<HandshakeConfig>,
        acceptor: Arc<HandshakeConfig>,
        seen_by_acceptor: AgentId,
    ) -> (Result<Negotiated, Refusal>, Result<Negotiated, Refusal>) {
        let now = Instant::now();
        let mut a = Handshake::dialer(dialer, now);
        let mut b = Handshake::acceptor(acceptor, now);
        a.set_peer_id(acceptor_id());
        b.set_peer_id(seen_by_acceptor);
        for _ in 0..4 {
            while let Some(bytes) = a.poll_transmit() {
                b.handle_data(&bytes, now);
            }
            while let Some(bytes) = b.poll_transmit() {
                a.handle_data(&bytes, now);
            }
        }
        let outcome = |h: &mut Handshake| loop {
            match h.poll_event().expect("the handshake ended") {
                Event::Established(negotiated) => break Ok(negotiated),
                Event::Failed { refusal, .. } => break Err(refusal),
                _ => {}
            }
        };
        (outcome(&mut a), outcome(&mut b))
    }

    /// `trust.handshake`: valid credentials both ways show org and roles on both sides.
    #[test]
    fn valid_credentials_are_exposed_on_both_sides() {
        let (dialer, acceptor) = run(
            config("d", &[issue(&org(), dialer_id(), "buyer", 1)], Some(trusting())),
            config("a", &[issue(&org(), acceptor_id(), "seller", 2)], Some(trusting())),
            dialer_id(),
        );
        let (dialer, acceptor) = (dialer.unwrap(), acceptor.unwrap());
        assert_eq!(dialer.peer_credentials.len(), 1);
        assert_eq!(dialer.peer_credentials[0].org, org().org_key());
        assert_eq!(dialer.peer_credentials[0].roles, ["seller"]);
        assert_eq!(acceptor.peer_credentials[0].roles, ["buyer"]);
        assert_eq!(acceptor.peer_credentials[0].subject, dialer_id());
    }

    fn refused_by_acceptor(presented: Vec<SignedCredential>, trust: TrustStore, seen: AgentId) -> ErrorCode {
        let (dialer, acceptor) = run(config("d", &presented, None), config("a", &[], Some(trust)), seen);
        let code = acceptor.unwrap_err().code;
        assert_eq!(dialer.unwrap_err().code, code, "the dialer learns the same code");
        code
    }

    /// `trust.handshake`, `trust.subject`: a credential replayed by a key
    /// that is not its subject is refused.
    #[test]
    fn a_replayed_credential_is_refused() {
        let stolen = issue(&org(), acceptor_id(), "buyer", 1);
        assert_eq!(refused_by_acceptor(vec![stolen], trusting(), dialer_id()), ErrorCode::CredentialInvalid);
    }

    /// `trust.handshake`, `trust.validity`, `trust.untrusted`, `trust.signature`, `revoke.refused`.
    #[test]
    fn bad_credentials_are_refused_with_their_code() {
        let now = SystemTime::now();
        let expired = org().issue(
            &Credential::new(dialer_id(), now - Duration::from_secs(7200), now - Duration::from_secs(3600)).role("r"),
        );
        assert_eq!(refused_by_acceptor(vec![expired], trusting(), dialer_id()), ErrorCode::CredentialExpired);
        let other = OrgSigner::from_secret_bytes(&[0x0b; 32]);
        let untrusted = issue(&other, dialer_id(), "buyer", 1);
        assert_eq!(refused_by_acceptor(vec![untrusted], trusting(), dialer_id()), ErrorCode::UntrustedOrganisation);
        let mut revoked = trusting();
        revoked.apply_revocations(&org().revoke([5], now)).unwrap();
        let credential = issue(&org(), dialer_id(), "buyer", 5);
        assert_eq!(refused_by_acceptor(vec![credential], revoked, dialer_id()), ErrorCode::CredentialRevoked);
        // One bad credential among good ones refuses the handshake.
        let good = issue(&org(), dialer_id(), "buyer", 1);
        let bad = issue(&other, dialer_id(), "buyer", 2);
        assert_eq!(refused_by_acceptor(vec![good, bad], trusting(), dialer_id()), ErrorCode::UntrustedOrganisation);
    }

    /// `trust.handshake`: at most 8 credentials.
    #[test]
    fn too_many_credentials_are_refused() {
        let many: Vec<_> = (0..=MAX_PRESENTED_CREDENTIALS as u64).map(|i| issue(&org(), dialer_id(), "r", i)).collect();
        assert_eq!(refused_by_acceptor(many, trusting(), dialer_id()), ErrorCode::CredentialInvalid);
    }

    /// `trust.handshake`: an agent that checks no credentials ignores them.
    #[test]
    fn without_a_trust_store_credentials_are_ignored() {
        let other = OrgSigner::from_secret_bytes(&[0x0b; 32]);
        let (dialer, acceptor) =
            run(config("d", &[issue(&other, acceptor_id(), "x", 1)], None), config("a", &[], None), dialer_id());
        assert!(dialer.unwrap().peer_credentials.is_empty());
        assert!(acceptor.unwrap().peer_credentials.is_empty());
    }
}
