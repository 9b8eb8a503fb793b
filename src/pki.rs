//! The QNetd certificate authority and server identity, kept as plain files in one
//! directory (default `/etc/corosync/qnetd/nssdb`, the C qnetd's NSS database path,
//! so that containers and packages that mount or own `/etc/corosync` keep working).
//!
//! The C tools keep everything in an NSS database. We do not read or write NSS
//! databases; we keep our own PEM files and produce exactly the artefacts the C
//! client tools and pcs exchange with the server (`qnetd-cacert.crt`,
//! `cluster-<name>.crt`, `serial.txt`), which is what the unmodified
//! `corosync-qdevice-net-certutil` on the nodes consumes.
//!
//! # Files
//!
//! | file | content | mode (not root / root) |
//! |---|---|---|
//! | `qnetd-ca.key` | CA private key, PKCS#8 PEM (`PRIVATE KEY`) | 0600 / 0640 |
//! | `qnetd-ca.pem` | CA certificate, PEM | 0640 (0660 without `-G`) |
//! | `qnetd-server.key` | server private key, PKCS#8 PEM | 0600 / 0640 |
//! | `qnetd-server.pem` | server certificate, PEM | 0640 (0660 without `-G`) |
//! | `serial.txt` | last serial number issued, decimal (C tool format) | 0640 (0660) |
//! | `qnetd-cacert.crt` | CA export for the nodes: short text dump + PEM block | 0644 |
//! | `cluster-<name>.crt` | signed cluster certificate, DER (as the C tool) | 0640 (0660) |
//! | `pkcs11.txt` | commit marker, starts with `# qnetd certificate store` | 0640 (0660) |
//!
//! `pkcs11.txt` is written last by initialisation: the store counts as initialised
//! only when it exists with our first line. The name is deliberate: pcs (and the C
//! scripts' habits) treat a qnetd directory as initialised when one of the NSS
//! database file names exists there, so `pcs qdevice ...` works unchanged. The
//! real NSS tools refuse to open the directory (SEC_ERROR_BAD_DATABASE) instead of
//! mistaking it for a database.
//!
//! # Keys and certificates
//!
//! CA and server keys are ECDSA P-256 (ring cannot generate RSA keys); NSS 3.87
//! (Debian 12) verifies the chain for SSL-server use and the NSS TLS client
//! handshakes with it (see `tests/certs_real_tools.rs`). Cluster certificates
//! carry the RSA key of the node's request. All certificates are built by rcgen:
//! X.509 v3, SHA-256, valid from now for 1200 months, serials from `serial.txt`
//! with the C tool's rule (missing file = 100; each issuance reads N, writes N+1,
//! uses N+1), so a fresh store has CA 101, server 102 and the first cluster
//! certificate 103. The CA (`CN=QNet CA`) carries a critical basicConstraints
//! CA:true, pathlen 0 and, unlike the C tool's CA, a non-critical
//! subjectKeyIdentifier: rcgen writes one into every CA certificate (RFC 5280
//! §4.2.1.2 asks for it there) and has no switch to leave it out; NSS and webpki
//! accept it (`tests/certs_real_tools.rs`). The server (`CN=Qnetd Server`) and
//! cluster certificates carry no extensions at all (no authority key identifier
//! either), like the ones NSS `certutil` issues for the C scripts. Names are
//! encoded as PrintableString like NSS does; a cluster certificate's subject and
//! key are the request's, byte for byte: rcgen re-encodes them from their parsed
//! form, so each issued certificate is compared with the request and refused if
//! anything differs. A CA or server key imported from a C store (RSA 2048,
//! PKCS#8) is accepted as well, see below.
//!
//! # Permissions and ownership
//!
//! The C tool makes files 0660 (0640 with `-G`) and directories 0770 (0750), and
//! when run as root gives them the owner and group of `/etc/corosync/qnetd`. We
//! keep that for non-secret files, and for keys we never grant group write: keys
//! are 0600 when written by an ordinary user (the daemon initialising its own
//! store reads them as that same user) and 0640 when written by root, in which
//! case every file gets the owner and group of the store directory (the directory
//! itself, when we create it, gets those of its parent, like the C tool). So with
//! Debian's layout (`nssdb` owned root:coroqnetd, daemon running as coroqnetd)
//! the daemon can read the server key while only root can change anything.
//! The daemon's own first-start initialisation uses the `-G` variant.
//! The daemon never reads the CA key; only signing does.
//!
//! # Crash safety
//!
//! Every file is written to a temporary name in the same directory, fsynced,
//! renamed over the final name and the directory fsynced, so a reader sees either
//! the old or the new content of any file. Initialisation writes `serial.txt`
//! first (so no two CA certificates ever written share a serial), then keys,
//! certificates and the export, and the `pkcs11.txt` marker last: a store without
//! the marker is a half-finished initialisation, which [`ensure_initialized`]
//! redoes from the start (fresh keys) and [`load`] reports as not initialised.
//! Signing writes the incremented `serial.txt` before the certificate, so a crash
//! can skip a serial but never reuse one. Initialisation and signing hold an
//! exclusive `flock` on the directory; leftover temporary files (`.<name>.<pid>.tmp`)
//! are removed under that lock.
//!
//! # Migrating from a C qnetd NSS database
//!
//! A directory holding only an NSS database is refused with
//! [`PkiError::ForeignNssDatabase`], never silently replaced. Either move it away
//! so that a new CA is created (every cluster must then be enrolled again), or
//! keep the old CA by exporting it into our files (run as root):
//!
//! ```text
//! OLD=/etc/corosync/qnetd/nssdb; NEW=$OLD.new; mkdir -m 0750 $NEW
//! pk12util -o ca.p12 -n "QNet CA" -d $OLD -W "" -k $OLD/pwdfile.txt
//! pk12util -o srv.p12 -n "QNetd Cert" -d $OLD -W "" -k $OLD/pwdfile.txt
//! openssl pkcs12 -in ca.p12 -passin pass: -nokeys -clcerts | openssl x509 -out $NEW/qnetd-ca.pem
//! openssl pkcs12 -in ca.p12 -passin pass: -nocerts -nodes | openssl pkcs8 -topk8 -nocrypt -out $NEW/qnetd-ca.key
//! openssl pkcs12 -in srv.p12 -passin pass: -nokeys -clcerts | openssl x509 -out $NEW/qnetd-server.pem
//! openssl pkcs12 -in srv.p12 -passin pass: -nocerts -nodes | openssl pkcs8 -topk8 -nocrypt -out $NEW/qnetd-server.key
//! cp $OLD/serial.txt $OLD/qnetd-cacert.crt $NEW/
//! echo '# qnetd certificate store' > $NEW/pkcs11.txt
//! chmod 0640 $NEW/*.key; mv $OLD $OLD.nss; mv $NEW $OLD
//! ```

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, DnValue, IsCa,
    Issuer, KeyPair, PublicKeyData, SerialNumber,
};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use time::{Date, Duration, Month, OffsetDateTime};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::session::CertNames;

/// The C qnetd's NSS database directory, where we keep our store too.
pub const DEFAULT_DIR: &str = "/etc/corosync/qnetd/nssdb";
/// CA private key (PKCS#8 PEM).
pub const CA_KEY_FILE: &str = "qnetd-ca.key";
/// CA certificate (PEM).
pub const CA_CERT_FILE: &str = "qnetd-ca.pem";
/// Server private key (PKCS#8 PEM).
pub const SERVER_KEY_FILE: &str = "qnetd-server.key";
/// Server certificate (PEM).
pub const SERVER_CERT_FILE: &str = "qnetd-server.pem";
/// Last serial number issued (decimal), same format as the C tool's.
pub const SERIAL_FILE: &str = "serial.txt";
/// CA export copied to the nodes (`corosync-qdevice-net-certutil -i -c`).
pub const CA_EXPORT_FILE: &str = "qnetd-cacert.crt";
/// Commit marker, written last by initialisation (see module docs for the name).
pub const MARKER_FILE: &str = "pkcs11.txt";
/// First line of our marker; any other `pkcs11.txt` belongs to an NSS database.
pub const MARKER_MAGIC: &str = "# qnetd certificate store";

