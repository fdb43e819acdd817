//! Integration tests for `AgentId`, `Identity` and the key file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;

use data_encoding::{BASE32, BASE64, HEXLOWER, HEXUPPER};
use ed25519_dalek::Signature;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use ed25519_dalek::pkcs8::spki::EncodePublicKey as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use proptest::prelude::*;
use tacit_handshake::identity::KeyFileStatus;
use tacit_handshake::{AgentId, Identity, IdentityError, ParseAgentIdError};

/// The secret key of the documented example: bytes 0x01..=0x20.
const EXAMPLE_SECRET: [u8; 32] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    32,
];
const EXAMPLE_PUBLIC_HEX: &str = "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664";
const EXAMPLE_AGENT_ID: &str = "pg2vmlup4zkpsqdywejorkmlu6ib7bj242k35v7a4oiqxlieszsa";
const EXAMPLE_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
                           MC4CAQAwBQYDK2VwBCIEIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n\
                           -----END PRIVATE KEY-----\n";

fn example() -> Identity {
    Identity::from_secret_bytes(&EXAMPLE_SECRET)
}

/// Writes `content` as a key file with mode 0600, so that only its content
/// can be wrong.
fn write_key_file(path: &Path, content: &[u8]) {
    fs::write(path, content).unwrap();
    set_mode(path, 0o600);
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn dir_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    entries.sort();
    entries
}

fn openssl_available() -> bool {
    let available = Command::new("openssl").arg("version").output().is_ok_and(|out| out.status.success());
    if !available {
        eprintln!("openssl not found; skipping the interoperability check");
    }
    available
}

// --- AgentId ---------------------------------------------------------------

#[test]
fn example_vector() {
    let identity = example();
    let id = identity.agent_id();
    assert_eq!(HEXLOWER.encode(id.as_bytes()), EXAMPLE_PUBLIC_HEX);
    assert_eq!(id.to_string(), EXAMPLE_AGENT_ID);
    assert_eq!(EXAMPLE_AGENT_ID.parse::<AgentId>(), Ok(id));
    assert_eq!(id.short(), "pg2vmlup4z");
    assert_eq!(format!("{id:?}"), format!("AgentId({EXAMPLE_AGENT_ID})"));
    assert_eq!(*identity.to_pkcs8_pem(), EXAMPLE_PEM);
    assert_eq!(&identity.to_pkcs8_der()[..16], HEXLOWER.decode(b"302e020100300506032b657004220420").unwrap());
}

#[test]
fn printed_form_is_lowercase_rfc4648_base32_without_padding() {
    let id = example().agent_id();
    let standard = BASE32.encode(id.as_bytes());
    assert_eq!(standard.trim_end_matches('=').to_lowercase(), id.to_string());
}

