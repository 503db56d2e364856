//! Secrets at rest: webhook secrets are sealed with AES-256-GCM under one main key, so
//! a leaked database file or backup does not leak them.
//!
//! Every value gets a fresh random 96-bit nonce and is stored as `v2:<kid>:` + base64 of
//! `nonce || ciphertext || tag`, where `kid` names the key that sealed it. The caller
//! passes associated data naming the row the value belongs to (its site, webhook and
//! secret version), so a sealed value copied into another row, or a row moved to another
//! site, fails to open instead of silently signing for the wrong receiver.
//!
//! The main key is a ring ([`MainKey`]): the current key seals, older keys only open.
//! It comes from `FULLUP_MAIN_KEY` or a key file holding the same text (base64 of 32
//! bytes per key, the current one first), created with mode 0600 on first start.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead as _, AeadCore as _, KeyInit as _, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Prefix of values sealed before key ids: `v1:` + base64, under the one main key of
/// that version. They still open (with every key of the ring) until re-sealed.
pub const LEGACY_PREFIX: &str = "v1:";
/// Prefix of sealed values: `v2:<kid>:` + base64, `kid` naming the key that sealed it.
pub const SEALED_PREFIX: &str = "v2:";
/// Main key length: AES-256.
pub const MAIN_KEY_BYTES: usize = 32;
/// AES-GCM nonce length: 96 bits, random per value (safe for far more values than a
/// webhook service ever seals under one key).
const NONCE_BYTES: usize = 12;
/// What a key id is derived for; a key id names a key without revealing it.
const KEY_ID_PURPOSE: &[u8] = b"fullup main key id";

/// What can go wrong with the main key or a sealed value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key text is not base64 of exactly 32 bytes.
    #[error(
        "the main key must be standard base64 of 32 bytes (generate one with `openssl rand -base64 32`)"
    )]
    BadKey,
    /// A stored value does not have the `v2:<kid>:` + base64 (or `v1:`) shape.
    #[error("a sealed value is malformed")]
    Malformed,
    /// The value was sealed under a key this ring does not hold.
    #[error(
        "a sealed value was sealed under main key {0}, which this node does not hold (add that key to its key file, or restart it with the current one)"
    )]
    UnknownKey(String),
    /// Authentication failed: another key, another row, or tampering.
    #[error(
        "a sealed value does not open with this main key (wrong key, or the value was moved or altered)"
    )]
    Open,
    /// The key file could not be read or written.
    #[error("main key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One AES-256 key and its id. The bytes are wiped on drop.
#[derive(Clone)]
struct Key32 {
    bytes: Zeroizing<[u8; MAIN_KEY_BYTES]>,
    /// 8 hex digits of HMAC-SHA256(key, [`KEY_ID_PURPOSE`]): names the key in sealed
    /// values and messages, and reveals nothing of it.
    id: String,
}

impl Key32 {
    fn new(bytes: Zeroizing<[u8; MAIN_KEY_BYTES]>) -> Self {
        let id = hex::encode(&hmac_sha256(bytes.as_ref(), KEY_ID_PURPOSE)[..4]);
        Self { bytes, id }
    }

    fn parse(text: &str) -> Result<Self, CryptoError> {
        let decoded = Zeroizing::new(BASE64.decode(text).map_err(|_| CryptoError::BadKey)?);
        if decoded.len() != MAIN_KEY_BYTES {
            return Err(CryptoError::BadKey);
        }
        let mut bytes = Zeroizing::new([0u8; MAIN_KEY_BYTES]);
        bytes.copy_from_slice(&decoded);
        Ok(Self::new(bytes))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.bytes.as_ref()))
    }

    /// Opens `nonce || ciphertext` (the decoded base64 of a sealed value).
    fn open_raw(&self, encoded: &str, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let raw = BASE64.decode(encoded).map_err(|_| CryptoError::Malformed)?;
        if raw.len() < NONCE_BYTES {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: context,
        };
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }
}

/// HMAC-SHA256 of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Zeroizing<[u8; 32]> {
    use hmac::Mac as _;
    // HMAC takes keys of any length: this never fails.
    let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts a key of any length"));
    mac.update(message);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// The main key ring that seals every secret stored in the database: the current key,
/// which seals, and older keys, which only open (values sealed before a rotation, or by
/// a node that had not yet been given the new key). Each sealed value names its key
/// (`v2:<kid>:…`), so opening never guesses. Debug prints the key ids only; the bytes
/// are wiped on drop.
///
/// Its text form (a key file, `FULLUP_MAIN_KEY`) is one key per line (or separated by
/// commas), standard base64 of 32 bytes each, the current key first; lines starting
/// with `#` are comments.
#[derive(Clone)]
pub struct MainKey {
    current: Key32,
    older: Vec<Key32>,
}

