//! [`MasterKey`]: the one secret that unlocks every person key. Where it lives in
//! production, and why not next to the data: `docs/decisions/0004-personal-data.md`.

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::crypto::{fill_random, wipe, KEY_LEN};
use super::error::VaultError;

/// The vault's master key: 32 bytes.
///
/// It never leaves the process: there is no accessor for its bytes outside the vault,
/// `Debug` prints `MasterKey(<redacted>)`, and the bytes are overwritten on drop.
///
/// Where it comes from, in order ([`MasterKey::from_env_or_file`]): the environment variable
/// `CIVICFLOW_MASTER_KEY` (64 hex digits), set by the deployment from its secret store; else
/// a key file of exactly 32 raw bytes with permissions 0600, created on first use.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
}

impl MasterKey {
    /// Bytes in a master key.
    pub const LEN: usize = KEY_LEN;
    /// The environment variable [`MasterKey::from_env`] reads.
    pub const ENV_VAR: &'static str = "CIVICFLOW_MASTER_KEY";

    /// A master key from its bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// A new random master key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`VaultError::Randomness`] when the operating system cannot supply random bytes.
    pub fn generate() -> Result<Self, VaultError> {
        let mut key = Self {
            bytes: [0; KEY_LEN],
        };
        fill_random(&mut key.bytes)?;
        Ok(key)
    }

    /// Parses 64 hexadecimal digits (surrounding whitespace allowed).
    ///
    /// # Errors
    /// [`VaultError::InvalidMasterKey`]; the text itself is never repeated in the error.
    pub fn from_hex(text: &str) -> Result<Self, VaultError> {
        Self::parse_hex(text, "hex text")
    }

    fn parse_hex(text: &str, origin: &str) -> Result<Self, VaultError> {
        let invalid = |rule| VaultError::InvalidMasterKey {
            origin: origin.to_owned(),
            rule,
        };
        let text = text.trim().as_bytes();
        if text.len() != 2 * KEY_LEN {
            return Err(invalid("must be exactly 64 hexadecimal digits (32 bytes)"));
        }
        let mut key = Self {
            bytes: [0; KEY_LEN],
        };
        for (byte, pair) in key.bytes.iter_mut().zip(text.chunks_exact(2)) {
            let (Some(high), Some(low)) = (hex_value(pair[0]), hex_value(pair[1])) else {
                return Err(invalid(
                    "contains a character that is not a hexadecimal digit",
                ));
            };
            *byte = (high << 4) | low;
        }
        Ok(key)
    }

    /// The master key from the environment variable `CIVICFLOW_MASTER_KEY` (64 hex digits);
    /// `None` when it is not set.
    ///
    /// # Errors
    /// [`VaultError::InvalidMasterKey`] when it is set but empty, not UTF-8 or not 64 hex
    /// digits.
    pub fn from_env() -> Result<Option<Self>, VaultError> {
        Self::from_env_value(std::env::var_os(Self::ENV_VAR))
    }

