//! Agent identity: an Ed25519 key pair, the AgentId derived from it, and the
//! key file that keeps it across restarts.
//!
//! An [`AgentId`] is the agent's 32-byte Ed25519 public key. Its one printed
//! form is those 32 bytes in lowercase RFC 4648 base32 without padding: 52
//! characters from `a`–`z` and `2`–`7`. Parsing accepts exactly that form and
//! nothing else (no uppercase, no padding, no surrounding whitespace), so two
//! strings name the same agent if and only if they are equal.
//!
//! An [`Identity`] is the key pair. [`Identity::load_or_create`] keeps it in a
//! PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`, the layout `openssl genpkey
//! -algorithm ed25519` writes), created with mode `0600` and never
//! overwritten. The exact formats are in `docs/PROTOCOL.md` ("AgentId").
//!
//! ```
//! use tacit_handshake::{AgentId, Identity};
//!
//! let identity = Identity::generate()?;
//! let id = identity.agent_id();
//! let printed = id.to_string();
//! assert_eq!(printed.len(), AgentId::PRINTED_LEN);
//! assert_eq!(printed.parse::<AgentId>()?, id);
//!
//! let signature = identity.sign(b"hello");
//! assert!(id.verify(b"hello", &signature));
//! assert!(!id.verify(b"goodbye", &signature));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cmp::Ordering;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use data_encoding::{BASE32_NOPAD, BASE64, DecodeKind, HEXLOWER};
// `zeroize` is reached through ed25519-dalek's re-exports, so that its
// version is always the one ed25519-dalek zeroizes its own keys with.
use ed25519_dalek::pkcs8::spki::der::pem;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::{ALGORITHM_OID, KeypairBytes, ObjectIdentifier, PrivateKeyInfo};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

/// The PEM label of the key file: an unencrypted PKCS#8 private key.
const PEM_LABEL: &str = "PRIVATE KEY";

/// The DER of a PKCS#8 v1 Ed25519 private key (RFC 8410) up to the 32 secret
/// bytes, which follow: `SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 },
/// OCTET STRING { OCTET STRING (32 bytes) } }`.
const PKCS8_V1_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// Length of [`Identity::to_pkcs8_der`]'s output.
const PKCS8_DER_LEN: usize = PKCS8_V1_PREFIX.len() + 32;

/// Key files larger than this are refused before reading; a real one is 119
/// bytes, or a little more with a public key or CRLF line endings.
const MAX_KEY_FILE_LEN: u64 = 16 * 1024;

/// An agent's identity on the network: its Ed25519 public key.
///
/// Printed as 52 lowercase base32 characters (RFC 4648 alphabet, no padding);
/// see the [module docs](self). Always a valid Ed25519 point that is not of
/// small order, in its one standard encoding (rule `agentid.valid-key` of
/// `docs/PROTOCOL.md`), so [`verifying_key`](Self::verifying_key) cannot fail.
///
/// Holds the 32 bytes only (cheap to copy, hash and compare); the curve
/// point is decoded again when a signature is checked.
#[derive(Clone, Copy)]
pub struct AgentId([u8; 32]);

impl AgentId {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// Length of the printed form in characters.
    pub const PRINTED_LEN: usize = 52;