impl fmt::Debug for MainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MainKey")
            .field("current", &self.current.id)
            .field(
                "older",
                &self.older.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl MainKey {
    /// A ring of one new random key from the OS CSPRNG.
    pub fn generate() -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        let mut bytes = Zeroizing::new([0u8; MAIN_KEY_BYTES]);
        bytes.copy_from_slice(&key);
        Self {
            current: Key32::new(bytes),
            older: Vec::new(),
        }
    }

    /// Parses the text form: keys of standard base64 of 32 bytes, one per line or
    /// separated by commas, the current one first; `#` lines and blank lines ignored.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let mut keys = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(Key32::parse);
        let current = keys.next().ok_or(CryptoError::BadKey)??;
        let mut older: Vec<Key32> = Vec::new();
        for key in keys {
            let key = key?;
            if key.id != current.id && older.iter().all(|k| k.id != key.id) {
                older.push(key);
            }
        }
        Ok(Self { current, older })
    }

    /// The current key as standard base64, the text of a key file holding it alone.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.current.bytes.as_ref()))
    }

    /// The whole ring in its text form (current key first), as a key file holds it.
    pub fn ring_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::new());
        for key in std::iter::once(&self.current).chain(&self.older) {
            text.push_str(&BASE64.encode(key.bytes.as_ref()));
            text.push('\n');
        }
        text
    }

    /// The id of the current key: 8 hex digits, in every value it seals.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// The ids of every key of the ring, the current one first.
    pub fn key_ids(&self) -> Vec<&str> {
        std::iter::once(&self.current)
            .chain(&self.older)
            .map(|k| k.id.as_str())
            .collect()
    }

    /// This ring with `older`'s keys added as opening keys (after this ring's own).
    #[must_use]
    pub fn with_older(mut self, older: &MainKey) -> Self {
        for key in std::iter::once(&older.current).chain(&older.older) {
            if key.id != self.current.id && self.older.iter().all(|k| k.id != key.id) {
                self.older.push(key.clone());
            }
        }
        self
    }

    /// Seals `plaintext` under the current key, bound to `context` (which must be
    /// given again to open it): `v2:<kid>:` + base64 of `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        // Encryption fails only for messages beyond 64 GiB; secrets are tiny. Were it to
        // fail, an empty ciphertext would be stored and the secret lost: never do that.
        let ciphertext = self
            .current
            .cipher()
            .encrypt(&nonce, payload)
            .unwrap_or_else(|_| unreachable!("AES-GCM seals any message under 64 GiB"));
        let mut raw = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}:{}", self.current.id, BASE64.encode(raw))
    }

    /// Opens a `v2:` value sealed by [`MainKey::seal`] with the same `context`, under
    /// whichever key of the ring its id names.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let rest = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(CryptoError::Malformed)?;
        let (id, encoded) = rest.split_once(':').ok_or(CryptoError::Malformed)?;
        let key = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|k| k.id == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        key.open_raw(encoded, context)
    }

    /// Opens a value of the first format (`v1:`, no key id) with whichever key of the
    /// ring opens it, bound to `context`.
    pub fn open_legacy(
        &self,
        sealed: &str,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let encoded = sealed
            .strip_prefix(LEGACY_PREFIX)
            .ok_or(CryptoError::Malformed)?;
        std::iter::once(&self.current)
            .chain(&self.older)
            .find_map(|key| key.open_raw(encoded, context).ok())
            .ok_or(CryptoError::Open)
    }

    /// The id of the key that sealed `sealed` (`v2:` values), None for another format.
    pub fn sealed_by(sealed: &str) -> Option<&str> {
        let rest = sealed.strip_prefix(SEALED_PREFIX)?;
        rest.split_once(':').map(|(id, _)| id)
    }

    /// A key for another use than sealing secrets (such as the console's session
    /// cookies), derived from the current key and `purpose` with HMAC-SHA256: every node
    /// with the same main key derives the same key, and no derived key reveals the main
    /// one. A ring of one key.
    pub fn derive(&self, purpose: &[u8]) -> Self {
        let derived = hmac_sha256(self.current.bytes.as_ref(), purpose);
        let mut bytes = Zeroizing::new([0u8; MAIN_KEY_BYTES]);
        bytes.copy_from_slice(derived.as_ref());
        Self {
            current: Key32::new(bytes),
            older: Vec::new(),
        }
    }

    /// Reads a key file (the text form: one or more keys, the current one first).
    pub fn read_file(path: &Path) -> Result<Self, CryptoError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file_error(path, e))?);
        Self::from_base64(&text)
    }

    /// Writes the ring to a new file readable by its owner only (mode 0600); fails if
    /// the file exists, so a key is never overwritten.
    ///
    /// Crash-safe: the key goes to a temporary file in the same folder, which is synced,
    /// then linked at `path` (which fails if `path` exists, atomically) and the folder
    /// synced, so that once this returns the key survives a power loss, and a failed
    /// write leaves no partial file at `path`.
    pub fn write_new_file(&self, path: &Path) -> Result<(), CryptoError> {
        if path.exists() {
            return Err(file_error(path, std::io::ErrorKind::AlreadyExists.into()));
        }
        let temporary = temporary_path(path);
        let written = self
            .write_private(&temporary)
            .and_then(|()| std::fs::hard_link(&temporary, path).map_err(|e| file_error(path, e)));
        let _ = std::fs::remove_file(&temporary);
        written?;
        sync_parent(path)
    }

    /// Writes the ring to `path`, which must not exist, mode 0600, and syncs it.
    fn write_private(&self, path: &Path) -> Result<(), CryptoError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| file_error(path, e))?;
        let text = self.ring_text();
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| file_error(path, e))
    }
}

