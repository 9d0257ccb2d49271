//! TLS on the service's own accept loop (`docs/service.md`, "TLS"): the certificate chain and
//! private key are read from PEM files when the service opens, checked (a certificate, one
//! key, the key the certificate was issued for), and can be read again while it runs
//! ([`TlsReloader`]); a reload that fails keeps what was in use.
//!
//! rustls with the `ring` provider, TLS 1.2 and 1.3 with rustls' defaults, ALPN `http/1.1`
//! only (the service speaks HTTP/1). The handshake itself runs in each connection's task in
//! `connections.rs`, after the connection caps and under the header timeout. This is the only
//! module that knows rustls.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use tokio_rustls::rustls::pki_types::pem::{self, PemObject, SectionKind};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, server::ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Where the service's certificate and private key are: PEM files, read when the service opens
/// and again on each [`TlsReloader::reload`]. One file holding both may be named twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain: the server's certificate first, then any intermediates
    /// (`-----BEGIN CERTIFICATE-----` blocks; other blocks are skipped).
    pub cert_file: PathBuf,
    /// The certificate's private key, unencrypted: PKCS#8 (`PRIVATE KEY`), PKCS#1
    /// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`); exactly one (certificate blocks are
    /// skipped).
    pub key_file: PathBuf,
}

impl TlsConfig {
    /// The certificate chain in `cert_file` and its key in `key_file`.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        }
    }

    /// Reads and checks both files as the service will when it opens, and keeps nothing: for a
    /// command that refuses bad files before it does anything else.
    ///
    /// # Errors
    /// [`TlsError`], naming the file and what is wrong with it.
    pub fn check(&self) -> Result<(), TlsError> {
        self.server_config().map(drop)
    }

    /// The rustls configuration of these files.
    fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = read_chain(&self.cert_file)?;
        let key = read_key(&self.key_file)?;
        // rustls 0.23.48 deprecates the ring provider because it has no post-quantum key
        // exchange (X25519MLKEM768, aws-lc-rs only); its X25519 and P-256/P-384 exchanges are
        // what browsers and clients still offer everywhere. aws-lc-rs would bring a far larger
        // C build and the OpenSSL licence (`docs/service.md`, "TLS").
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new(&self.cert_file, Problem::Rustls(e.to_string())))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|error| self.refusal(error))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// What rustls refused, said of the file at fault.
    fn refusal(&self, error: rustls::Error) -> TlsError {
        match error {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::new(&self.key_file, Problem::KeyMismatch(self.cert_file.clone()))
            }
            rustls::Error::InvalidCertificate(reason) => TlsError::new(
                &self.cert_file,
                Problem::BadCertificate(format!("{reason:?}")),
            ),
            rustls::Error::General(reason) => {
                TlsError::new(&self.key_file, Problem::BadKey(reason))
            }
            other => TlsError::new(&self.key_file, Problem::Rustls(other.to_string())),
        }
    }
}

/// A certificate or key file that cannot be used: names the file and what is wrong with it
/// (missing or unreadable, not PEM, no certificate, no key or several, an encrypted key, a key
/// rustls cannot use, a key that does not belong to the certificate).
#[derive(Debug)]
pub struct TlsError {
    path: PathBuf,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    Read(std::io::Error),
    Pem(String),
    NoCertificate { holds_key: bool },
    NoKey { holds_certificate: bool },
    SeveralKeys(usize),
    EncryptedKey,
    BadCertificate(String),
    BadKey(String),
    KeyMismatch(PathBuf),
    Rustls(String),
}

impl TlsError {
    fn new(path: &Path, problem: Problem) -> Self {
        Self {
            path: path.to_owned(),
            problem,
        }
    }

    /// The file at fault (the key file when the key does not belong to the certificate).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.problem {
            Problem::Read(error) => write!(f, "cannot read {path}: {error}"),
            Problem::Pem(reason) => write!(f, "{path} is not valid PEM: {reason}"),
            Problem::NoCertificate { holds_key } => {
                write!(
                    f,
                    "{path} holds no certificate (a PEM block -----BEGIN CERTIFICATE-----)"
                )?;
                if *holds_key {
                    write!(f, ", only a private key: are the certificate and key swapped?")?;
                }
                Ok(())
            }
            Problem::NoKey { holds_certificate } => {
                write!(
                    f,
                    "{path} holds no private key (a PEM block -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)"
                )?;
                if *holds_certificate {
                    write!(f, ", only a certificate: are the certificate and key swapped?")?;
                }
                Ok(())
            }
            Problem::SeveralKeys(count) => write!(
                f,
                "{path} holds {count} private keys: give the one the certificate was issued for, alone"
            ),
            Problem::EncryptedKey => write!(
                f,
                "{path} holds an encrypted private key: the server cannot ask for its passphrase; give it unencrypted, in a file only the server's user can read"
            ),
            Problem::BadCertificate(reason) => {
                write!(
                    f,
                    "the certificate in {path} cannot be read: not a well-formed X.509 certificate ({reason})"
                )
            }
            Problem::BadKey(reason) => {
                write!(f, "the private key in {path} cannot be used: {reason}")
            }
            Problem::KeyMismatch(cert) => write!(
                f,
                "the private key in {path} does not belong to the certificate in {} (their public keys differ): give the key the certificate was issued for",
                cert.display()
            ),
            Problem::Rustls(reason) => write!(f, "{path}: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Read(error) => Some(error),
            _ => None,
        }
    }
}