proptest! {
    #[test]
    fn printed_form_round_trips(secret in any::<[u8; 32]>()) {
        let id = Identity::from_secret_bytes(&secret).agent_id();
        let printed = id.to_string();
        prop_assert_eq!(printed.len(), AgentId::PRINTED_LEN);
        prop_assert!(printed.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
        prop_assert_eq!(printed.parse::<AgentId>(), Ok(id));
        prop_assert_eq!(AgentId::from_bytes(*id.as_bytes()), Ok(id));
        prop_assert_eq!(AgentId::try_from(&id.as_bytes()[..]), Ok(id));
    }

    #[test]
    fn any_valid_key_bytes_round_trip(bytes in any::<[u8; 32]>()) {
        if let Ok(id) = AgentId::from_bytes(bytes) {
            prop_assert_eq!(id.as_bytes(), &bytes);
            prop_assert_eq!(id.to_string().parse::<AgentId>(), Ok(id));
        }
    }
}

#[test]
fn parse_errors() {
    let good = EXAMPLE_AGENT_ID;
    assert_eq!("".parse::<AgentId>(), Err(ParseAgentIdError::WrongLength(0)));
    assert_eq!(good[..51].parse::<AgentId>(), Err(ParseAgentIdError::WrongLength(51)));
    assert_eq!(format!("{good}a").parse::<AgentId>(), Err(ParseAgentIdError::WrongLength(53)));
    // Padding, whitespace and uppercase are not the printed form.
    assert_eq!(format!("{good}====").parse::<AgentId>(), Err(ParseAgentIdError::WrongLength(56)));
    assert_eq!(
        format!(" {}", &good[1..]).parse::<AgentId>(),
        Err(ParseAgentIdError::InvalidChar { index: 0, found: ' ' })
    );
    let upper = good.to_uppercase();
    assert_eq!(upper.parse::<AgentId>(), Err(ParseAgentIdError::InvalidChar { index: 0, found: 'P' }));
    for bad in ['0', '1', '8', '9', '=', '-'] {
        let s = format!("{}{bad}{}", &good[..5], &good[6..]);
        assert_eq!(s.parse::<AgentId>(), Err(ParseAgentIdError::InvalidChar { index: 5, found: bad }));
    }
    // 52 bytes, but 51 characters: the non-ASCII character is reported.
    let s = format!("{}é{}", &good[..10], &good[12..]);
    assert_eq!(s.len(), 52);
    assert_eq!(s.parse::<AgentId>(), Err(ParseAgentIdError::InvalidChar { index: 10, found: 'é' }));
    // The last character carries 4 unused bits, which must be zero.
    let s = format!("{}b", &good[..51]);
    assert_eq!(s.parse::<AgentId>(), Err(ParseAgentIdError::NonZeroTrailingBits { found: 'b' }));
    // Well-formed base32 of bytes that are not a usable public key.
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    assert_eq!(AgentId::from_bytes(identity_point), Err(ParseAgentIdError::SmallOrderKey));
    let not_on_curve = (0u8..=255)
        .map(|first| {
            let mut bytes = [0u8; 32];
            bytes[0] = first;
            bytes
        })
        .find(|bytes| ed25519_dalek::VerifyingKey::from_bytes(bytes).is_err())
        .expect("some y coordinate has no point");
    assert_eq!(AgentId::from_bytes(not_on_curve), Err(ParseAgentIdError::NotAPublicKey));
    let printed = BASE32.encode(&not_on_curve).trim_end_matches('=').to_lowercase();
    assert_eq!(printed.parse::<AgentId>(), Err(ParseAgentIdError::NotAPublicKey));
    assert_eq!(AgentId::try_from(&[0u8; 31][..]), Err(ParseAgentIdError::WrongByteLength(31)));
    assert_eq!(AgentId::try_from(&[0u8; 33][..]), Err(ParseAgentIdError::WrongByteLength(33)));
}

#[test]
fn parse_error_messages() {
    let message = |s: &str| s.parse::<AgentId>().unwrap_err().to_string();
    assert_eq!(message("abc"), "agent id must be 52 base32 characters, got 3 characters");
    assert_eq!(
        message(&EXAMPLE_AGENT_ID.to_uppercase()),
        "agent id has 'P' at position 0, expected a lowercase base32 character (a-z, 2-7)"
    );
    assert!(message(&format!("{}b", &EXAMPLE_AGENT_ID[..51])).contains("expected 'a' or 'q'"));
}

#[test]
fn weak_verifying_keys_are_refused() {
    let identity_point = ed25519_dalek::VerifyingKey::from_bytes(&{
        let mut bytes = [0u8; 32];
        bytes[0] = 1;
        bytes
    })
    .unwrap();
    assert_eq!(AgentId::try_from(identity_point), Err(ParseAgentIdError::SmallOrderKey));
    assert_eq!(AgentId::try_from(example().verifying_key()), Ok(example().agent_id()));
}

// --- Identity ----------------------------------------------------------------

#[test]
fn sign_and_verify() {
    let identity = Identity::generate().unwrap();
    let id = identity.agent_id();
    let signature = identity.sign(b"offer 42");
    assert!(id.verify(b"offer 42", &signature));
    assert!(!id.verify(b"offer 43", &signature));
    let mut tampered = signature.to_bytes();
    tampered[0] ^= 1;
    assert!(!id.verify(b"offer 42", &Signature::from_bytes(&tampered)));
    let other = Identity::generate().unwrap().agent_id();
    assert_ne!(other, id);
    assert!(!other.verify(b"offer 42", &signature));
    assert_eq!(identity.verifying_key(), id.verifying_key());
    assert_eq!(identity.clone().agent_id(), id);
}

#[test]
fn debug_never_shows_the_secret() {
    let secret: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let identity = Identity::from_secret_bytes(&secret);
    let pem = identity.to_pkcs8_pem();
    let der = identity.to_pkcs8_der();
    for debug in [format!("{identity:?}"), format!("{identity:#?}")] {
        assert!(debug.starts_with("Identity"), "{debug}");
        assert!(debug.contains(&identity.agent_id().to_string()), "{debug}");
        for leak in [
            HEXLOWER.encode(&secret),
            HEXUPPER.encode(&secret),
            BASE32.encode(&secret).trim_end_matches('=').to_owned(),
            BASE32.encode(&secret).trim_end_matches('=').to_lowercase(),
            BASE64.encode(&secret).trim_end_matches('=').to_owned(),
            BASE64.encode(&der)[..40].to_owned(),
            format!("{secret:?}")[1..40].to_owned(),
            format!("{secret:#?}")[1..40].to_owned(),
            pem.lines().nth(1).unwrap().to_owned(),
        ] {
            assert!(!debug.contains(&leak), "{debug} contains {leak}");
        }
    }
    assert_eq!(format!("{identity:?}"), format!("Identity {{ agent_id: {:?} }}", identity.agent_id()));
}

#[test]
fn generated_identities_differ() {
    let a = Identity::generate().unwrap();
    let b = Identity::generate().unwrap();
    assert_ne!(a.agent_id(), b.agent_id());
}

// --- Key file ------------------------------------------------------------------

#[test]
fn load_or_create_creates_once_then_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    let (created, status) = Identity::load_or_create(&path).unwrap();
    assert_eq!(status, KeyFileStatus::Created);
    let written = fs::read(&path).unwrap();
    assert!(written.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(written, created.to_pkcs8_pem().as_bytes());
    // Only the key file is left; the temporary file is gone.
    assert_eq!(dir_entries(dir.path()), vec![path.clone()]);

    let (loaded, status) = Identity::load_or_create(&path).unwrap();
    assert_eq!(status, KeyFileStatus::Loaded);
    assert_eq!(loaded.agent_id(), created.agent_id());
    assert_eq!(Identity::load(&path).unwrap().agent_id(), created.agent_id());
    assert_eq!(fs::read(&path).unwrap(), written);
}

#[cfg(unix)]
#[test]
fn created_key_file_has_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    Identity::load_or_create(&path).unwrap();
    assert_eq!(mode_of(&path), 0o600);
}