/// A name beside `path` that no other writer picks: `.NAME.tmp-<random>`.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "key".into(), |name| name.to_string_lossy());
    let unique: u64 = rand::random();
    path.with_file_name(format!(".{name}.tmp-{unique:016x}"))
}

/// Makes a file's creation, rename or removal in `path`'s folder durable: without it,
/// a power loss can undo the folder entry even though the file's bytes were synced.
pub fn sync_parent(path: &Path) -> Result<(), CryptoError> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        std::fs::File::open(parent)
            .and_then(|folder| folder.sync_all())
            .map_err(|e| file_error(parent, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Whether the key file sits in the folder of a `sqlite://PATH` database, so that one
/// copy or snapshot of that folder holds both the sealed secrets and the key that
/// opens them.
pub fn key_beside_database(key_file: &Path, database_url: &str) -> bool {
    let Some(beside_database) = default_key_file(database_url) else {
        return false;
    };
    let folder = |path: &Path| {
        let parent = path.parent().unwrap_or(Path::new(""));
        let parent = match parent.as_os_str().is_empty() {
            true => Path::new("."),
            false => parent,
        };
        std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_owned())
    };
    folder(key_file) == folder(&beside_database)
}

/// Name of the key file created beside the SQLite database.
pub const DEFAULT_KEY_FILE_NAME: &str = "fullup.key";

/// The default key file for a `sqlite://PATH` database: `fullup.key` in the same
/// folder. None for other URLs and in-memory databases (set the key explicitly).
pub fn default_key_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    let parent = Path::new(path).parent().unwrap_or(Path::new(""));
    Some(parent.join(DEFAULT_KEY_FILE_NAME))
}

fn file_error(path: &Path, source: std::io::Error) -> CryptoError {
    CryptoError::File {
        path: path.display().to_string(),
        source,
    }
}