/// The PEM blocks of a file, each with its kind and its DER bytes.
type Blocks = Vec<(SectionKind, Vec<u8>)>;

/// The PEM blocks of `path` (blocks of kinds rustls does not know are skipped), and whether the
/// file holds an encrypted private key.
fn read_pem(path: &Path) -> Result<(Blocks, bool), TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::new(path, Problem::Read(e)))?;
    let sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(path, Problem::Pem(pem_reason(&e))))?;
    let encrypted = bytes
        .windows(b"BEGIN ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"BEGIN ENCRYPTED PRIVATE KEY");
    Ok((sections, encrypted))
}

/// A PEM error in words (its own `Display` prints marker lines as lists of bytes).
fn pem_reason(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a block does not end (its -----END {}----- line is missing)",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "a block starts with a malformed line: {}",
            String::from_utf8_lossy(line)
        ),
        pem::Error::Base64Decode(reason) => format!("a block is not valid base64 ({reason})"),
        other => other.to_string(),
    }
}

fn is_key(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
    )
}

/// The certificate chain in `path`, in the file's order.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let (sections, encrypted) = read_pem(path)?;
    let holds_key = encrypted || sections.iter().any(|(kind, _)| is_key(*kind));
    let chain: Vec<_> = sections
        .into_iter()
        .filter_map(|(kind, der)| CertificateDer::from_pem(kind, der))
        .collect();
    if chain.is_empty() {
        return Err(TlsError::new(path, Problem::NoCertificate { holds_key }));
    }
    Ok(chain)
}

/// The one private key in `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let (sections, encrypted) = read_pem(path)?;
    let holds_certificate = sections
        .iter()
        .any(|(kind, _)| *kind == SectionKind::Certificate);
    let mut keys: Vec<_> = sections
        .into_iter()
        .filter_map(|(kind, der)| PrivateKeyDer::from_pem(kind, der))
        .collect();
    match (keys.len(), encrypted) {
        (0, true) => Err(TlsError::new(path, Problem::EncryptedKey)),
        (0, false) => Err(TlsError::new(path, Problem::NoKey { holds_certificate })),
        (1, _) => Ok(keys.remove(0)),
        (count, _) => Err(TlsError::new(path, Problem::SeveralKeys(count))),
    }
}

/// The TLS of a running service: the acceptor every new connection uses, swapped whole by a
/// reload (connections already open keep the one they were accepted with).
#[derive(Clone)]
pub(crate) struct Tls {
    config: TlsConfig,
    current: Arc<RwLock<TlsAcceptor>>,
}