    /// Wraps a public key given as its 32-byte compressed encoding.
    ///
    /// Fails with [`ParseAgentIdError::NotAPublicKey`] if the bytes are not a
    /// point on the curve, [`ParseAgentIdError::NonCanonicalKey`] if they are
    /// not the point's one standard encoding (a y coordinate of p or more, or
    /// the sign bit set on x = 0), and [`ParseAgentIdError::SmallOrderKey`] for
    /// one of the 8 small-order points (which no generated key is, and which
    /// would make signatures meaningless). Rule `agentid.valid-key` of
    /// `docs/PROTOCOL.md`: this is the one check, for keys from certificates
    /// and from text alike.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, ParseAgentIdError> {
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| ParseAgentIdError::NotAPublicKey)?;
        // The decoder reduces y modulo p and ignores the sign of x = 0, so
        // several byte strings decode to one point: only the encoding the
        // point compresses to is its AgentId.
        if key.to_edwards().compress().to_bytes() != bytes {
            return Err(ParseAgentIdError::NonCanonicalKey);
        }
        Self::try_from(key)
    }

    /// The public key's 32 bytes, as [`from_bytes`](Self::from_bytes) took them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public key, for verifying signatures by other means.
    #[allow(clippy::expect_used)]
    pub fn verifying_key(&self) -> VerifyingKey {
        // Every constructor checked that the bytes decode; this cannot fail.
        VerifyingKey::from_bytes(&self.0).expect("an AgentId holds a valid Ed25519 public key")
    }

    /// Whether `signature` is this agent's signature over `message`.
    ///
    /// Uses `verify_strict`, which rejects malleable (non-canonical)
    /// signatures.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        VerifyingKey::from_bytes(&self.0).is_ok_and(|key| key.verify_strict(message, signature).is_ok())
    }

    /// The first 10 characters of the printed form, for logs. Not unique
    /// enough to identify an agent; never parse or compare it.
    pub fn short(&self) -> String {
        let mut printed = self.to_string();
        printed.truncate(10);
        printed
    }
}

impl TryFrom<VerifyingKey> for AgentId {
    type Error = ParseAgentIdError;

    /// Fails with [`ParseAgentIdError::SmallOrderKey`] for a small-order key
    /// and [`ParseAgentIdError::NonCanonicalKey`] for a key that was decoded
    /// from a non-standard encoding.
    fn try_from(key: VerifyingKey) -> Result<Self, Self::Error> {
        if key.is_weak() {
            return Err(ParseAgentIdError::SmallOrderKey);
        }
        let bytes = key.to_bytes();
        if key.to_edwards().compress().to_bytes() != bytes {
            return Err(ParseAgentIdError::NonCanonicalKey);
        }
        Ok(Self(bytes))
    }
}

impl TryFrom<&[u8]> for AgentId {
    type Error = ParseAgentIdError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        let bytes = bytes.try_into().map_err(|_| ParseAgentIdError::WrongByteLength(bytes.len()))?;
        Self::from_bytes(bytes)
    }
}

impl From<AgentId> for [u8; 32] {
    fn from(id: AgentId) -> Self {
        *id.as_bytes()
    }
}

impl PartialEq for AgentId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for AgentId {}

impl PartialOrd for AgentId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AgentId {
    /// Orders by the 32 bytes. (Not the order of the printed forms: the
    /// base32 alphabet puts `2`–`7` after `z`.)
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for AgentId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Display for AgentId {
    /// Writes the 52-character printed form. Width, fill and precision apply
    /// as for a string (`{:.10}` is the [`short`](Self::short) form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut printed = [0u8; Self::PRINTED_LEN];
        BASE32_NOPAD.encode_mut(self.as_bytes(), &mut printed);
        printed.make_ascii_lowercase();
        f.pad(std::str::from_utf8(&printed).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({self})")
    }
}

impl FromStr for AgentId {
    type Err = ParseAgentIdError;

    /// Parses the printed form: exactly 52 characters from `a`–`z` and
    /// `2`–`7`. Uppercase is refused, so each AgentId has one accepted
    /// string.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != Self::PRINTED_LEN {
            return Err(ParseAgentIdError::WrongLength(s.chars().count()));
        }
        // The decoder's alphabet is uppercase; check the lowercase one here
        // so that the error names the offending character.
        let mut upper = [0u8; Self::PRINTED_LEN];
        for ((index, found), slot) in s.char_indices().zip(upper.iter_mut()) {
            if !matches!(found, 'a'..='z' | '2'..='7') {
                return Err(ParseAgentIdError::InvalidChar { index, found });
            }
            *slot = found.to_ascii_uppercase() as u8;
        }
        let mut bytes = [0u8; Self::LEN];
        BASE32_NOPAD.decode_mut(&upper, &mut bytes).map_err(|partial| {
            let index = partial.error.position;
            let found = s.get(index..).and_then(|rest| rest.chars().next()).unwrap_or_default();
            match partial.error.kind {
                DecodeKind::Trailing => ParseAgentIdError::NonZeroTrailingBits { found },
                _ => ParseAgentIdError::InvalidChar { index, found },
            }
        })?;
        Self::from_bytes(bytes)
    }
}