    fn from_env_value(value: Option<OsString>) -> Result<Option<Self>, VaultError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let origin = format!("the environment variable {}", Self::ENV_VAR);
        let Some(text) = value.to_str() else {
            return Err(VaultError::InvalidMasterKey {
                origin,
                rule: "is not valid UTF-8",
            });
        };
        if text.trim().is_empty() {
            return Err(VaultError::InvalidMasterKey {
                origin,
                rule: "is set but empty; unset it or give 64 hexadecimal digits",
            });
        }
        Self::parse_hex(text, &origin).map(Some)
    }

    /// Reads a master key file: exactly 32 raw bytes, readable by its owner only.
    ///
    /// # Errors
    /// [`VaultError::MasterKeyFile`] when the file is not a regular file, has another length,
    /// or (on Unix) grants any permission to group or others; [`VaultError::Io`] when it
    /// cannot be read (including when it does not exist).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, VaultError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| VaultError::io("open", path, e))?;
        Self::read_key_file(path, file)
    }

    fn read_key_file(path: &Path, mut file: File) -> Result<Self, VaultError> {
        let refuse = |reason: String| VaultError::MasterKeyFile {
            path: path.to_owned(),
            reason,
        };
        // The permissions of the file we opened, not of whatever the path names now.
        let metadata = file
            .metadata()
            .map_err(|e| VaultError::io("inspect", path, e))?;
        if !metadata.is_file() {
            return Err(refuse("is not a regular file".into()));
        }
        check_permissions(&metadata).map_err(refuse)?;
        let mut contents = Vec::with_capacity(KEY_LEN + 1);
        let read = (&mut file)
            .take(u64::try_from(KEY_LEN + 1).unwrap_or(u64::MAX))
            .read_to_end(&mut contents);
        let result = match read {
            Err(e) => Err(VaultError::io("read", path, e)),
            Ok(_) => match <[u8; KEY_LEN]>::try_from(contents.as_slice()) {
                Ok(bytes) => Ok(Self { bytes }),
                Err(_) => Err(refuse(format!(
                    "is {} bytes; a master key file holds exactly 32 raw bytes (use the environment variable {} for hex)",
                    metadata.len(),
                    Self::ENV_VAR
                ))),
            },
        };
        wipe(&mut contents);
        result
    }

    /// Reads the master key file at `path`, or creates it with a new random key when it does
    /// not exist (permissions 0600; missing parent directories are created with 0700).
    ///
    /// # Errors
    /// See [`MasterKey::load`]; [`VaultError::Io`] when the file cannot be created or synced.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Self, VaultError> {
        let path = path.as_ref();
        match File::open(path) {
            Ok(file) => return Self::read_key_file(path, file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(VaultError::io("open", path, e)),
        }
        let key = Self::generate()?;
        match create_key_file(path, &key.bytes) {
            Ok(()) => Ok(key),
            // Someone else created it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(VaultError::io("create", path, e)),
        }
    }

    /// The default key file: `$XDG_CONFIG_HOME/civicflow/master.key`, or
    /// `$HOME/.config/civicflow/master.key`; `None` when neither variable is set (to an
    /// absolute path). It is outside any data directory on purpose.
    pub fn default_file() -> Option<PathBuf> {
        let absolute = |name| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        absolute("XDG_CONFIG_HOME")
            .or_else(|| absolute("HOME").map(|home| home.join(".config")))
            .map(|config| config.join("civicflow").join("master.key"))
    }

    /// What civicflow does by default: the environment variable `CIVICFLOW_MASTER_KEY` when
    /// it is set, else [`MasterKey::load_or_create`] at `file`.
    ///
    /// # Errors
    /// See [`MasterKey::from_env`] and [`MasterKey::load_or_create`].
    pub fn from_env_or_file(file: impl AsRef<Path>) -> Result<Self, VaultError> {
        match Self::from_env()? {
            Some(key) => Ok(key),
            None => Self::load_or_create(file),
        }
    }

    /// A 32-byte key for `purpose`, derived from the master key: what another part of
    /// civicflow keys its own MACs with (the dashboard signs its session cookies with
    /// `derive_subkey("dashboard session")`), so that it needs no secret of its own and every
    /// instance sharing the master key derives the same key.
    ///
    /// HMAC-SHA-256 under the master key of the label `civicflow subkey`, a NUL byte and
    /// `purpose`: each purpose gets an unrelated key, none of them is a key the vault uses,
    /// and the result says nothing of the master key, whose bytes still never leave the
    /// vault. The same master key and purpose give the same key on every call; rotating the
    /// master key changes every subkey.
    ///
    /// The caller holds the subkey: keep it out of logs and messages as it would the master
    /// key.
    pub fn derive_subkey(&self, purpose: &str) -> [u8; 32] {
        super::crypto::subkey(self, purpose)
    }

    pub(super) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(unix)]
fn check_permissions(metadata: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "has permissions {mode:04o}; a master key file must be accessible to its owner only (chmod 600)"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_metadata: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// Creates `path` with `bytes`, owner-only, and makes it durable (file and directory entry).
fn create_key_file(path: &Path, bytes: &[u8; KEY_LEN]) -> io::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(parent)?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        // Do not leave a short key file behind for the next start to refuse.
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    sync_dir(parent)
}