/// A new random token with `prefix` (32 bytes from the OS CSPRNG, URL-safe base64).
pub fn generate_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let key = MainKey::generate();
        let sealed = key.seal(b"whsec_secret", b"webhook:a");
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("whsec_secret"));
        assert_eq!(
            &key.open(&sealed, b"webhook:a").expect("opens")[..],
            b"whsec_secret"
        );
        assert!(matches!(
            key.open(&sealed, b"webhook:b"),
            Err(CryptoError::Open)
        ));
        assert!(matches!(
            MainKey::generate().open(&sealed, b"webhook:a"),
            Err(CryptoError::UnknownKey(_))
        ));
        let claimed = sealed.replacen(key.key_id(), MainKey::generate().key_id(), 1);
        let other = MainKey::generate();
        let forged = format!(
            "{SEALED_PREFIX}{}:{}",
            other.key_id(),
            sealed.rsplit(':').next().unwrap_or_default()
        );
        assert!(matches!(
            other.open(&forged, b"webhook:a"),
            Err(CryptoError::Open)
        ));
        assert!(matches!(
            key.open(&claimed, b"webhook:a"),
            Err(CryptoError::UnknownKey(_))
        ));
        assert!(matches!(
            key.open("plain", b"webhook:a"),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn a_ring_opens_with_any_of_its_keys_and_seals_with_the_current_one() {
        let old = MainKey::generate();
        let new = MainKey::generate();
        let by_old = old.seal(b"secret", b"ctx");
        assert_eq!(MainKey::sealed_by(&by_old), Some(old.key_id()));
        assert_eq!(old.key_id().len(), 8);
        let ring = MainKey::from_base64(&format!(
            "# ring\n{}\n{}\n",
            new.to_base64().as_str(),
            old.to_base64().as_str()
        ))
        .expect("ring");
        assert_eq!(ring.key_ids(), [new.key_id(), old.key_id()]);
        assert_eq!(
            &ring.open(&by_old, b"ctx").expect("older key opens")[..],
            b"secret"
        );
        let by_ring = ring.seal(b"secret", b"ctx");
        assert_eq!(MainKey::sealed_by(&by_ring), Some(new.key_id()));
        assert_eq!(
            &new.open(&by_ring, b"ctx").expect("current key sealed")[..],
            b"secret"
        );
        assert!(matches!(
            old.open(&by_ring, b"ctx"),
            Err(CryptoError::UnknownKey(id)) if id == new.key_id()
        ));
        let commas = MainKey::from_base64(&format!(
            "{},{}",
            new.to_base64().as_str(),
            old.to_base64().as_str()
        ))
        .expect("commas");
        assert_eq!(commas.key_ids(), ring.key_ids());
        assert_eq!(
            MainKey::from_base64(&ring.ring_text())
                .expect("text")
                .key_ids(),
            ring.key_ids()
        );
        assert_eq!(new.clone().with_older(&old).key_ids(), ring.key_ids());
    }

    #[test]
    fn legacy_values_open_with_any_key_of_the_ring() {
        let old = MainKey::generate();
        let v2 = old.seal(b"secret", b"ctx");
        let encoded = v2.rsplit(':').next().expect("base64");
        let v1 = format!("{LEGACY_PREFIX}{encoded}");
        let ring = MainKey::generate().with_older(&old);
        assert_eq!(
            &ring.open_legacy(&v1, b"ctx").expect("opens")[..],
            b"secret"
        );
        assert!(matches!(
            ring.open_legacy(&v1, b"other"),
            Err(CryptoError::Open)
        ));
        assert!(matches!(
            ring.open(&v1, b"ctx"),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let key = MainKey::generate();
        assert_ne!(key.seal(b"same", b"ctx"), key.seal(b"same", b"ctx"));
    }

    #[test]
    fn keys_round_trip_through_base64_and_reject_other_lengths() {
        let key = MainKey::generate();
        let again = MainKey::from_base64(&key.to_base64()).expect("parses");
        assert_eq!(
            &again.open(&key.seal(b"x", b""), b"").expect("same key")[..],
            b"x"
        );
        assert!(MainKey::from_base64(&BASE64.encode([0u8; 16])).is_err());
        assert!(MainKey::from_base64("not base64!").is_err());
        let debug = format!("{key:?}");
        assert!(debug.contains(key.key_id()), "{debug}");
        assert!(!debug.contains(key.to_base64().as_str()), "{debug}");
    }

    #[test]
    fn the_default_key_file_sits_beside_the_database() {
        assert_eq!(
            default_key_file("sqlite://data/fullup.db"),
            Some(PathBuf::from("data/fullup.key"))
        );
        assert_eq!(
            default_key_file("sqlite:fullup.db?mode=rwc"),
            Some(PathBuf::from("fullup.key"))
        );
        assert_eq!(
            default_key_file("sqlite:///var/lib/f.db"),
            Some(PathBuf::from("/var/lib/fullup.key"))
        );
        assert_eq!(default_key_file("sqlite::memory:"), None);
        assert_eq!(default_key_file("postgres://db/fullup"), None);
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fullup.key");
        let key = MainKey::generate();
        key.write_new_file(&path).expect("written");
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(MainKey::generate().write_new_file(&path).is_err());
        let read = MainKey::read_file(&path).expect("read back");
        assert_eq!(read.to_base64(), key.to_base64());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["fullup.key"], "no temporary file is left");
    }

    /// Issue 18: a failed write left a partial key file behind.
    #[test]
    fn a_failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing-folder").join("fullup.key");
        assert!(MainKey::generate().write_new_file(&path).is_err());
        assert!(!path.exists());
        let path = dir.path().join("fullup.key");
        std::fs::create_dir(&path).expect("a folder where the key would go");
        assert!(MainKey::generate().write_new_file(&path).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["fullup.key"], "no temporary file is left");
    }

    #[test]
    fn a_key_beside_the_database_is_noticed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("fullup.db").display());
        assert!(key_beside_database(&dir.path().join("fullup.key"), &url));
        assert!(key_beside_database(&dir.path().join("other.key"), &url));
        let elsewhere = tempfile::tempdir().expect("temp dir");
        assert!(!key_beside_database(
            &elsewhere.path().join("fullup.key"),
            &url
        ));
        assert!(!key_beside_database(
            &dir.path().join("fullup.key"),
            "postgres://db/fullup"
        ));
    }
}
