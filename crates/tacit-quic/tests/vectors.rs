//! `docs/vectors/certificate.json`: the certificate an agent presents, and
//! the AgentId read from it. Other implementations read the same file (see
//! `docs/vectors/README.md`). A vector that does not hold fails with its name.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tacit_handshake::Identity;
use tacit_quic::tls::agent_id_of_certificate;

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// Rules `agentid.key` (the sample binds its AgentId) and
/// `agentid.valid-key` (a certificate over a small-order or non-canonical
/// key yields no AgentId; the non-canonical one was accepted before the rule).
#[test]
fn certificate_vectors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors/certificate.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 2);
    for vector in vectors {
        let name = vector["name"].as_str().unwrap();
        assert!(vector["rule"].as_str().is_some_and(|r| r.contains('.')), "vector {name}: rule");
        let der = CertificateDer::from(unhex(vector["der"].as_str().unwrap()));
        if let Some(pem) = vector["pem"].as_str() {
            let from_pem = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(from_pem, der, "vector {name}: pem and der differ");
        }
        let read = agent_id_of_certificate(&der);
        if vector.get("error").is_some() {
            assert!(read.is_err(), "vector {name}: read {read:?}");
            continue;
        }
        let id = read.unwrap_or_else(|e| panic!("vector {name}: {e}"));
        assert_eq!(id.to_string(), vector["agent_id"].as_str().unwrap(), "vector {name}");
        let seed: [u8; 32] = unhex(vector["secret_key"].as_str().unwrap()).try_into().unwrap();
        assert_eq!(Identity::from_secret_bytes(&seed).agent_id(), id, "vector {name}: key pair");
    }
}