/// Subject CN of the CA, as the C tool.
pub const CA_CN: &str = "QNet CA";
/// Subject CN of the server certificate; the qdevice client checks it by default
/// (`net_nss_qnetd_cn`).
pub const SERVER_CN: &str = "Qnetd Server";
/// Validity of every certificate, as the C tool (`CRT_VALIDITY`).
pub const VALIDITY_MONTHS: i64 = 1200;
/// Value assumed when `serial.txt` is missing, as the C tool.
pub const INITIAL_SERIAL: u64 = 100;

/// File names of the NSS databases (old and new formats) the C tools create.
const NSS_DB_FILES: [&str; 5] = ["cert9.db", "key4.db", "cert8.db", "key3.db", "secmod.db"];

const MARKER_CONTENT: &str = "# qnetd certificate store\n\
# This directory holds PEM files written by qnetd, not an NSS database.\n\
# This file is written last when the store is created: without it the store\n\
# is incomplete. Its name lets pcs see the directory as initialised.\n";

/// What the daemon serves with: everything DER.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub ca_cert_der: Vec<u8>,
    pub server_cert_der: Vec<u8>,
    /// PKCS#8.
    pub server_key_der: Vec<u8>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep the private key out of logs and test failure output.
        f.debug_struct("Identity")
            .field("ca_cert_der", &format_args!("{} bytes", self.ca_cert_der.len()))
            .field("server_cert_der", &format_args!("{} bytes", self.server_cert_der.len()))
            .field("server_key_der", &"<redacted>")
            .finish()
    }
}

/// Everything that can go wrong; `Display` is one operator-readable line.
#[derive(Debug)]
pub enum PkiError {
    /// A file system operation failed.
    Io { action: &'static str, path: PathBuf, source: io::Error },
    /// No (complete) store in this directory.
    NotInitialized { dir: PathBuf },
    /// `-i` on a directory that already has a store or an NSS database.
    AlreadyInitialized { dir: PathBuf },
    /// The directory holds a C qnetd NSS database and none of our files.
    ForeignNssDatabase { dir: PathBuf, file: &'static str },
    /// A store file exists but its content is unusable.
    Corrupt { path: PathBuf, reason: String },
    /// The certificate signing request was rejected.
    BadRequest { reason: String },
    /// The cluster name cannot be used in a file name.
    BadClusterName { name: String },
    /// A certificate given to [`cert_names`] could not be parsed.
    BadCertificate { reason: String },
    /// Key generation or signing failed.
    Crypto { reason: String },
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiError::Io { action, path, source } => {
                write!(f, "cannot {} {}: {}", action, path.display(), source)
            }
            PkiError::NotInitialized { dir } => write!(
                f,
                "no qnetd certificate store in {} (create it with corosync-qnetd-certutil -i, \
                 or let corosync-qnetd create it on first start)",
                dir.display()
            ),
            PkiError::AlreadyInitialized { dir } => {
                write!(f, "Certificate database ({}) already exists. Delete it to initialize new db", dir.display())
            }
            PkiError::ForeignNssDatabase { dir, file } => write!(
                f,
                "{d} holds an NSS database of the C corosync-qnetd ({file}) and no qnetd \
                 certificate store: either move it away (mv {d} {d}.nss) so that a new CA is \
                 created, then enrol every cluster again (corosync-qdevice-net-certutil -i/-r/-M/-m \
                 or pcs quorum device add), or keep the old CA by exporting it with pk12util into \
                 qnetd-ca.pem/.key and qnetd-server.pem/.key as described in the qnetd documentation",
                d = dir.display(),
                file = file
            ),
            PkiError::Corrupt { path, reason } => write!(f, "{}: {}", path.display(), reason),
            PkiError::BadRequest { reason } => {
                write!(f, "certificate request rejected: {}", reason)
            }
            PkiError::BadClusterName { name } => {
                write!(f, "cluster name {:?} cannot be used: it must be non-empty and contain no '/' or NUL", name)
            }
            PkiError::BadCertificate { reason } => write!(f, "bad certificate: {}", reason),
            PkiError::Crypto { reason } => write!(f, "cryptographic operation failed: {}", reason),
        }
    }
}