#[test]
fn missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let path = missing.join("agent.key");
    let err = Identity::load_or_create(&path).unwrap_err();
    match &err {
        IdentityError::MissingDirectory { path: p, directory } => {
            assert_eq!(p, &path);
            assert_eq!(directory, &missing);
        }
        other => panic!("expected MissingDirectory, got {other:?}"),
    }
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!missing.exists());
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn load_of_a_missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    let err = Identity::load(&path).unwrap_err();
    assert!(matches!(&err, IdentityError::Io { path: p, .. } if p == &path), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert!(!path.exists());
}

/// A key file whose content is wrong: both `load` and `load_or_create`
/// refuse it with `Corrupt` naming the path and `reason_part`, and leave it
/// byte for byte as it was.
fn assert_refused_untouched(content: &[u8], reason_part: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    write_key_file(&path, content);
    for result in [Identity::load(&path), Identity::load_or_create(&path).map(|(identity, _)| identity)] {
        let err = result.unwrap_err();
        match &err {
            IdentityError::Corrupt { path: p, reason } => {
                assert_eq!(p, &path);
                assert!(reason.contains(reason_part), "reason {reason:?} lacks {reason_part:?}");
            }
            other => panic!("expected Corrupt for {reason_part:?}, got {other:?}"),
        }
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }
    assert_eq!(fs::read(&path).unwrap(), content);
    #[cfg(unix)]
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(dir_entries(dir.path()), vec![path]);
}

