//! Helpers that drive the real Debian qdevice/NSS tools against a qnetd store,
//! shared by the `certs_*` integration tests and reusable by daemon end-to-end
//! tests (`mod certs_common;`).
//!
//! The C client tool has a fixed database path (`/etc/corosync/qdevice/net/nssdb`),
//! so every call runs inside a private mount namespace (`unshare -m`) in which a
//! temporary directory is bind-mounted over `/etc/corosync`: the host is never
//! touched and several "nodes" can coexist as directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Nickname the qdevice daemon uses for its client certificate.
pub const CLUSTER_NICKNAME: &str = "Cluster Cert";
/// Nickname of the imported QNetd CA in node databases.
pub const CA_NICKNAME: &str = "QNet CA";

/// Why the real-tool tests cannot run here, if they cannot.
pub fn real_tools_missing() -> Option<String> {
    for tool in ["corosync-qdevice-net-certutil", "certutil", "pk12util", "unshare", "mount"] {
        if which(tool).is_none() {
            return Some(format!("{} is not installed (packages corosync-qdevice, libnss3-tools)", tool));
        }
    }
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: cannot create mount namespaces for the fixed NSS paths".into());
    }
    match Command::new("unshare").args(["-m", "true"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("unshare -m fails here: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Some(format!("unshare -m fails here: {}", e)),
    }
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Run `cmd`, returning stdout, or an error carrying the command and both outputs.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{:?}: {}", cmd, e))?;
    check(cmd, out)
}

fn check(cmd: &Command, out: Output) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{:?} failed ({}):\nstdout: {}\nstderr: {}",
            cmd,
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Run a `sh -e` script with `etc` bind-mounted over `/etc/corosync` in a
/// private mount namespace. `$1`, `$2`, ... are `args`.
pub fn in_corosync_ns(etc: &Path, script: &str, args: &[&str]) -> Result<String, String> {
    std::fs::create_dir_all(etc).map_err(|e| format!("{}: {}", etc.display(), e))?;
    let full = format!("mount --bind \"$QNETD_TEST_ETC\" /etc/corosync\n{}", script);
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-ec", &full, "sh"]).args(args).env("QNETD_TEST_ETC", etc);
    run(&mut cmd)
}

/// The node database directory inside a node's `/etc/corosync` replacement.
pub fn node_db(etc: &Path) -> PathBuf {
    etc.join("qdevice/net/nssdb")
}

/// Last `<prefix> <path>` line of a tool's stdout (what pcs parses).
pub fn stored_path(stdout: &str, prefix: &str) -> Option<PathBuf> {
    stdout.lines().rev().find_map(|l| l.strip_prefix(prefix)).map(PathBuf::from)
}

/// A node enrolled with the real client tool.
pub struct EnrolledNode {
    /// Replacement for the node's `/etc/corosync` (bind-mount it there, or point
    /// qdevice's `net_nss_db_dir` at [`node_db`] of it).
    pub etc: PathBuf,
    /// `qdevice-net-node.p12`: key + cluster certificate + CA, empty password.
    pub p12: PathBuf,
    /// `cluster-<name>.crt` as our signer wrote it.
    pub cluster_cert: PathBuf,
}

/// Enrol the first node of cluster `cluster` exactly as an operator (or
/// `corosync-qdevice-net-certutil -Q`) does: `-i -c qnetd-cacert.crt`,
/// `-r -n <cluster>`, our `-s` (through `sign`, which gets the request path and
/// the cluster name and returns the certificate path), then `-M -c <crt>`.
pub fn enrol_first_node(
    ca_export: &Path,
    cluster: &str,
    etc: &Path,
    sign: &mut dyn FnMut(&Path, &str) -> Result<PathBuf, String>,
) -> Result<EnrolledNode, String> {
    let ca = ca_export.to_str().ok_or("non-UTF-8 path")?;
    in_corosync_ns(etc, "corosync-qdevice-net-certutil -i -c \"$1\"", &[ca])?;
    let out = in_corosync_ns(etc, "corosync-qdevice-net-certutil -r -n \"$1\"", &[cluster])?;
    let crq_in_ns =
        stored_path(&out, "Certificate request stored in ").ok_or_else(|| format!("no request path in: {}", out))?;
    let crq = etc.join(
        crq_in_ns
            .strip_prefix("/etc/corosync")
            .map_err(|_| format!("request outside /etc/corosync: {}", crq_in_ns.display()))?,
    );
    let cluster_cert = sign(&crq, cluster)?;
    let crt = cluster_cert.to_str().ok_or("non-UTF-8 path")?;
    let out = in_corosync_ns(etc, "corosync-qdevice-net-certutil -M -c \"$1\"", &[crt])?;
    let p12_in_ns = stored_path(&out, "Certificate stored in ").ok_or_else(|| format!("no p12 path in: {}", out))?;
    let p12 = etc.join(p12_in_ns.strip_prefix("/etc/corosync").map_err(|_| "p12 outside /etc/corosync")?);
    Ok(EnrolledNode { etc: etc.to_path_buf(), p12, cluster_cert })
}

/// Another node of the same cluster: `-i -c qnetd-cacert.crt`, then `-m -c <p12>`.
pub fn enrol_other_node(ca_export: &Path, p12: &Path, etc: &Path) -> Result<(), String> {
    let ca = ca_export.to_str().ok_or("non-UTF-8 path")?;
    let p12 = p12.to_str().ok_or("non-UTF-8 path")?;
    in_corosync_ns(etc, "corosync-qdevice-net-certutil -i -c \"$1\"", &[ca])?;
    in_corosync_ns(etc, "corosync-qdevice-net-certutil -m -c \"$1\"", &[p12])?;
    Ok(())
}

/// `certutil -V -e` (with `-e`: the signature too, as a TLS peer check does; plain
/// `-V` does not check the leaf signature) of `nickname` for `usage` (C = SSL
/// client, V = SSL server) in an
/// NSS database; Ok(stdout) when NSS calls the certificate valid.
pub fn nss_verify(db: &Path, nickname: &str, usage: &str) -> Result<String, String> {
    run(Command::new("certutil")
        .args(["-V", "-e", "-d"])
        .arg(format!("sql:{}", db.display()))
        .args(["-n", nickname, "-u", usage]))
}

/// `certutil -L` of a database: nickname and trust lines.
pub fn nss_list(db: &Path) -> Result<String, String> {
    run(Command::new("certutil").args(["-L", "-d"]).arg(format!("sql:{}", db.display())))
}

/// A scratch NSS database trusting `ca_file` as the qdevice client does
/// (`CT,c,c`, nickname "QNet CA").
pub fn scratch_db_trusting(db: &Path, ca_file: &Path) -> Result<(), String> {
    std::fs::create_dir_all(db).map_err(|e| format!("{}: {}", db.display(), e))?;
    let d = format!("sql:{}", db.display());
    run(Command::new("certutil").args(["-N", "--empty-password", "-d", &d]))?;
    run(Command::new("certutil").args(["-A", "-d", &d, "-n", CA_NICKNAME, "-t", "CT,c,c", "-i"]).arg(ca_file))?;
    Ok(())
}

/// Import a certificate (DER or PEM) without trust under `nickname`.
pub fn nss_add_cert(db: &Path, nickname: &str, cert_file: &Path) -> Result<(), String> {
    let d = format!("sql:{}", db.display());
    run(Command::new("certutil").args(["-A", "-d", &d, "-n", nickname, "-t", ",,", "-i"]).arg(cert_file))?;
    Ok(())
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "qnetd-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("QNETD_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
