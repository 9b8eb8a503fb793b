//! Shared support for the daemon integration tests: a throw-away PKI made with
//! rcgen, and a `qnetd run` child process on 127.0.0.1 with private paths.
#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// Generous bound for anything that should happen "at once"; only a failing
/// daemon ever waits this long.
pub const WAIT: Duration = Duration::from_secs(10);

static N: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir (removed by `Daemon`'s drop).
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "qnetd-daemon-test-{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A CA like corosync-qnetd-certutil's (CN=QNet CA, CA:true pathlen 0) and a
/// server certificate CN=Qnetd Server without SAN, ECDSA P-256.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    pub server_cert: Vec<u8>,
    pub server_key: Vec<u8>,
    server_cert_pem: String,
    server_key_pem: String,
}

impl Pki {
    pub fn new(ca_cn: &str) -> Pki {
        let mut p = CertificateParams::new(Vec::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, ca_cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "Qnetd Server");
        let cert = p.signed_by(&key, &ca).unwrap();
        Pki {
            ca,
            server_cert: cert.der().to_vec(),
            server_key: key.serialize_der(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }

    pub fn ca_der(&self) -> Vec<u8> {
        self.ca.der().to_vec()
    }

    /// Put the server identity where the daemon looks for it: a complete
    /// certificate store in the pki module's layout (so the daemon loads it
    /// instead of creating a CA of its own).
    pub fn install(&self, data_dir: &Path) {
        use qnetd::pki;
        std::fs::create_dir_all(data_dir).unwrap();
        std::fs::write(data_dir.join(pki::CA_CERT_FILE), self.ca.pem()).unwrap();
        std::fs::write(data_dir.join(pki::SERVER_CERT_FILE), &self.server_cert_pem).unwrap();
        std::fs::write(data_dir.join(pki::SERVER_KEY_FILE), &self.server_key_pem).unwrap();
        std::fs::write(data_dir.join(pki::SERIAL_FILE), "102\n").unwrap();
        std::fs::write(data_dir.join(pki::MARKER_FILE), format!("{}\n", pki::MARKER_MAGIC)).unwrap();
        pki::load(data_dir).expect("the installed store loads");
    }

    /// A cluster certificate as the client tools make it: subject CN=<cn>, no
    /// extensions besides what rcgen always adds. Returns (chain, PKCS#8 key).
    pub fn client_cert(&self, cn: &str) -> (Vec<Vec<u8>>, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &self.ca).unwrap();
        (vec![cert.der().to_vec()], key.serialize_der())
    }

    /// Client TLS config trusting this CA, presenting a certificate for `cn`.
    pub fn client_config(&self, cn: Option<&str>) -> Arc<rustls::ClientConfig> {
        qnetd::tls::client_config(&self.ca_der(), cn.map(|cn| self.client_cert(cn))).unwrap()
    }
}

/// Lines the daemon wrote to stderr, shared with the reader thread.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    cv: Condvar,
}

impl Log {
    /// Wait (bounded) for a line containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self.cv.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

/// A running `qnetd run` child with its own data dir, lock file and socket.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub lock: PathBuf,
    pub sock: PathBuf,
    pub log: Arc<Log>,
    exited: Option<ExitStatus>,
}

/// The binary under test: cargo's build of this tree, or the file named by
/// `QNETD_TEST_BIN` (scripts/ci-static-and-image.sh points it at the static musl
/// build, so the shipped binary passes the same daemon tests).
pub fn qnetd_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| std::env::var("QNETD_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_qnetd").to_string()))
}

/// Arguments of `qnetd run` on 127.0.0.1 (any port) with private paths: the
/// data dir `dir/db`, `lock` and `sock`; then `extra`.
pub fn run_args(dir: &Path, lock: &Path, sock: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut v: Vec<OsString> = ["run", "-l", "127.0.0.1", "-p", "0", "--data-dir"].map(OsString::from).into();
    v.extend([dir.join("db").into(), "--lock-file".into(), lock.into(), "--socket".into(), sock.into()]);
    v.extend(extra.iter().map(OsString::from));
    v
}

/// `qnetd run` (see `run_args`) without systemd's NOTIFY_SOCKET and stdio.
pub fn run_command(dir: &Path, lock: &Path, sock: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(qnetd_bin());
    cmd.args(run_args(dir, lock, sock, extra)).env_remove("NOTIFY_SOCKET").stdin(Stdio::null()).stdout(Stdio::null());
    cmd
}

/// Spawn `qnetd run` with stderr captured line by line.
pub fn spawn_run(dir: &Path, lock: &Path, sock: &Path, args: &[&str]) -> (Child, Arc<Log>) {
    spawn_logged(run_command(dir, lock, sock, args))
}

pub fn spawn_logged(mut cmd: Command) -> (Child, Arc<Log>) {
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn qnetd");
    let log = Arc::new(Log::default());
    let stderr = child.stderr.take().unwrap();
    let l2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[qnetd] {line}");
            l2.lines.lock().unwrap().push(line);
            l2.cv.notify_all();
        }
        l2.lines.lock().unwrap().push("<EOF>".into());
        l2.cv.notify_all();
    });
    (child, log)
}

/// Parse the port out of "QNetd listening on 127.0.0.1:PORT (...".
fn listening_addr(line: &str) -> SocketAddr {
    let rest = line.split("QNetd listening on ").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

impl Daemon {
    /// Start with `pki`'s identity installed (or none, e.g. with `-s off`).
    pub fn start(tag: &str, pki: Option<&Pki>, args: &[&str]) -> Daemon {
        let dir = temp_dir(tag);
        Self::start_in(dir, pki, args)
    }

    pub fn start_in(dir: PathBuf, pki: Option<&Pki>, args: &[&str]) -> Daemon {
        let data_dir = dir.join("db");
        if let Some(p) = pki {
            p.install(&data_dir);
        }
        let lock = dir.join("run/qnetd.pid");
        let sock = dir.join("run/qnetd.sock");
        let (child, log) = spawn_run(&dir, &lock, &sock, args);
        let line = log.wait_for("QNetd listening on", WAIT);
        let mut d =
            Daemon { child, addr: "127.0.0.1:1".parse().unwrap(), dir, data_dir, lock, sock, log, exited: None };
        match line {
            Some(l) => d.addr = listening_addr(&l),
            None => panic!("daemon did not start; log:\n{}", d.log.text()),
        }
        d
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Wait (bounded) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.exited = Some(s);
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Raw IPC request/reply on the daemon's socket.
    pub fn ipc(&self, request: &str) -> String {
        self.ipc_raw(request).unwrap()
    }

    /// Like `ipc`, but reports the errors a close-without-reply can cause.
    pub fn ipc_raw(&self, request: &str) -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.sock)?;
        s.set_read_timeout(Some(WAIT))?;
        s.write_all(request.as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run a future to completion on a fresh smol executor.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f)
}