/// Why a string or byte slice is not an AgentId.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseAgentIdError {
    /// The string is not 52 characters long.
    #[error("agent id must be 52 base32 characters, got {0} characters")]
    WrongLength(usize),
    /// A character is not in the lowercase base32 alphabet.
    #[error("agent id has {found:?} at position {index}, expected a lowercase base32 character (a-z, 2-7)")]
    InvalidChar {
        /// Byte offset of the character.
        index: usize,
        /// The character found.
        found: char,
    },
    /// The last character carries bits beyond the 32 bytes, which must be
    /// zero: it must be `a` or `q`.
    #[error("agent id ends in {found:?}, expected 'a' or 'q' (the bits after the 32 bytes must be zero)")]
    NonZeroTrailingBits {
        /// The last character.
        found: char,
    },
    /// The 32 bytes do not decode to a point on the Ed25519 curve.
    #[error("agent id is not a valid Ed25519 public key")]
    NotAPublicKey,
    /// The 32 bytes encode a point of small order (one of 8), which cannot
    /// be an identity.
    #[error("agent id is a small-order Ed25519 point, not a usable public key")]
    SmallOrderKey,
    /// The 32 bytes decode to a point, but are not its standard encoding
    /// (RFC 8032 §5.1.2): the y coordinate is not reduced modulo p, or x is
    /// zero with its sign bit set.
    #[error("agent id is not the standard encoding of its Ed25519 point")]
    NonCanonicalKey,
    /// The raw id is not 32 bytes.
    #[error("agent id must be 32 bytes, got {0}")]
    WrongByteLength(usize),
}

/// An agent's Ed25519 key pair.
///
/// The secret key is zeroized when the value (or any clone) is dropped, and
/// [`Debug`](fmt::Debug) prints only the [`AgentId`].
#[derive(Clone)]
pub struct Identity {
    signing_key: SigningKey,
}