impl std::error::Error for PkiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PkiError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PkiError {
    let path = path.to_path_buf();
    move |source| PkiError::Io { action, path, source }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> PkiError {
    PkiError::Corrupt { path: path.to_path_buf(), reason: reason.into() }
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Path of the CA export the nodes import (`corosync-qdevice-net-certutil -i -c`).
pub fn ca_export_path(dir: &Path) -> PathBuf {
    dir.join(CA_EXPORT_FILE)
}

/// Path of the signed certificate for `cluster_name`, as the C tool names it.
pub fn cluster_cert_path(dir: &Path, cluster_name: &str) -> PathBuf {
    dir.join(format!("cluster-{}.crt", cluster_name))
}

/// Load the store, creating it first when the directory is missing, empty or
/// holds only a half-finished initialisation. Returns whether it was created now.
/// A directory holding only a C qnetd NSS database is an error, never replaced.
pub fn ensure_initialized(dir: &Path) -> Result<(Identity, bool), PkiError> {
    create_dir(dir, false)?;
    let store = Locked::lock(dir)?;
    match probe(dir)? {
        State::Committed => {
            // Tidy up after a signer killed mid-write. Best effort: the daemon may
            // run as a user that can read the store but not write to it.
            let _ = store.remove_temp_files();
            Ok((load(dir)?, false))
        }
        State::Foreign(file) => Err(PkiError::ForeignNssDatabase { dir: dir.to_path_buf(), file }),
        State::Fresh => Ok((store.initialize(false)?, true)),
    }
}

/// `corosync-qnetd-certutil -i`: create a new store, refusing (like the C tool)
/// when one exists already or the directory holds an NSS database. A
/// half-finished store is redone. `group_write` is false for `-G`.
pub fn init(dir: &Path, group_write: bool) -> Result<Identity, PkiError> {
    create_dir(dir, group_write)?;
    let store = Locked::lock(dir)?;
    match probe(dir)? {
        State::Committed | State::Foreign(_) => Err(PkiError::AlreadyInitialized { dir: dir.to_path_buf() }),
        State::Fresh => store.initialize(group_write),
    }
}

/// Whether `dir` holds a complete store (for the C tool's "database exists" checks).
pub fn is_initialized(dir: &Path) -> Result<bool, PkiError> {
    Ok(matches!(probe(dir)?, State::Committed))
}

/// Read the server identity of an initialised store and check that it hangs
/// together (key matches certificate, certificate signed by the CA). Read-only.
pub fn load(dir: &Path) -> Result<Identity, PkiError> {
    require_committed(dir)?;
    let ca_path = dir.join(CA_CERT_FILE);
    let ca_cert_der = read_pem_file(&ca_path, &["CERTIFICATE"])?;
    let server_path = dir.join(SERVER_CERT_FILE);
    let server_cert_der = read_pem_file(&server_path, &["CERTIFICATE"])?;
    let key_path = dir.join(SERVER_KEY_FILE);
    let server_key_der = read_pem_file(&key_path, &["PRIVATE KEY"])?;

    let ca = parse_cert(&ca_path, &ca_cert_der)?;
    if !ca.is_ca() {
        return Err(corrupt(&ca_path, "not a CA certificate (basicConstraints CA:true missing)"));
    }
    let server = parse_cert(&server_path, &server_cert_der)?;
    server
        .verify_signature(Some(ca.public_key()))
        .map_err(|e| corrupt(&server_path, format!("not signed by the CA in {}: {}", CA_CERT_FILE, e)))?;
    let key = parse_key(&key_path, &server_key_der)?;
    if key.subject_public_key_info() != server.public_key().raw {
        return Err(corrupt(&key_path, format!("key does not match {}", SERVER_CERT_FILE)));
    }
    Ok(Identity { ca_cert_der, server_cert_der, server_key_der })
}

/// `corosync-qnetd-certutil -s`: sign a node's PKCS#10 request (DER, or PEM with
/// `CERTIFICATE REQUEST` / `NEW CERTIFICATE REQUEST` armour) and write
/// `cluster-<cluster_name>.crt` (DER). The subject and public key are copied
/// from the request; no extensions are added (requested key usages, subject
/// alternative names and basic constraints are ignored; a request asking for
/// any other extension is refused, as rcgen cannot read it). A refused request
/// consumes no serial. Returns the path written.
pub fn sign_request(dir: &Path, csr_bytes: &[u8], cluster_name: &str, group_write: bool) -> Result<PathBuf, PkiError> {
    if cluster_name.is_empty() || cluster_name.contains('/') || cluster_name.contains('\0') {
        return Err(PkiError::BadClusterName { name: cluster_name.to_string() });
    }
    let request = Request::parse(csr_bytes)?;

    require_dir(dir)?;
    let store = Locked::lock(dir)?;
    require_committed(dir)?;
    store.remove_temp_files()?;
    let ca_path = dir.join(CA_CERT_FILE);
    let ca_der = read_pem_file(&ca_path, &["CERTIFICATE"])?;
    let ca = parse_cert(&ca_path, &ca_der)?;
    let key_path = dir.join(CA_KEY_FILE);
    let ca_key = parse_key(&key_path, &read_pem_file(&key_path, &["PRIVATE KEY"])?)?;
    if ca_key.subject_public_key_info() != ca.public_key().raw {
        return Err(corrupt(&key_path, format!("key does not match {}", CA_CERT_FILE)));
    }

    let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(ca_der.as_slice()), &ca_key)
        .map_err(|e| corrupt(&ca_path, format!("cannot sign with this CA certificate: {}", e)))?;

    let policy = Policy::new(dir, group_write)?;
    let now = OffsetDateTime::now_utc();
    let der = store.reserve_serials(&policy, 1, |serial| {
        let der = request.issue(&issuer, serial, now)?;
        // rcgen rebuilt the issuer name from the parsed CA certificate.
        match X509Certificate::from_der(&der) {
            Ok((_, cert)) if cert.issuer().as_raw() == ca.subject().as_raw() => Ok(der),
            _ => Err(corrupt(&ca_path, "its subject cannot be reproduced exactly as an issuer name")),
        }
    })?;
    let path = cluster_cert_path(dir, cluster_name);
    store.write(&format!("cluster-{}.crt", cluster_name), &der, policy.file_mode(), &policy)?;
    Ok(path)
}

/// `notAfter` of the CA and of the server certificate, in Unix seconds.
pub fn cert_expiry(dir: &Path) -> Result<(i64, i64), PkiError> {
    require_committed(dir)?;
    let ca_path = dir.join(CA_CERT_FILE);
    let ca_der = read_pem_file(&ca_path, &["CERTIFICATE"])?;
    let ca = parse_cert(&ca_path, &ca_der)?;
    let server_path = dir.join(SERVER_CERT_FILE);
    let server_der = read_pem_file(&server_path, &["CERTIFICATE"])?;
    let server = parse_cert(&server_path, &server_der)?;
    Ok((ca.validity().not_after.timestamp(), server.validity().not_after.timestamp()))
}

/// subjectAltName dNSName entries and subject common names of a certificate
/// (the names the session compares with the cluster name, session.md §5.1).
/// Names that are not text (e.g. BMPString CNs) are skipped.
pub fn cert_names(der: &[u8]) -> Result<CertNames, PkiError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::BadCertificate { reason: e.to_string() })?;
    if !rest.is_empty() {
        return Err(PkiError::BadCertificate { reason: "trailing bytes after the certificate".into() });
    }
    let common_names =
        cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_string).collect();
    let mut dns_names = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::BadCertificate { reason: format!("subjectAltName: {}", e) })?;
    if let Some(san) = san {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                dns_names.push(dns.to_string());
            }
        }
    }
    Ok(CertNames { dns_names, common_names })
}

// ---------------------------------------------------------------------------
// Store state
// ---------------------------------------------------------------------------

enum State {
    /// Our marker is present: a complete store.
    Committed,
    /// No marker of ours but NSS database files: the C qnetd's directory.
    Foreign(&'static str),
    /// Missing, empty, or a half-finished initialisation of ours.
    Fresh,
}

fn probe(dir: &Path) -> Result<State, PkiError> {
    let marker = dir.join(MARKER_FILE);
    match fs::read(&marker) {
        Ok(content) if content.starts_with(MARKER_MAGIC.as_bytes()) => return Ok(State::Committed),
        Ok(_) => return Ok(State::Foreign(MARKER_FILE)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("read", &marker)(e)),
    }
    for name in NSS_DB_FILES {
        let path = dir.join(name);
        match fs::symlink_metadata(&path) {
            Ok(_) => return Ok(State::Foreign(name)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect", &path)(e)),
        }
    }
    Ok(State::Fresh)
}

fn require_dir(dir: &Path) -> Result<(), PkiError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(corrupt(dir, "not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(PkiError::NotInitialized { dir: dir.to_path_buf() }),
        Err(e) => Err(io_err("inspect", dir)(e)),
    }
}

/// Ok when `dir` holds a complete store; otherwise the reason
/// ([`PkiError::NotInitialized`], [`PkiError::ForeignNssDatabase`], I/O).
pub fn check_initialized(dir: &Path) -> Result<(), PkiError> {
    require_committed(dir)
}

fn require_committed(dir: &Path) -> Result<(), PkiError> {
    require_dir(dir)?;
    match probe(dir)? {
        State::Committed => Ok(()),
        State::Foreign(file) => Err(PkiError::ForeignNssDatabase { dir: dir.to_path_buf(), file }),
        State::Fresh => Err(PkiError::NotInitialized { dir: dir.to_path_buf() }),
    }
}

/// Create `dir` (and its parents) if missing, C-tool style: 0770/0750 and, as
/// root, the owner and group of the parent directory. Returns whether created.
fn create_dir(dir: &Path, group_write: bool) -> Result<bool, PkiError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(_) => return Err(corrupt(dir, "not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect", dir)(e)),
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_err("create directory", &parent))?;
    let mode = if group_write { 0o770 } else { 0o750 };
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        // Another process (daemon vs. certutil) won the race: fine.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io_err("create directory", dir)(e)),
    }
    if is_root() {
        let meta = fs::metadata(&parent).map_err(io_err("inspect", &parent))?;
        std::os::unix::fs::chown(dir, Some(meta.uid()), Some(meta.gid())).map_err(io_err("change owner of", dir))?;
    }
    // The umask may have narrowed the mode given to mkdir.
    set_mode_path(dir, mode)?;
    sync_dir(&parent)?;
    Ok(true)
}