#[test]
fn empty_file_is_refused_untouched() {
    assert_refused_untouched(b"", "empty");
    assert_refused_untouched(b"\n\n", "empty");
}

#[test]
fn truncated_pem_is_refused_untouched() {
    let pem = example().to_pkcs8_pem();
    assert_refused_untouched(&pem.as_bytes()[..pem.len() / 2], "PEM is malformed");
    assert_refused_untouched(&pem.as_bytes()[..pem.len() - 10], "PEM is malformed");
    // The base64 is cut short but the armour is intact.
    let short = EXAMPLE_PEM.replace("Hh8g\n", "\n");
    assert_refused_untouched(short.as_bytes(), "not PKCS#8");
}

#[test]
fn garbage_is_refused_untouched() {
    assert_refused_untouched(b"hello, this is not a key\n", "not PEM");
    assert_refused_untouched(&[0x30, 0x82, 0xff, 0xff, 0x00, 0xc3, 0x28], "binary");
    let random: Vec<u8> = (0u32..200).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert_refused_untouched(&random, "");
    // The key as raw DER instead of PEM.
    assert_refused_untouched(&example().to_pkcs8_der(), "");
}

#[test]
fn public_key_pem_is_refused_untouched() {
    let public = example().verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    assert_refused_untouched(public.as_bytes(), "PUBLIC KEY block");
}

#[test]
fn encrypted_or_other_labels_are_refused_untouched() {
    let encrypted = EXAMPLE_PEM.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
    assert_refused_untouched(encrypted.as_bytes(), "ENCRYPTED PRIVATE KEY block");
    let openssh = EXAMPLE_PEM.replace("PRIVATE KEY", "OPENSSH PRIVATE KEY");
    assert_refused_untouched(openssh.as_bytes(), "OPENSSH PRIVATE KEY block");
}

#[test]
fn random_der_under_the_right_label_is_refused_untouched() {
    let der: Vec<u8> = (0u8..48).map(|i| i.wrapping_mul(73) ^ 0x5a).collect();
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", BASE64.encode(&der));
    assert_refused_untouched(pem.as_bytes(), "not PKCS#8");
}

#[test]
fn other_key_types_are_refused_untouched() {
    // The same layout with the X25519 and Ed448 algorithm identifiers.
    let x25519 = EXAMPLE_PEM.replace("MC4CAQAwBQYDK2VwBCIEI", "MC4CAQAwBQYDK2VuBCIEI");
    assert_refused_untouched(x25519.as_bytes(), "X25519 key (algorithm 1.3.101.110), expected Ed25519 (1.3.101.112)");
    let ed448 = EXAMPLE_PEM.replace("MC4CAQAwBQYDK2VwBCIEI", "MC4CAQAwBQYDK2VxBCIEI");
    assert_refused_untouched(ed448.as_bytes(), "Ed448");
}

#[test]
fn mismatched_public_key_is_refused_untouched() {
    use ed25519_dalek::pkcs8::{KeypairBytes, PublicKeyBytes};
    let other = Identity::from_secret_bytes(&[9; 32]).agent_id();
    let lying = KeypairBytes { secret_key: EXAMPLE_SECRET, public_key: Some(PublicKeyBytes(*other.as_bytes())) };
    let pem = lying.to_pkcs8_pem(LineEnding::LF).unwrap();
    assert_refused_untouched(pem.as_bytes(), "does not match");
}

#[test]
fn pkcs8_v2_with_public_key_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    let signing_key = ed25519_dalek::SigningKey::from_bytes(&EXAMPLE_SECRET);
    let v2 = signing_key.to_pkcs8_pem(LineEnding::CRLF).unwrap();
    write_key_file(&path, v2.as_bytes());
    assert_eq!(Identity::load(&path).unwrap().agent_id(), example().agent_id());
}

