//! Secrets at rest: webhook secrets are sealed with AES-256-GCM under one main key, so
//! a leaked database file or backup does not leak them.
//!
//! Every value gets a fresh random 96-bit nonce and is stored as `v1:` + base64 of
//! `nonce || ciphertext || tag`. The caller passes associated data naming the row the
//! value belongs to (such as the webhook id), so a sealed value copied into another row
//! fails to open instead of silently signing for the wrong receiver.
//!
//! The main key comes from `FULLUP_MAIN_KEY` (base64 of 32 bytes) or a key file holding
//! the same text, created with mode 0600 on first start.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead as _, AeadCore as _, KeyInit as _, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Prefix of sealed values; the version leaves room for another algorithm later.
pub const SEALED_PREFIX: &str = "v1:";
/// Main key length: AES-256.
pub const MAIN_KEY_BYTES: usize = 32;
/// AES-GCM nonce length: 96 bits, random per value (safe for far more values than a
/// webhook service ever seals under one key).
const NONCE_BYTES: usize = 12;

/// What can go wrong with the main key or a sealed value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key text is not base64 of exactly 32 bytes.
    #[error(
        "the main key must be standard base64 of 32 bytes (generate one with `openssl rand -base64 32`)"
    )]
    BadKey,
    /// A stored value does not have the `v1:` + base64 shape.
    #[error("a sealed value is malformed")]
    Malformed,
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

/// The key that seals every secret stored in the database. Debug prints `[redacted]`;
/// the bytes are wiped on drop.
#[derive(Clone)]
pub struct MainKey(Zeroizing<[u8; MAIN_KEY_BYTES]>);

impl fmt::Debug for MainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MainKey([redacted])")
    }
}

impl MainKey {
    /// A new random key from the OS CSPRNG.
    pub fn generate() -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        let mut bytes = Zeroizing::new([0u8; MAIN_KEY_BYTES]);
        bytes.copy_from_slice(&key);
        Self(bytes)
    }

    /// Parses standard base64 of 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let decoded = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|_| CryptoError::BadKey)?,
        );
        let mut bytes = Zeroizing::new([0u8; MAIN_KEY_BYTES]);
        if decoded.len() != MAIN_KEY_BYTES {
            return Err(CryptoError::BadKey);
        }
        bytes.copy_from_slice(&decoded);
        Ok(Self(bytes))
    }

    /// The key as standard base64, the key file's and `FULLUP_MAIN_KEY`'s format.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.0.as_ref()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.as_ref()))
    }

    /// Seals `plaintext`, bound to `context` (which must be given again to open it).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        // Encryption fails only for messages beyond 64 GiB; secrets are tiny. Were it to
        // fail, an empty ciphertext would be stored and the secret lost: never do that.
        let ciphertext = self
            .cipher()
            .encrypt(&nonce, payload)
            .unwrap_or_else(|_| unreachable!("AES-GCM seals any message under 64 GiB"));
        let mut raw = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", BASE64.encode(raw))
    }

    /// Opens a value sealed by [`MainKey::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(CryptoError::Malformed)?;
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

    /// A key for another use than sealing secrets (such as the console's session
    /// cookies), derived from this one and `purpose` with HMAC-SHA256: every node with
    /// the same main key derives the same key, and no derived key reveals the main one.
    pub fn derive(&self, purpose: &[u8]) -> Self {
        use hmac::Mac as _;
        // HMAC takes keys of any length: this never fails.
        let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts a key of any length"));
        mac.update(purpose);
        let mut bytes = Zeroizing::new([0u8; MAIN_KEY_BYTES]);
        bytes.copy_from_slice(&mac.finalize().into_bytes());
        Self(bytes)
    }

    /// Reads a key file (base64 text).
    pub fn read_file(path: &Path) -> Result<Self, CryptoError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file_error(path, e))?);
        Self::from_base64(&text)
    }

    /// Writes the key to a new file readable by its owner only (mode 0600); fails if
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

    /// Writes the key to `path`, which must not exist, mode 0600, and syncs it.
    fn write_private(&self, path: &Path) -> Result<(), CryptoError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| file_error(path, e))?;
        let mut text = self.to_base64();
        text.push('\n');
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
            Err(CryptoError::Open)
        ));
        assert!(matches!(
            key.open("plain", b"webhook:a"),
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
        assert_eq!(format!("{key:?}"), "MainKey([redacted])");
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