fn set_mode_path(path: &Path, mode: u32) -> Result<(), PkiError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("change mode of", path))
}

fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync directory", dir))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Modes and ownership for files written in one operation.
struct Policy {
    group_write: bool,
    /// Owner and group to give files (root only): the store directory's.
    owner: Option<(u32, u32)>,
}

impl Policy {
    fn new(dir: &Path, group_write: bool) -> Result<Policy, PkiError> {
        let owner = if is_root() {
            let meta = fs::metadata(dir).map_err(io_err("inspect", dir))?;
            Some((meta.uid(), meta.gid()))
        } else {
            None
        };
        Ok(Policy { group_write, owner })
    }

    /// Keys: never group-writable; group-readable only when root hands them to
    /// the directory's group (the daemon's service account).
    fn key_mode(&self) -> u32 {
        if self.owner.is_some() {
            0o640
        } else {
            0o600
        }
    }

    /// Everything else, C tool rule.
    fn file_mode(&self) -> u32 {
        if self.group_write {
            0o660
        } else {
            0o640
        }
    }

    /// The CA export is public (the C tool leaves it to the umask, typically 0644).
    fn export_mode(&self) -> u32 {
        0o644
    }
}

/// An exclusive `flock` on the store directory, held while writing.
struct Locked {
    dir: PathBuf,
    fd: File,
}

impl Locked {
    fn lock(dir: &Path) -> Result<Locked, PkiError> {
        let fd = File::open(dir).map_err(io_err("open directory", dir))?;
        loop {
            // SAFETY: fd is a valid open descriptor owned by `fd` for the call.
            let rc = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(io_err("lock directory", dir)(err));
            }
        }
        Ok(Locked { dir: dir.to_path_buf(), fd })
    }

    /// Atomically replace `name` with `data`: temp file, fsync, rename, fsync dir.
    fn write(&self, name: &str, data: &[u8], mode: u32, policy: &Policy) -> Result<(), PkiError> {
        let final_path = self.dir.join(name);
        let tmp_path = self.dir.join(format!(".{}.{}.tmp", name, std::process::id()));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp_path)
                .map_err(io_err("create", &tmp_path))?;
            if let Some((uid, gid)) = policy.owner {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(io_err("change owner of", &tmp_path))?;
            }
            f.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err("change mode of", &tmp_path))?;
            f.write_all(data).map_err(io_err("write", &tmp_path))?;
            f.sync_all().map_err(io_err("sync", &tmp_path))?;
            drop(f);
            fs::rename(&tmp_path, &final_path).map_err(io_err("rename into", &final_path))?;
            self.fd.sync_all().map_err(io_err("sync directory", &self.dir))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp_path);
        }
        result
    }

    /// Remove temporary files left by a process killed mid-write.
    fn remove_temp_files(&self) -> Result<(), PkiError> {
        let entries = fs::read_dir(&self.dir).map_err(io_err("list directory", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list directory", &self.dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_temp_name(&name) {
                let path = entry.path();
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove", &path)(e)),
                }
            }
        }
        Ok(())
    }

    /// Reserve `count` serials with the C rule and build with the first: `build`
    /// gets it, and only when it succeeds is the new value written, before the
    /// caller writes any certificate using it (a failed build consumes nothing).
    fn reserve_serials<T>(
        &self,
        policy: &Policy,
        count: u64,
        build: impl FnOnce(u64) -> Result<T, PkiError>,
    ) -> Result<T, PkiError> {
        let path = self.dir.join(SERIAL_FILE);
        let last = match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| corrupt(&path, format!("not a serial number: {:?}", text.trim())))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => INITIAL_SERIAL,
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let end = last.checked_add(count).ok_or_else(|| corrupt(&path, "serial number space exhausted"))?;
        let built = build(last + 1)?;
        self.write(SERIAL_FILE, format!("{}\n", end).as_bytes(), policy.file_mode(), policy)?;
        Ok(built)
    }

    /// Create a new CA and server identity, marker last.
    fn initialize(&self, group_write: bool) -> Result<Identity, PkiError> {
        self.remove_temp_files()?;
        let policy = Policy::new(&self.dir, group_write)?;
        let now = OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| PkiError::Crypto { reason: format!("CA key generation: {}", e) })?;
        let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| PkiError::Crypto { reason: format!("server key generation: {}", e) })?;

        let (ca_serial, ca, ca_cert_der, server_cert_der) = self.reserve_serials(&policy, 2, |ca_serial| {
            let mut ca = certificate_params(name_cn(CA_CN)?, ca_serial, now)?;
            ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            let ca_cert = ca.self_signed(&ca_key).map_err(signing_failed)?;
            let server = certificate_params(name_cn(SERVER_CN)?, ca_serial + 1, now)?;
            let server_cert =
                server.signed_by(&server_key, &Issuer::from_params(&ca, &ca_key)).map_err(signing_failed)?;
            Ok((ca_serial, ca, ca_cert.der().to_vec(), server_cert.der().to_vec()))
        })?;
        let server_key_der = server_key.serialize_der();

        let key_mode = policy.key_mode();
        let file_mode = policy.file_mode();
        self.write(CA_KEY_FILE, pem_encode("PRIVATE KEY", &ca_key.serialize_der()).as_bytes(), key_mode, &policy)?;
        self.write(CA_CERT_FILE, pem_encode("CERTIFICATE", &ca_cert_der).as_bytes(), file_mode, &policy)?;
        self.write(SERVER_KEY_FILE, pem_encode("PRIVATE KEY", &server_key_der).as_bytes(), key_mode, &policy)?;
        self.write(SERVER_CERT_FILE, pem_encode("CERTIFICATE", &server_cert_der).as_bytes(), file_mode, &policy)?;
        let export = ca_export_text(&ca, &ca_key, ca_serial, &ca_cert_der);
        self.write(CA_EXPORT_FILE, export.as_bytes(), policy.export_mode(), &policy)?;
        self.write(MARKER_FILE, MARKER_CONTENT.as_bytes(), file_mode, &policy)?;
        Ok(Identity { ca_cert_der, server_cert_der, server_key_der })
    }
}

/// Whether `name` is one of the temporary files the store writes before renaming
/// (`.<name>.<pid>.tmp`); a kill can leave them behind, nothing reads them.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

// ---------------------------------------------------------------------------
// Reading files
// ---------------------------------------------------------------------------

fn read_pem_file(path: &Path, labels: &[&str]) -> Result<Vec<u8>, PkiError> {
    let data = fs::read(path).map_err(io_err("read", path))?;
    match pem_decode(&data, labels) {
        Ok(Some(der)) => Ok(der),
        Ok(None) => Err(corrupt(path, format!("no PEM block labelled {}", labels.join(" or ")))),
        Err(reason) => Err(corrupt(path, reason)),
    }
}

/// PEM as NSS and openssl write it (64-column lines, LF), by the `pem` crate.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), config)
}

/// The content of the first PEM block labelled one of `labels`, `None` when
/// there is none. Text around the blocks is ignored: the CA export starts with
/// a text dump, and `certutil -R -a` requests may too.
fn pem_decode(data: &[u8], labels: &[&str]) -> Result<Option<Vec<u8>>, String> {
    let blocks = pem::parse_many(data).map_err(|e| format!("bad PEM data: {}", e))?;
    Ok(blocks.into_iter().find(|b| labels.contains(&b.tag())).map(pem::Pem::into_contents))
}

fn parse_cert<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>, PkiError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(corrupt(path, "trailing bytes after the certificate")),
        Err(e) => Err(corrupt(path, format!("not a certificate: {}", e))),
    }
}