impl Identity {
    /// Generates a new key pair from the operating system's random source.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut_slice()).map_err(IdentityError::Random)?;
        Ok(Self::from_secret_bytes(&secret))
    }

    /// The key pair whose 32-byte Ed25519 secret key (RFC 8032 seed) is
    /// `secret`. The caller owns, and should zeroize, its copy.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self { signing_key: SigningKey::from_bytes(secret) }
    }

    /// This identity's AgentId.
    pub fn agent_id(&self) -> AgentId {
        // A clamped secret scalar never yields a small-order public key, so
        // the check in `AgentId::try_from` is not needed here.
        AgentId(self.signing_key.verifying_key().to_bytes())
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }

    /// Signs `message` (pure Ed25519, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing_key.sign(message)
    }

    /// The key as PKCS#8 v1 DER (RFC 5208 / RFC 8410, 48 bytes, no public
    /// key): the input a TLS library such as rcgen or rustls takes.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        let mut der = Zeroizing::new(Vec::with_capacity(PKCS8_DER_LEN));
        der.extend_from_slice(&PKCS8_V1_PREFIX);
        der.extend_from_slice(self.signing_key.as_bytes());
        der
    }

    /// The key as the PEM text of the key file: [`to_pkcs8_der`](Self::to_pkcs8_der)
    /// under the label `PRIVATE KEY`, LF line endings, ending in a newline;
    /// byte for byte what `openssl genpkey -algorithm ed25519` writes.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let der = self.to_pkcs8_der();
        let begin = "-----BEGIN PRIVATE KEY-----\n";
        let end = "\n-----END PRIVATE KEY-----\n";
        // Reserve everything up front so that no partial copy of the secret
        // is left behind by a reallocation.
        let mut pem = Zeroizing::new(String::with_capacity(begin.len() + BASE64.encode_len(der.len()) + end.len()));
        pem.push_str(begin);
        BASE64.encode_append(&der, &mut pem);
        pem.push_str(end);
        pem
    }

    /// Loads the key file at `path` (see [`load_or_create`](Self::load_or_create)
    /// for the format and the checks). The file is only read.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, IdentityError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| IdentityError::io(path, source))?;
        read_key_file(path, file)
    }

    /// Loads the key file at `path`, or creates it with a new identity if
    /// there is none.
    ///
    /// The file is PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); version 1 and
    /// version 2 (with the public key, which must match) are both read.
    ///
    /// - Loading: on Unix, a file that group or others may access is refused
    ///   with [`IdentityError::InsecurePermissions`], as OpenSSH does. A file
    ///   that is empty, not PEM, not an Ed25519 private key or otherwise
    ///   damaged gives [`IdentityError::Corrupt`] and is left untouched.
    /// - Creating: the parent directory must exist
    ///   ([`IdentityError::MissingDirectory`] otherwise). The key is written
    ///   to a temporary file in that directory (mode `0600` on Unix), synced,
    ///   then hard-linked to `path`, which never replaces an existing file: if
    ///   another process created `path` meanwhile, that file is loaded
    ///   instead, so concurrent callers end up with the same identity. The
    ///   filesystem must support hard links.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<(Self, KeyFileStatus), IdentityError> {
        let path = path.as_ref();
        match File::open(path) {
            Ok(file) => return read_key_file(path, file).map(|identity| (identity, KeyFileStatus::Loaded)),
            Err(source) if source.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(IdentityError::io(path, source)),
        }
        let identity = Self::generate()?;
        if create_key_file(path, &identity.to_pkcs8_pem())? {
            Ok((identity, KeyFileStatus::Created))
        } else {
            Self::load(path).map(|identity| (identity, KeyFileStatus::Loaded))
        }
    }
}

impl fmt::Debug for Identity {
    /// Prints the AgentId only; the secret key never appears.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("agent_id", &self.agent_id()).finish()
    }
}

/// What [`Identity::load_or_create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFileStatus {
    /// There was no key file: a new identity was generated and saved.
    Created,
    /// The existing key file was loaded.
    Loaded,
}

/// Why an identity could not be generated, loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading or writing a file failed.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The file (the key file, or the temporary file next to it).
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The key file's content is not a usable Ed25519 private key.
    #[error("key file {} is not a usable Ed25519 private key: {reason}", path.display())]
    Corrupt {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file is accessible to other users (Unix only).
    #[error(
        "key file {} has permissions {mode:04o}, which let other users read it; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits (e.g. `0o644`).
        mode: u32,
    },
    /// The directory that should hold a new key file does not exist.
    #[error("cannot create key file {}: directory {} does not exist", path.display(), directory.display())]
    MissingDirectory {
        /// The key file to be created.
        path: PathBuf,
        /// Its missing parent directory.
        directory: PathBuf,
    },
    /// The operating system's random source failed.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(getrandom::Error),
}

impl IdentityError {
    fn io(path: &Path, source: io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }

    fn corrupt(path: &Path, reason: impl Into<String>) -> Self {
        Self::Corrupt { path: path.to_owned(), reason: reason.into() }
    }
}

/// Reads and parses an open key file, after checking its type, size and (on
/// Unix) permissions.
fn read_key_file(path: &Path, file: File) -> Result<Identity, IdentityError> {
    let metadata = file.metadata().map_err(|source| IdentityError::io(path, source))?;
    if !metadata.is_file() {
        return Err(IdentityError::corrupt(path, "it is not a regular file"));
    }
    check_permissions(path, &metadata)?;
    if metadata.len() > MAX_KEY_FILE_LEN {
        return Err(IdentityError::corrupt(
            path,
            format!("it is {} bytes, far too large for a key file", metadata.len()),
        ));
    }
    let capacity = usize::try_from(metadata.len()).unwrap_or(0).saturating_add(1);
    let mut content = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_KEY_FILE_LEN + 1).read_to_end(&mut content).map_err(|source| IdentityError::io(path, source))?;
    parse_pem(&content).map_err(|reason| IdentityError::corrupt(path, reason))
}