#[test]
fn a_directory_at_the_path_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    fs::create_dir(&path).unwrap();
    set_mode(&path, 0o700);
    assert!(Identity::load_or_create(&path).is_err());
    assert!(path.is_dir());
    assert_eq!(dir_entries(dir.path()), vec![path]);
}

#[cfg(unix)]
#[test]
fn dangling_symlink_is_not_followed_to_create_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    let target = dir.path().join("elsewhere.key");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = Identity::load_or_create(&path).unwrap_err();
    assert!(matches!(err, IdentityError::Io { .. }), "{err:?}");
    assert!(!target.exists());
    assert_eq!(dir_entries(dir.path()), vec![path]);
}

#[cfg(unix)]
#[test]
fn group_or_world_accessible_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    Identity::load_or_create(&path).unwrap();
    let before = fs::read(&path).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660, 0o601] {
        set_mode(&path, mode);
        for result in [Identity::load(&path), Identity::load_or_create(&path).map(|(identity, _)| identity)] {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, IdentityError::InsecurePermissions { path: p, mode: m } if p == &path && *m == mode),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(&format!("{mode:04o}")), "{message}");
            assert!(message.contains(&format!("chmod 600 {}", path.display())), "{message}");
        }
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(mode_of(&path), mode);
    }
    // Owner-only modes other than 0600 are fine.
    set_mode(&path, 0o400);
    assert!(Identity::load(&path).is_ok());
}

#[cfg(unix)]
#[test]
fn unreadable_key_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    Identity::load_or_create(&path).unwrap();
    set_mode(&path, 0o000);
    if fs::File::open(&path).is_ok() {
        eprintln!("running with privileges that ignore file modes (root?); skipping");
        return;
    }
    for result in [Identity::load(&path), Identity::load_or_create(&path).map(|(identity, _)| identity)] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, IdentityError::Io { path: p, source } if p == &path
                && source.kind() == std::io::ErrorKind::PermissionDenied),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }
    set_mode(&path, 0o600);
    assert!(Identity::load(&path).is_ok());
}

#[test]
fn concurrent_creators_get_the_same_identity() {
    for _ in 0..16 {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("agent.key"));
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (path, barrier) = (Arc::clone(&path), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    Identity::load_or_create(&*path).unwrap()
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|handle| handle.join().unwrap()).collect();
        let created = results.iter().filter(|(_, status)| *status == KeyFileStatus::Created).count();
        assert_eq!(created, 1);
        let first = results[0].0.agent_id();
        assert!(results.iter().all(|(identity, _)| identity.agent_id() == first));
        assert_eq!(Identity::load(&*path).unwrap().agent_id(), first);
        assert_eq!(dir_entries(dir.path()), vec![(*path).clone()]);
    }
}

#[test]
fn openssl_reads_our_key_file() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    write_key_file(&path, example().to_pkcs8_pem().as_bytes());
    let out = Command::new("openssl").args(["pkey", "-pubout", "-outform", "DER", "-in"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(HEXLOWER.encode(&out.stdout[out.stdout.len() - 32..]), EXAMPLE_PUBLIC_HEX);
    // OpenSSL writes the same file back, byte for byte.
    let out = Command::new("openssl").args(["pkey", "-in"]).arg(&path).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), EXAMPLE_PEM);
}

#[test]
fn we_read_openssl_key_files() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.key");
    let out = Command::new("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    set_mode(&path, 0o600);
    let identity = Identity::load(&path).unwrap();
    let out = Command::new("openssl").args(["pkey", "-pubout", "-outform", "DER", "-in"]).arg(&path).output().unwrap();
    assert_eq!(&out.stdout[out.stdout.len() - 32..], identity.agent_id().as_bytes());
    assert_eq!(fs::read(&path).unwrap(), identity.to_pkcs8_pem().as_bytes());
}