fn parse_key(path: &Path, pkcs8: &[u8]) -> Result<KeyPair, PkiError> {
    let key = KeyPair::try_from(pkcs8).map_err(|e| corrupt(path, format!("not a usable PKCS#8 private key: {}", e)))?;
    let alg = key.algorithm();
    if alg != &rcgen::PKCS_ECDSA_P256_SHA256 && alg != &rcgen::PKCS_RSA_SHA256 {
        return Err(corrupt(path, "unsupported key type (ECDSA P-256 or RSA expected)"));
    }
    Ok(key)
}

/// A verified PKCS#10 request, read by rcgen, and the parts of it the
/// certificate must carry unchanged.
struct Request {
    csr: CertificateSigningRequestParams,
    subject: Vec<u8>,
    spki: Vec<u8>,
}

impl Request {
    fn parse(bytes: &[u8]) -> Result<Request, PkiError> {
        let bad = |reason: String| PkiError::BadRequest { reason };
        let der = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            match pem_decode(bytes, &["NEW CERTIFICATE REQUEST", "CERTIFICATE REQUEST"]) {
                Ok(Some(der)) => der,
                Ok(None) => {
                    return Err(bad("PEM input without a CERTIFICATE REQUEST or NEW CERTIFICATE REQUEST block".into()))
                }
                Err(reason) => return Err(bad(reason)),
            }
        } else {
            bytes.to_vec()
        };
        let (rest, csr) = X509CertificationRequest::from_der(&der)
            .map_err(|e| bad(format!("not a PKCS#10 certificate request: {}", e)))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the request".into()));
        }
        csr.verify_signature().map_err(|e| {
            bad(format!("its self-signature does not verify ({}); RSA keys need at least 2048 bits", e))
        })?;
        let info = &csr.certification_request_info;
        let params = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(der.as_slice()))
            .map_err(|e| bad(format!("it cannot be turned into a certificate: {}", e)))?;
        Ok(Request { csr: params, subject: info.subject.as_raw().to_vec(), spki: info.subject_pki.raw.to_vec() })
    }

    /// The certificate for this request: its subject and key, our serial and
    /// validity, no extensions whatever the request asked for. Refused when rcgen,
    /// which re-encodes subject and key from their parsed form, would not
    /// reproduce them byte for byte (e.g. a name with a repeated attribute type).
    fn issue(&self, issuer: &Issuer<'_, &KeyPair>, serial: u64, now: OffsetDateTime) -> Result<Vec<u8>, PkiError> {
        let mut csr = self.csr.clone();
        csr.params = certificate_params(csr.params.distinguished_name, serial, now)?;
        let der = csr.signed_by(issuer).map_err(signing_failed)?.der().to_vec();
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| PkiError::Crypto { reason: format!("issued certificate does not parse: {}", e) })?;
        let bad = |what: &str| PkiError::BadRequest {
            reason: format!("its {} cannot be copied exactly into a certificate", what),
        };
        if cert.subject().as_raw() != self.subject.as_slice() {
            return Err(bad("subject"));
        }
        if cert.public_key().raw != self.spki.as_slice() {
            return Err(bad("public key"));
        }
        Ok(der)
    }
}

// ---------------------------------------------------------------------------
// Certificate construction
// ---------------------------------------------------------------------------

/// rcgen parameters shared by every certificate we issue: subject, serial and
/// validity; no extensions (rcgen's defaults add none to a non-CA certificate
/// without alternative names or key usages, and no authority key identifier).
fn certificate_params(
    subject: DistinguishedName,
    serial: u64,
    now: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = now;
    params.not_after = add_months(now, VALIDITY_MONTHS)
        .ok_or_else(|| PkiError::Crypto { reason: format!("{} + {} months is out of range", now, VALIDITY_MONTHS) })?;
    Ok(params)
}

/// `CN=<cn>` as NSS writes it: one attribute, PrintableString.
fn name_cn(cn: &str) -> Result<DistinguishedName, PkiError> {
    let value = rcgen::string::PrintableString::try_from(cn)
        .map_err(|e| PkiError::Crypto { reason: format!("CN {:?}: {}", cn, e) })?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, DnValue::PrintableString(value));
    Ok(name)
}

fn signing_failed(e: rcgen::Error) -> PkiError {
    PkiError::Crypto { reason: format!("signing: {}", e) }
}

/// The same day and time `months` later, as NSS `certutil -v` counts: a day the
/// target month lacks rolls over into the next (29 Feb 2000 + 1200 months is
/// 1 Mar 2100). `None` outside the `time` crate's range.
fn add_months(t: OffsetDateTime, months: i64) -> Option<OffsetDateTime> {
    let index = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1 + months;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let date = first.checked_add(Duration::days(i64::from(t.day()) - 1))?;
    Some(t.replace_date(date))
}