/// Makes a directory's entries durable (a no-op where directories cannot be opened).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::tests::TestDir;

    /// HMAC-SHA-256 under `[1; 32]` of `civicflow subkey\0dashboard session`, computed
    /// outside civicflow (Python's `hmac`).
    const KNOWN_SESSION_SUBKEY: &str =
        "a4c038669b7a039931cc57c0c36fa01d14101fc9930e2280f0004fbc8435721c";

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";

    #[test]
    fn hex_keys_parse_and_errors_never_show_the_text() {
        let key = MasterKey::from_hex(&format!("  {HEX}\n")).expect("valid hex");
        let expected: Vec<u8> = (0..32).collect();
        assert_eq!(key.expose().as_slice(), expected.as_slice());
        for bad in [
            &HEX[..62],
            "zz".repeat(32).as_str(),
            &format!("{HEX}00"),
            "",
        ] {
            let err = MasterKey::from_hex(bad).expect_err("invalid");
            assert!(matches!(err, VaultError::InvalidMasterKey { .. }), "{err}");
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
    }

    #[test]
    fn subkeys_differ_per_purpose_and_master_key_and_are_stable() {
        let a = MasterKey::from_bytes([1; 32]);
        let b = MasterKey::from_bytes([2; 32]);
        let session = a.derive_subkey("dashboard session");
        assert_eq!(session, a.derive_subkey("dashboard session"), "stable");
        assert_eq!(
            session,
            MasterKey::from_bytes([1; 32]).derive_subkey("dashboard session"),
            "the same for another copy of the same master key"
        );
        assert_ne!(session, a.derive_subkey("dashboard csrf"));
        assert_ne!(session, a.derive_subkey(""));
        assert_ne!(session, b.derive_subkey("dashboard session"));
        assert_ne!(&session, a.expose(), "not the master key itself");
        // A known answer, so that a change of the derivation (which would sign everyone out
        // and break every instance still running the old one) is seen: HMAC-SHA-256 under
        // 32 bytes of 0x01 of "civicflow subkey\0dashboard session".
        let hex: String = session.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, KNOWN_SESSION_SUBKEY);
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = MasterKey::from_hex(HEX).expect("valid");
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert_eq!(
            format!("{:?}", Some(key.clone())),
            "Some(MasterKey(<redacted>))"
        );
    }

    #[test]
    fn the_environment_value_is_optional_but_must_be_valid_when_set() {
        assert!(MasterKey::from_env_value(None)
            .expect("unset is fine")
            .is_none());
        let key = MasterKey::from_env_value(Some(HEX.into()))
            .expect("valid")
            .expect("set");
        assert_eq!(key.expose()[31], 0x1f);
        let err = MasterKey::from_env_value(Some("".into())).expect_err("empty");
        assert!(err.to_string().contains("CIVICFLOW_MASTER_KEY"), "{err}");
        let err = MasterKey::from_env_value(Some("secret-ish".into())).expect_err("not hex");
        assert!(!err.to_string().contains("secret-ish"), "{err}");
    }

    #[test]
    fn load_or_create_creates_an_owner_only_file_and_reads_it_back() {
        let dir = TestDir::new("master-key");
        let path = dir
            .path()
            .join("config")
            .join("civicflow")
            .join("master.key");
        let created = MasterKey::load_or_create(&path).expect("created");
        let loaded = MasterKey::load_or_create(&path).expect("loaded");
        assert_eq!(created.expose(), loaded.expose());
        assert_eq!(std::fs::read(&path).expect("read").len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = MasterKey::load_or_create(dir.path().join("other.key")).expect("created");
        assert_ne!(created.expose(), other.expose());
    }

    #[test]
    fn key_files_of_the_wrong_length_are_refused() {
        let dir = TestDir::new("master-key-length");
        for len in [0usize, 31, 33, 64] {
            let path = dir.path().join(format!("key-{len}"));
            write_owner_only(&path, &vec![7u8; len]);
            let err = MasterKey::load_or_create(&path).expect_err("wrong length");
            assert!(
                matches!(&err, VaultError::MasterKeyFile { reason, .. } if reason.contains("exactly 32")),
                "{err}"
            );
            // It was refused, not replaced.
            assert_eq!(std::fs::read(&path).expect("read").len(), len);
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_files_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TestDir::new("master-key-mode");
        let path = dir.path().join("master.key");
        write_owner_only(&path, &[9u8; 32]);
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let err = MasterKey::load(&path).expect_err("too open");
            assert!(err.to_string().contains("chmod 600"), "{err}");
            assert!(err.to_string().contains(&format!("{mode:04o}")), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        assert_eq!(
            MasterKey::load(&path).expect("owner-only").expose(),
            &[9u8; 32]
        );
        let err = MasterKey::load(dir.path()).expect_err("a directory");
        assert!(
            matches!(
                err,
                VaultError::MasterKeyFile { .. } | VaultError::Io { .. }
            ),
            "{err}"
        );
    }

    fn write_owner_only(path: &Path, bytes: &[u8]) {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).expect("create test key file");
        file.write_all(bytes).expect("write test key file");
    }
}