/// Refuses a key file that group or others may access.
#[cfg(unix)]
fn check_permissions(path: &Path, metadata: &fs::Metadata) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::InsecurePermissions { path: path.to_owned(), mode });
    }
    Ok(())
}

/// Permissions are not checked outside Unix.
#[cfg(not(unix))]
fn check_permissions(_path: &Path, _metadata: &fs::Metadata) -> Result<(), IdentityError> {
    Ok(())
}

/// Parses a key file's bytes, or says what is wrong with them.
pub(crate) fn parse_pem(content: &[u8]) -> Result<Identity, String> {
    let text = std::str::from_utf8(content).map_err(|_| "it is binary, not PEM text".to_owned())?;
    if text.trim().is_empty() {
        return Err("it is empty".to_owned());
    }
    if !text.contains("-----BEGIN ") {
        return Err("it is not PEM (no -----BEGIN line)".to_owned());
    }
    let mut decoder = pem::Decoder::new(text.as_bytes()).map_err(|err| format!("its PEM is malformed ({err})"))?;
    let label = decoder.type_label();
    if label != PEM_LABEL {
        return Err(format!("it holds a {label} block, expected an unencrypted {PEM_LABEL} block"));
    }
    // Decode into a buffer of the final size: no reallocation leaves a copy.
    let mut buffer = Zeroizing::new(vec![0u8; decoder.remaining_len()]);
    let der = decoder.decode(&mut buffer).map_err(|err| format!("its PEM is malformed ({err})"))?;
    let info = PrivateKeyInfo::try_from(der).map_err(|err| format!("it is not PKCS#8 ({err})"))?;
    let oid = info.algorithm.oid;
    if oid != ALGORITHM_OID {
        return Err(format!("it is {} key (algorithm {oid}), expected Ed25519 ({ALGORITHM_OID})", key_type_name(oid)));
    }
    let keypair = KeypairBytes::try_from(info).map_err(|err| format!("its Ed25519 key is malformed ({err})"))?;
    let signing_key = SigningKey::try_from(&keypair)
        .map_err(|_| "its public key does not match its private key (or is not a valid point)".to_owned())?;
    Ok(Identity { signing_key })
}

/// A readable name for the key types most likely to be found by mistake.
fn key_type_name(oid: ObjectIdentifier) -> &'static str {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "an RSA",
        "1.2.840.10045.2.1" => "an elliptic-curve (ECDSA)",
        "1.3.101.110" => "an X25519",
        "1.3.101.111" => "an X448",
        "1.3.101.113" => "an Ed448",
        _ => "another type of",
    }
}

/// Creates the key file at `path` with `pem` unless a file is already there.
/// Returns whether it created it.
fn create_key_file(path: &Path, pem: &str) -> Result<bool, IdentityError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| IdentityError::io(path, io::Error::new(io::ErrorKind::InvalidInput, "path has no file name")))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };

    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(IdentityError::Random)?;
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.tmp", HEXLOWER.encode(&suffix)));
    let temp = directory.join(temp_name);

    write_new_file(&temp, pem).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => {
            IdentityError::MissingDirectory { path: path.to_owned(), directory: directory.to_owned() }
        }
        _ => IdentityError::io(&temp, source),
    })?;

    // A hard link, unlike a rename, fails when `path` exists: an existing
    // key file is never replaced.
    let linked = fs::hard_link(&temp, path);
    let removed = fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        Err(source) if source.kind() == io::ErrorKind::AlreadyExists => {
            removed.map_err(|source| IdentityError::io(&temp, source))?;
            return Ok(false);
        }
        Err(source) => return Err(IdentityError::io(path, source)),
    }
    removed.map_err(|source| IdentityError::io(&temp, source))?;
    sync_directory(directory);
    Ok(true)
}