/// `qnetd-cacert.crt`: a short human-readable header (in the spirit of the C
/// tool's `certutil -L` dump, never containing `-----`) followed by the PEM block,
/// which is all `certutil -A` on the nodes uses.
fn ca_export_text(ca: &CertificateParams, ca_key: &KeyPair, serial: u64, ca_der: &[u8]) -> String {
    let date = |t: OffsetDateTime| {
        let format = time::macros::format_description!(
            "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] [year]"
        );
        t.format(format).unwrap_or_else(|e| format!("({})", e))
    };
    let key_id: Vec<String> = ca.key_identifier(ca_key).iter().map(|b| format!("{:02x}", b)).collect();
    format!(
        "Certificate:\n\
         \x20   Data:\n\
         \x20       Version: 3 (0x2)\n\
         \x20       Serial Number: {serial} ({serial:#x})\n\
         \x20       Signature Algorithm: X9.62 ECDSA signature with SHA-256\n\
         \x20       Issuer: \"CN={cn}\"\n\
         \x20       Validity:\n\
         \x20           Not Before: {nb}\n\
         \x20           Not After : {na}\n\
         \x20       Subject: \"CN={cn}\"\n\
         \x20       Subject Public Key Info:\n\
         \x20           Public Key Algorithm: X9.62 elliptic curve public key (P-256)\n\
         \x20       Signed Extensions:\n\
         \x20           Name: Certificate Subject Key ID\n\
         \x20           Data:\n\
         \x20               {key_id}\n\
         \n\
         \x20           Name: Certificate Basic Constraints\n\
         \x20           Critical: True\n\
         \x20           Data: Is a CA with a maximum path length of 0.\n\
         \n\
         {pem}",
        serial = serial,
        cn = CA_CN,
        nb = date(ca.not_before),
        na = date(ca.not_after),
        key_id = key_id.join(":"),
        pem = pem_encode("CERTIFICATE", ca_der),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use x509_parser::der_parser::asn1_rs::Tag;
    use x509_parser::prelude::ParsedExtension;

    /// `qdevice-net-node.crq` written by the real `corosync-qdevice-net-certutil -r
    /// -n labcluster` (NSS 3.87): DER PKCS#10, RSA 2048, SHA-256, here in PEM armour.
    const REAL_CRQ_PEM: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIICWjCCAUICAQAwFTETMBEGA1UEAxMKbGFiY2x1c3RlcjCCASIwDQYJKoZIhvcN
AQEBBQADggEPADCCAQoCggEBAL+xB2MNk2HIS0FAl8ezLmPulLHrNkhFaoamil+4
cACAgp7V2ZtqcfO+JOtqG/4ZhnB65+D2Va0Ymj/4+V7lEFxaNKvHytYGWfCy1Xzq
TlrRMnZle9SPaVYwOEWdHNThdH1r/ftJMcXKC+p4jaaFgmCMyBMEGEaZ8M611XfS
Y90ivdcBfEj2UgRAssToW+1ZahSe+yWGi7faC5CULODPBhFnHG4h0XIk2zTUH7Ur
x6DykCtXvBmMVfepDsyuDzrH1asoqhrQ4yd+FJkUJfcdH5BtdVqDRMQZ5a3VI1UY
kQg+FP5Sx/4LsIw6NXuczXhzUkZPj0bDeX4q5qzrkqYCyc0CAwEAAaAAMA0GCSqG
SIb3DQEBCwUAA4IBAQBMhQ5WHxw8DIuX/8GX4u+VenA2DtYvFCci50OYEAGODMeJ
fnclh/yyAaYHSAs1vyit4SfdCOPPb885D6AbOmIkYbeiOVtW+VRzunKPg5HJXZ6Q
kCedlX7xwJvDRFd8AsOfH/9fAO0y62IweicSnmxKc6YuyTialAc7rBNiRrHga4XX
fNVsR29UnkboS1wWTVybn10clvy7q9kA0Y5ujFDJv4acgHV82/i7+jFoekbA97BR
Xg9t8azxX0yp1tdpyav1hK4OqUjxyJbNYxmd/LHoJiN8xNa+QXalxdDNS7z3vxsL
qN61dSVa9mL1qv4jDJm4LSzW7Y2RpOIXHTRB2sEd
-----END CERTIFICATE REQUEST-----
";

    fn real_crq() -> Vec<u8> {
        pem::parse(REAL_CRQ_PEM).expect("test constant").into_contents()
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "qnetd-pki-{}-{}-{}",
                tag,
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        /// A store path that does not exist yet.
        fn store(&self) -> PathBuf {
            self.0.join("nssdb")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn serial_of(der: &[u8]) -> u64 {
        let (_, c) = X509Certificate::from_der(der).unwrap();
        c.raw_serial().iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn ecdsa_csr(cn: &str) -> rcgen::CertificateSigningRequest {
        let kp = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.serialize_request(&kp).unwrap()
    }

    #[test]
    fn fresh_store_serials_follow_the_c_tool() {
        let t = TempDir::new("serial");
        let dir = t.store();
        let (id, created) = ensure_initialized(&dir).unwrap();
        assert!(created);
        assert_eq!(serial_of(&id.ca_cert_der), 101);
        assert_eq!(serial_of(&id.server_cert_der), 102);
        assert_eq!(fs::read_to_string(dir.join(SERIAL_FILE)).unwrap(), "102\n");

        let p = sign_request(&dir, &real_crq(), "labcluster", true).unwrap();
        assert_eq!(p, dir.join("cluster-labcluster.crt"));
        assert_eq!(serial_of(&fs::read(&p).unwrap()), 103);
        let p2 = sign_request(&dir, ecdsa_csr("other").der(), "other", true).unwrap();
        assert_eq!(serial_of(&fs::read(&p2).unwrap()), 104);
        assert_eq!(fs::read_to_string(dir.join(SERIAL_FILE)).unwrap(), "104\n");

        // Second start: same identity, not created.
        let (again, created) = ensure_initialized(&dir).unwrap();
        assert!(!created);
        assert_eq!(again, id);
        assert_eq!(load(&dir).unwrap(), id);
    }

    #[test]
    fn certificates_have_the_c_tool_shape() {
        let t = TempDir::new("shape");
        let dir = t.store();
        let id = init(&dir, true).unwrap();
        let (_, ca) = X509Certificate::from_der(&id.ca_cert_der).unwrap();
        let (_, srv) = X509Certificate::from_der(&id.server_cert_der).unwrap();
        assert_eq!(ca.version().0, 2);
        assert_eq!(srv.version().0, 2);
        assert_eq!(ca.subject().to_string(), "CN=QNet CA");
        assert_eq!(ca.issuer().to_string(), "CN=QNet CA");
        assert_eq!(srv.subject().to_string(), "CN=Qnetd Server");
        assert_eq!(srv.issuer().as_raw(), ca.subject().as_raw());
        // One PrintableString CN in every name, as NSS writes.
        for name in [ca.subject(), ca.issuer(), srv.subject(), srv.issuer()] {
            let attrs: Vec<_> = name.iter_attributes().collect();
            assert_eq!(attrs.len(), 1, "{}", name);
            assert_eq!(attrs[0].attr_value().header.tag(), Tag::PrintableString, "{}", name);
        }
        // CA: critical basicConstraints CA:true pathlen 0, and the non-critical
        // subjectKeyIdentifier rcgen always writes into a CA; nothing else.
        assert_eq!(ca.extensions().len(), 2);
        for ext in ca.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    assert!(ext.critical);
                    assert!(bc.ca);
                    assert_eq!(bc.path_len_constraint, Some(0));
                }
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    assert!(!ext.critical);
                    assert_eq!(id.0.len(), 20);
                }
                other => panic!("unexpected extension {:?}", other),
            }
        }
        // Server: none at all (no authority key identifier either).
        assert!(srv.extensions().is_empty());
        ca.verify_signature(None).unwrap();
        srv.verify_signature(Some(ca.public_key())).unwrap();
        // 1200 months, from now.
        for c in [&ca, &srv] {
            let (nb, na) = (c.validity().not_before.to_datetime(), c.validity().not_after.to_datetime());
            assert_eq!(add_months(nb, 1200), Some(na));
            assert_eq!(na.year() - nb.year(), 100);
            assert!((OffsetDateTime::now_utc() - nb).whole_seconds().abs() < 3600);
        }
        let (ca_exp, srv_exp) = cert_expiry(&dir).unwrap();
        assert_eq!(ca_exp, ca.validity().not_after.timestamp());
        assert_eq!(srv_exp, srv.validity().not_after.timestamp());
        // The export: text first, then the CA as PEM.
        let export = fs::read(dir.join(CA_EXPORT_FILE)).unwrap();
        assert!(export.starts_with(b"Certificate:\n"));
        let text = String::from_utf8(export.clone()).unwrap();
        assert!(text.contains("Serial Number: 101 (0x65)\n"), "{}", text);
        let year = ca.validity().not_after.to_datetime().year();
        assert!(text.lines().any(|l| l.contains("Not After : ") && l.ends_with(&year.to_string())), "{}", text);
        assert_eq!(pem_decode(&export, &["CERTIFICATE"]).unwrap().unwrap(), id.ca_cert_der);
        // Server names as the session will see them.
        let names = cert_names(&id.server_cert_der).unwrap();
        assert_eq!(names.common_names, vec!["Qnetd Server".to_string()]);
        assert!(names.dns_names.is_empty());
    }

    #[test]
    fn files_get_modes_and_owner_by_the_documented_rules() {
        let t = TempDir::new("perm");
        let dir = t.store();
        if is_root() {
            // Root hands everything to the owner of the directory's parent, then
            // of the directory (C rule), keys group-readable but never writable.
            std::os::unix::fs::chown(&t.0, Some(4242), Some(4343)).unwrap();
        }
        init(&dir, true).unwrap();
        let key_mode = if is_root() { 0o640 } else { 0o600 };
        assert_eq!(mode(&dir), 0o770);
        assert_eq!(mode(&dir.join(CA_KEY_FILE)), key_mode);
        assert_eq!(mode(&dir.join(SERVER_KEY_FILE)), key_mode);
        assert_eq!(mode(&dir.join(CA_CERT_FILE)), 0o660);
        assert_eq!(mode(&dir.join(SERVER_CERT_FILE)), 0o660);
        assert_eq!(mode(&dir.join(SERIAL_FILE)), 0o660);
        assert_eq!(mode(&dir.join(MARKER_FILE)), 0o660);
        assert_eq!(mode(&dir.join(CA_EXPORT_FILE)), 0o644);
        let p = sign_request(&dir, &real_crq(), "g", false).unwrap();
        assert_eq!(mode(&p), 0o640, "-G: no group write");
        assert_eq!(mode(&dir.join(SERIAL_FILE)), 0o640);
        let expect_owner = if is_root() {
            (4242, 4343)
        } else {
            // SAFETY: no preconditions.
            unsafe { (libc::geteuid(), libc::getegid()) }
        };
        for entry in fs::read_dir(&dir).unwrap() {
            let m = entry.unwrap().metadata().unwrap();
            assert_eq!((m.uid(), m.gid()), expect_owner);
        }
        let m = fs::metadata(&dir).unwrap();
        assert_eq!((m.uid(), m.gid()), expect_owner);

        // The daemon's own initialisation: -G variant.
        let t2 = TempDir::new("perm2");
        let dir2 = t2.store();
        ensure_initialized(&dir2).unwrap();
        assert_eq!(mode(&dir2), 0o750);
        assert_eq!(mode(&dir2.join(SERVER_KEY_FILE)), key_mode);
        assert_eq!(mode(&dir2.join(SERVER_CERT_FILE)), 0o640);
    }

    #[test]
    fn der_and_pem_requests_give_the_same_certificate_content() {
        let t = TempDir::new("csr");
        let dir = t.store();
        let id = init(&dir, true).unwrap();
        let (_, ca) = X509Certificate::from_der(&id.ca_cert_der).unwrap();
        let crq = real_crq();
        let (_, req) = X509CertificationRequest::from_der(&crq).unwrap();

        let new_armour = pem_encode("NEW CERTIFICATE REQUEST", &crq).replace('\n', "\r\n");
        let plain_armour = format!("some text first\n{}", pem_encode("CERTIFICATE REQUEST", &crq));
        for (name, input) in
            [("der", crq.clone()), ("new", new_armour.into_bytes()), ("plain", plain_armour.into_bytes())]
        {
            let p = sign_request(&dir, &input, name, true).unwrap();
            let der = fs::read(&p).unwrap();
            let (rest, c) = X509Certificate::from_der(&der).unwrap();
            assert!(rest.is_empty(), "{}: DER file with nothing after", name);
            assert_eq!(c.version().0, 2);
            assert_eq!(c.subject().as_raw(), req.certification_request_info.subject.as_raw());
            assert_eq!(c.public_key().raw, req.certification_request_info.subject_pki.raw);
            assert_eq!(c.issuer().as_raw(), ca.subject().as_raw());
            assert!(c.extensions().is_empty(), "{}: no extensions", name);
            c.verify_signature(Some(ca.public_key())).unwrap();
            let names = cert_names(&der).unwrap();
            assert_eq!(names.common_names, vec!["labcluster".to_string()]);
        }
        // A request asking for extensions gets none of them.
        let kp = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let csr = params.serialize_request(&kp).unwrap();
        let p = sign_request(&dir, csr.pem().unwrap().as_bytes(), "ext", true).unwrap();
        let der = fs::read(p).unwrap();
        let (_, c) = X509Certificate::from_der(&der).unwrap();
        assert!(c.extensions().is_empty());
    }

    #[test]
    fn requests_with_a_bad_signature_or_garbage_are_rejected() {
        let t = TempDir::new("badcsr");
        let dir = t.store();
        init(&dir, true).unwrap();
        let good = real_crq();
        let mut bad_sig = good.clone();
        let last = bad_sig.len() - 1;
        bad_sig[last] ^= 0x01;
        let mut bad_subject = good.clone();
        // "labcluster" -> "mabcluster" inside the signed part.
        let pos = bad_subject.windows(10).position(|w| w == b"labcluster").unwrap();
        bad_subject[pos] = b'm';
        for (what, input) in [
            ("signature", bad_sig),
            ("subject", bad_subject),
            ("garbage", b"hello".to_vec()),
            ("truncated", good[..good.len() - 10].to_vec()),
            ("pem-without-request", pem_encode("CERTIFICATE", &good).into_bytes()),
        ] {
            match sign_request(&dir, &input, "x", true) {
                Err(e @ PkiError::BadRequest { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.starts_with("certificate request rejected: "), "{}", msg);
                    assert!(!msg.contains('\n'));
                }
                other => panic!("{}: expected BadRequest, got {:?}", what, other),
            }
        }
        assert!(!dir.join("cluster-x.crt").exists());
        // Nothing was consumed from the serial sequence.
        assert_eq!(fs::read_to_string(dir.join(SERIAL_FILE)).unwrap(), "102\n");
        assert!(matches!(sign_request(&dir, &good, "a/b", true), Err(PkiError::BadClusterName { .. })));
    }

    /// Made with `openssl req -new -subj "/OU=a/OU=b/CN=dup"` (ECDSA P-256): valid,
    /// but rcgen keeps one value per attribute type, so it would drop `OU=a`.
    const REPEATED_OU_CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIHiMIGIAgEAMCYxCjAIBgNVBAsMAWExCjAIBgNVBAsMAWIxDDAKBgNVBAMMA2R1
cDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJlin8jXO5skXdWWqo/fsS0ukyJV
YszrCQygQXsqvb9AHd83/PQXrNm5eiT0wVpk5mvszwb1hZcLMEaau445VMOgADAK
BggqhkjOPQQDAgNJADBGAiEAxbuDCfRFITqetlo5gAdUgJpMHrTUzeme+fgF+EMc
eAECIQDwLHMH3StdXQt21gn7MlQ4QFLYJVd4Zb+c3G3GGtTN/A==
-----END CERTIFICATE REQUEST-----
";

    #[test]
    fn a_subject_rcgen_cannot_reproduce_is_refused_without_using_a_serial() {
        let t = TempDir::new("dupou");
        let dir = t.store();
        init(&dir, true).unwrap();
        match sign_request(&dir, REPEATED_OU_CSR.as_bytes(), "dup", true) {
            Err(e @ PkiError::BadRequest { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "certificate request rejected: its subject cannot be copied exactly into a certificate"
                )
            }
            other => panic!("expected BadRequest, got {:?}", other),
        }
        assert!(!dir.join("cluster-dup.crt").exists());
        assert_eq!(fs::read_to_string(dir.join(SERIAL_FILE)).unwrap(), "102\n");
        // The next good request gets the next serial.
        let p = sign_request(&dir, &real_crq(), "labcluster", true).unwrap();
        assert_eq!(serial_of(&fs::read(p).unwrap()), 103);
    }

    #[test]
    fn a_c_qnetd_nss_database_is_detected_and_left_alone() {
        let t = TempDir::new("nss");
        let dir = t.store();
        fs::create_dir_all(&dir).unwrap();
        for f in ["cert9.db", "key4.db"] {
            fs::write(dir.join(f), b"SQLite format 3\0").unwrap();
        }
        fs::write(dir.join("pkcs11.txt"), b"library=\nname=NSS Internal PKCS #11 Module\n").unwrap();
        fs::write(dir.join("serial.txt"), b"103\n").unwrap();
        let before: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();

        let err = ensure_initialized(&dir).unwrap_err();
        assert!(matches!(err, PkiError::ForeignNssDatabase { .. }), "{:?}", err);
        let msg = err.to_string();
        assert!(!msg.contains('\n'));
        for needle in [dir.to_str().unwrap(), "pk12util", "mv ", "enrol every cluster"] {
            assert!(msg.contains(needle), "{:?} lacks {:?}", msg, needle);
        }
        assert!(matches!(load(&dir), Err(PkiError::ForeignNssDatabase { .. })));
        assert!(matches!(init(&dir, true), Err(PkiError::AlreadyInitialized { .. })));
        assert!(matches!(sign_request(&dir, &real_crq(), "c", true), Err(PkiError::ForeignNssDatabase { .. })));
        let after: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(before.len(), after.len(), "nothing written: {:?}", after);
        assert_eq!(fs::read(dir.join("serial.txt")).unwrap(), b"103\n");

        // Only the old-format database: same.
        let t2 = TempDir::new("nss8");
        let dir2 = t2.store();
        fs::create_dir_all(&dir2).unwrap();
        fs::write(dir2.join("cert8.db"), b"x").unwrap();
        assert!(matches!(ensure_initialized(&dir2), Err(PkiError::ForeignNssDatabase { .. })));
    }

    #[test]
    fn a_half_finished_init_is_redone_from_scratch() {
        let t = TempDir::new("half");
        let dir = t.store();
        let first = init(&dir, true).unwrap();
        // Simulate a crash just before the marker, with a torn temp file around.
        fs::remove_file(dir.join(MARKER_FILE)).unwrap();
        fs::write(dir.join(".qnetd-server.pem.99999.tmp"), b"-----BEGIN CERT").unwrap();
        assert!(matches!(load(&dir), Err(PkiError::NotInitialized { .. })));
        assert!(matches!(cert_expiry(&dir), Err(PkiError::NotInitialized { .. })));
        assert!(matches!(sign_request(&dir, &real_crq(), "c", true), Err(PkiError::NotInitialized { .. })));

        let (second, created) = ensure_initialized(&dir).unwrap();
        assert!(created);
        assert_ne!(second.ca_cert_der, first.ca_cert_der);
        assert_ne!(second.server_key_der, first.server_key_der);
        // Serials continue: no two CA certificates ever share one.
        assert_eq!(serial_of(&second.ca_cert_der), 103);
        assert_eq!(serial_of(&second.server_cert_der), 104);
        assert!(!dir.join(".qnetd-server.pem.99999.tmp").exists());
        assert_eq!(load(&dir).unwrap(), second);

        // A crash after only some files: same recovery.
        fs::remove_file(dir.join(MARKER_FILE)).unwrap();
        fs::remove_file(dir.join(SERVER_CERT_FILE)).unwrap();
        fs::remove_file(dir.join(CA_EXPORT_FILE)).unwrap();
        let third = init(&dir, true).unwrap();
        assert_eq!(load(&dir).unwrap(), third);
        assert!(matches!(init(&dir, true), Err(PkiError::AlreadyInitialized { .. })));
    }

    #[test]
    fn load_rejects_an_inconsistent_store() {
        let t = TempDir::new("mismatch");
        let dir = t.store();
        init(&dir, true).unwrap();
        // Server key replaced by the CA key: key no longer matches the certificate.
        fs::copy(dir.join(CA_KEY_FILE), dir.join(SERVER_KEY_FILE)).unwrap();
        match load(&dir) {
            Err(PkiError::Corrupt { path, .. }) => assert_eq!(path, dir.join(SERVER_KEY_FILE)),
            other => panic!("{:?}", other),
        }
        // Server certificate from another store: not signed by this CA.
        let t2 = TempDir::new("mismatch2");
        let dir2 = t2.store();
        init(&dir2, true).unwrap();
        fs::copy(dir2.join(SERVER_CERT_FILE), dir.join(SERVER_CERT_FILE)).unwrap();
        fs::copy(dir2.join(SERVER_KEY_FILE), dir.join(SERVER_KEY_FILE)).unwrap();
        match load(&dir) {
            Err(e @ PkiError::Corrupt { .. }) => {
                assert!(e.to_string().contains("not signed by the CA"))
            }
            other => panic!("{:?}", other),
        }
        // A serial file that is not a number stops signing (nothing is guessed).
        fs::write(dir2.join(SERIAL_FILE), b"abc\n").unwrap();
        match sign_request(&dir2, &real_crq(), "c", true) {
            Err(PkiError::Corrupt { path, .. }) => assert_eq!(path, dir2.join(SERIAL_FILE)),
            other => panic!("{:?}", other),
        }
        assert!(!dir2.join("cluster-c.crt").exists());
    }

    #[test]
    fn missing_directory_is_not_initialized() {
        let t = TempDir::new("missing");
        let dir = t.store();
        assert!(matches!(load(&dir), Err(PkiError::NotInitialized { .. })));
        assert!(matches!(sign_request(&dir, &real_crq(), "c", true), Err(PkiError::NotInitialized { .. })));
        assert!(!dir.exists(), "read paths create nothing");
        assert!(!is_initialized(&dir).unwrap());
    }

    #[test]
    fn cert_names_reads_cn_and_san_dns() {
        let kp = KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["node.example".to_string(), "10.0.0.1".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "MyCluster");
        let cert = params.self_signed(&kp).unwrap();
        let names = cert_names(cert.der()).unwrap();
        assert_eq!(names.dns_names, vec!["node.example".to_string()]);
        assert_eq!(names.common_names, vec!["MyCluster".to_string()]);
        assert!(matches!(cert_names(b"\x30\x03junk"), Err(PkiError::BadCertificate { .. })));
    }

    #[test]
    fn pem_blocks_are_found_among_text_and_round_trip() {
        let der: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        let block = pem_encode("CERTIFICATE", &der);
        assert!(block.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(block.ends_with("\n-----END CERTIFICATE-----\n"));
        assert!(block.lines().all(|l| l.len() <= 64) && !block.contains('\r'));
        let mixed = format!("Certificate:\n  text\n{}{}", pem_encode("OTHER", b"x"), block.replace('\n', "\r\n"));
        assert_eq!(pem_decode(mixed.as_bytes(), &["CERTIFICATE"]).unwrap(), Some(der));
        assert_eq!(pem_decode(mixed.as_bytes(), &["PRIVATE KEY"]).unwrap(), None);
        assert_eq!(pem_decode(b"no armour at all", &["CERTIFICATE"]).unwrap(), None);
        assert!(pem_decode(b"-----BEGIN X-----\nAQ!D\n-----END X-----\n", &["X"]).is_err());
        assert!(pem_decode(b"-----BEGIN X-----\nAQID\n-----END Y-----\n", &["X"]).is_err());
        // The constant decodes to the 606-byte file the C tool wrote.
        assert_eq!(real_crq().len(), 606);
    }

    #[test]
    fn validity_end_is_the_same_time_1200_months_later() {
        let t = |y, m, d, h, mi, sec| {
            Date::from_calendar_date(y, Month::try_from(m).unwrap(), d)
                .unwrap()
                .with_hms(h, mi, sec)
                .unwrap()
                .assume_utc()
        };
        // The reference CA's notBefore and notAfter.
        assert_eq!(add_months(t(2026, 11, 22, 3, 31, 35), 1200), Some(t(2126, 11, 22, 3, 31, 35)));
        // 2100 is not a leap year: 29 February rolls over to 1 March.
        assert_eq!(add_months(t(2000, 2, 29, 0, 0, 0), 1200), Some(t(2100, 3, 1, 0, 0, 0)));
        assert_eq!(add_months(t(2025, 1, 31, 12, 0, 0), 1), Some(t(2025, 3, 3, 12, 0, 0)));
        assert_eq!(add_months(t(2025, 12, 15, 0, 0, 1), 1), Some(t(2026, 1, 15, 0, 0, 1)));
        assert_eq!(add_months(t(2025, 1, 15, 0, 0, 0), -13), Some(t(2023, 12, 15, 0, 0, 0)));
        assert_eq!(add_months(t(9999, 12, 1, 0, 0, 0), 1), None);
    }
}