impl Tls {
    /// Reads and checks the files of `config`.
    pub(crate) fn load(config: TlsConfig) -> Result<Self, TlsError> {
        let acceptor = TlsAcceptor::from(config.server_config()?);
        Ok(Self {
            config,
            current: Arc::new(RwLock::new(acceptor)),
        })
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Reads a running service's certificate and key files again (`Service::tls_reloader`; what
/// `civicflow serve` does on SIGHUP): a renewed certificate is served without a restart.
#[derive(Debug, Clone)]
pub struct TlsReloader(pub(crate) Tls);

impl TlsReloader {
    /// Reads and checks the files again; when they are good, every new connection gets them
    /// (open ones keep theirs). When they are not, nothing changes and the error says why.
    ///
    /// # Errors
    /// [`TlsError`], as when the service opened.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = TlsAcceptor::from(self.0.config.server_config()?);
        *self
            .0
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = acceptor;
        Ok(())
    }

    /// The files it reads.
    pub fn config(&self) -> &TlsConfig {
        &self.0.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU64, Ordering};
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "civicflow-http-tls-{tag}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).expect("a scratch directory");
            Self(path)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).expect("write");
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A self-signed certificate for localhost and its key, both PEM.
    fn self_signed() -> (String, String) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    fn refusal(cert: &Path, key: &Path) -> String {
        TlsConfig::new(cert, key)
            .check()
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_certificate_and_its_key_are_accepted_alone_or_in_one_file() {
        let scratch = Scratch::new("good");
        let (cert, key) = self_signed();
        let cert_file = scratch.write("cert.pem", &cert);
        let key_file = scratch.write("key.pem", &key);
        TlsConfig::new(&cert_file, &key_file)
            .check()
            .expect("accepted");
        let both = scratch.write("both.pem", &format!("{key}{cert}"));
        TlsConfig::new(&both, &both).check().expect("one file");
        let tls = Tls::load(TlsConfig::new(&cert_file, &key_file)).expect("loaded");
        assert_eq!(
            tls.acceptor().config().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn bad_files_are_refused_naming_the_file_and_what_is_wrong() {
        let scratch = Scratch::new("bad");
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let cert_file = scratch.write("cert.pem", &cert);
        let key_file = scratch.write("key.pem", &key);
        let other_key_file = scratch.write("other-key.pem", &other_key);
        let missing = scratch.0.join("missing.pem");
        let garbage = scratch.write("garbage.pem", "not a certificate at all\n");
        let broken = scratch.write(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB!!!!\n-----END CERTIFICATE-----\n",
        );
        let unended = scratch.write("unended.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        let encrypted = scratch.write(
            "encrypted.pem",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let not_a_key = scratch.write(
            "not-a-key.pem",
            "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n",
        );
        let not_a_cert = scratch.write(
            "not-a-cert.pem",
            "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
        );
        let two_keys = scratch.write("two-keys.pem", &format!("{key}{other_key}"));

        let cases: Vec<(&Path, &Path, Vec<&str>)> = vec![
            (&missing, &key_file, vec!["cannot read", "missing.pem"]),
            (&cert_file, &missing, vec!["cannot read", "missing.pem"]),
            (
                &garbage,
                &key_file,
                vec!["garbage.pem holds no certificate"],
            ),
            (
                &cert_file,
                &garbage,
                vec!["garbage.pem holds no private key"],
            ),
            (
                &key_file,
                &cert_file,
                vec!["key.pem holds no certificate", "swapped"],
            ),
            (
                &cert_file,
                &cert_file,
                vec!["holds no private key", "swapped"],
            ),
            (
                &broken,
                &key_file,
                vec!["broken.pem is not valid PEM", "base64"],
            ),
            (
                &unended,
                &key_file,
                vec!["unended.pem is not valid PEM", "END CERTIFICATE"],
            ),
            (
                &cert_file,
                &encrypted,
                vec!["encrypted.pem", "encrypted private key"],
            ),
            (
                &cert_file,
                &not_a_key,
                vec!["the private key in", "not-a-key.pem", "cannot be used"],
            ),
            (
                &not_a_cert,
                &key_file,
                vec!["the certificate in", "not-a-cert.pem", "cannot be read"],
            ),
            (
                &cert_file,
                &two_keys,
                vec!["two-keys.pem holds 2 private keys"],
            ),
            (
                &cert_file,
                &other_key_file,
                vec![
                    "other-key.pem does not belong to the certificate in",
                    "cert.pem",
                ],
            ),
        ];
        for (cert, key, expected) in cases {
            let message = refusal(cert, key);
            for words in expected {
                assert!(
                    message.contains(words),
                    "{} + {}: {message:?} lacks {words:?}",
                    cert.display(),
                    key.display()
                );
            }
        }
    }

    #[test]
    fn a_reload_takes_new_files_and_a_failed_one_keeps_the_old() {
        let scratch = Scratch::new("reload");
        let (cert, key) = self_signed();
        let cert_file = scratch.write("cert.pem", &cert);
        let key_file = scratch.write("key.pem", &key);
        let tls = Tls::load(TlsConfig::new(&cert_file, &key_file)).expect("loaded");
        let reloader = TlsReloader(tls.clone());
        let first = tls.acceptor();

        // A new certificate whose key is not written yet: refused, the old one stays.
        let (new_cert, new_key) = self_signed();
        scratch.write("cert.pem", &new_cert);
        let refused = reloader.reload().expect_err("the old key does not fit");
        assert!(refused.to_string().contains("does not belong"), "{refused}");
        assert!(Arc::ptr_eq(first.config(), tls.acceptor().config()));

        scratch.write("key.pem", &new_key);
        reloader.reload().expect("the new pair");
        assert!(!Arc::ptr_eq(first.config(), tls.acceptor().config()));
    }
}