/// Writes `content` to a new file (mode `0600` on Unix) and syncs it to disk.
/// On failure after creating the file, removes it.
fn write_new_file(path: &Path, content: &str) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let written = (|| {
        // The umask may have cleared bits of 0600; set it exactly.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(content.as_bytes())?;
        file.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

/// Makes a new directory entry durable. Best effort: the key file itself is
/// already synced, and not every platform can sync a directory.
fn sync_directory(directory: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = File::open(directory) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = directory;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_length_matches_the_encoding() {
        assert_eq!(BASE32_NOPAD.encode_len(AgentId::LEN), AgentId::PRINTED_LEN);
        assert_eq!(PKCS8_DER_LEN, 48);
    }

    #[test]
    fn der_prefix_matches_the_pkcs8_crate() {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let identity = Identity::from_secret_bytes(&[7; 32]);
        let v1 = KeypairBytes { secret_key: [7; 32], public_key: None };
        let expected = v1.to_pkcs8_der().map(|doc| doc.as_bytes().to_vec());
        assert_eq!(expected.ok(), Some(identity.to_pkcs8_der().to_vec()));
        let pem = v1.to_pkcs8_pem(pem::LineEnding::LF).map(|pem| pem.to_string());
        assert_eq!(pem.ok(), Some(identity.to_pkcs8_pem().to_string()));
    }

    #[test]
    fn display_honours_width_and_precision() {
        let id = Identity::from_secret_bytes(&[9; 32]).agent_id();
        let printed = id.to_string();
        assert_eq!(format!("{id:.10}"), id.short());
        assert_eq!(id.short(), printed[..10]);
        assert_eq!(format!("{id:>54}"), format!("  {printed}"));
        assert_eq!(format!("{id:?}"), format!("AgentId({printed})"));
    }

    #[test]
    fn last_character_must_have_zero_trailing_bits() {
        let printed = Identity::from_secret_bytes(&[3; 32]).agent_id().to_string();
        let stem = &printed[..AgentId::PRINTED_LEN - 1];
        for last in "abcdefghijklmnopqrstuvwxyz234567".chars() {
            let result = format!("{stem}{last}").parse::<AgentId>();
            if last == 'a' || last == 'q' {
                assert!(!matches!(result, Err(ParseAgentIdError::NonZeroTrailingBits { .. })), "{last}");
            } else {
                assert_eq!(result, Err(ParseAgentIdError::NonZeroTrailingBits { found: last }));
            }
        }
    }

    #[test]
    fn parse_pem_names_the_problem() {
        assert_eq!(parse_pem(b"").err().as_deref(), Some("it is empty"));
        assert_eq!(parse_pem(b" \n\t").err().as_deref(), Some("it is empty"));
        assert_eq!(parse_pem(&[0xff, 0x00]).err().as_deref(), Some("it is binary, not PEM text"));
        assert_eq!(parse_pem(b"hello").err().as_deref(), Some("it is not PEM (no -----BEGIN line)"));
        let pem = Identity::from_secret_bytes(&[5; 32]).to_pkcs8_pem();
        let x25519 = pem.replace("MC4CAQAwBQYDK2VwBCIEI", "MC4CAQAwBQYDK2VuBCIEI");
        let err = parse_pem(x25519.as_bytes()).err().unwrap_or_default();
        assert!(err.contains("X25519") && err.contains("1.3.101.110"), "{err}");
    }

    #[test]
    fn key_file_reading_handles_crlf_and_trailing_whitespace() {
        let identity = Identity::from_secret_bytes(&[11; 32]);
        let crlf = identity.to_pkcs8_pem().replace('\n', "\r\n");
        let parsed = parse_pem(crlf.as_bytes()).map(|parsed| parsed.agent_id());
        assert_eq!(parsed, Ok(identity.agent_id()));
        let no_newline = identity.to_pkcs8_pem().trim_end().to_owned();
        let parsed = parse_pem(no_newline.as_bytes()).map(|parsed| parsed.agent_id());
        assert_eq!(parsed, Ok(identity.agent_id()));
    }
}
