//! Syslog output: what an admin reads in the journal when the daemon runs
//! detached (the C corosync-qnetd always logs there, ident `corosync-qnetd`,
//! facility daemon).
//!
//! The machine need not have a syslog daemon: the test binds its own datagram
//! socket and, in a private mount namespace, mounts it over `/dev/log` (on a
//! tmpfs `/dev` holding only bind mounts of the usual device nodes), then runs
//! the daemon there. Skipped, with the reason printed, only when not root or
//! when mount namespaces are unavailable.

mod common;

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{spawn_logged, temp_dir, Log, Pki, WAIT};

fn cannot_run() -> Option<String> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: cannot mount over /dev/log".into());
    }
    match Command::new("unshare").args(["-m", "true"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("unshare -m fails here: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Some(format!("unshare -m fails here: {e}")),
    }
}

/// Run `program args` in a mount namespace whose `/dev/log` is the socket
/// `dir/log` and whose `/run` is an empty tmpfs (so the C default lock file and
/// IPC socket of `corosync-qnetd` are private). The device nodes a process may
/// open are bound back onto the fresh tmpfs `/dev`; `exec` keeps the daemon's
/// PID the child's.
fn spawn_with_dev_log(dir: &Path, program: &Path, args: &[OsString]) -> (Child, Arc<Log>) {
    let script = r#"set -e
d=$1; shift
mount --make-rprivate /
mount -t tmpfs -o mode=755 qnetd-test-run /run
mkdir -p "$d/olddev"
mount --bind /dev "$d/olddev"
mount -t tmpfs -o mode=755 qnetd-test-dev /dev
for f in null zero full random urandom; do
    if [ -e "$d/olddev/$f" ]; then : > "/dev/$f"; mount --bind "$d/olddev/$f" "/dev/$f"; fi
done
: > /dev/log
mount --bind "$d/log" /dev/log
exec "$@"
"#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", script, "sh"]).arg(dir).arg(program).args(args).env_remove("NOTIFY_SOCKET");
    spawn_logged(cmd)
}

/// `qnetd run` arguments for 127.0.0.1 with private paths under `dir`.
fn run_args(dir: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut v: Vec<OsString> = ["run", "-l", "127.0.0.1", "-p", "0", "--data-dir"].map(OsString::from).into();
    v.push(dir.join("db").into());
    v.push("--lock-file".into());
    v.push(dir.join("run/qnetd.pid").into());
    v.push("--socket".into());
    v.push(dir.join("run/qnetd.sock").into());
    v.extend(extra.iter().map(OsString::from));
    v
}

/// Receive datagrams until one contains `needle` or `timeout` passes.
fn wait_datagram(sock: &UnixDatagram, seen: &mut Vec<String>, needle: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    if let Some(m) = seen.iter().find(|m| m.contains(needle)) {
        return Some(m.clone());
    }
    let mut buf = vec![0u8; 8192];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(m.clone());
            if m.contains(needle) {
                return Some(m);
            }
        }
    }
    None
}

#[test]
fn run_with_syslog_logs_start_and_stop_as_corosync_qnetd_facility_daemon() {
    if let Some(why) = cannot_run() {
        eprintln!("SKIPPED: {why}");
        if std::env::var_os("CI").is_some() {
            panic!("CI must run the syslog test: {why}");
        }
        return;
    }
    let dir = temp_dir("syslog");
    let pki = Pki::new("QNet CA");
    pki.install(&dir.join("db"));
    let log_path = dir.join("log");
    let sock = UnixDatagram::bind(&log_path).unwrap();

    let (mut child, log) = spawn_with_dev_log(&dir, Path::new(common::qnetd_bin()), &run_args(&dir, &["--syslog"]));
    let started = log.wait_for("QNetd listening on", WAIT);
    let pid = child.id();
    let mut seen = Vec::new();
    let listening = wait_datagram(&sock, &mut seen, "QNetd listening on", WAIT);
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let stopping = wait_datagram(&sock, &mut seen, "QNetd shutting down", WAIT);
    let status = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    assert!(started.is_some(), "daemon did not start; stderr:\n{}", log.text());
    let listening = listening.unwrap_or_else(|| panic!("no syslog line for the start; got {seen:?}"));
    // <30> = facility daemon (3) * 8 + info (6); the ident carries the PID (LOG_PID).
    assert!(listening.starts_with("<30>"), "priority: {listening}");
    assert!(listening.contains(&format!("corosync-qnetd[{pid}]: ")), "ident and pid: {listening}");
    assert!(stopping.is_some(), "no syslog line for the stop; got {seen:?}");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn run_without_syslog_flag_writes_nothing_there() {
    if let Some(why) = cannot_run() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dir = temp_dir("nosyslog");
    let log_path = dir.join("log");
    let sock = UnixDatagram::bind(&log_path).unwrap();
    let (mut child, log) = spawn_with_dev_log(&dir, Path::new(common::qnetd_bin()), &run_args(&dir, &["-s", "off"]));
    let started = log.wait_for("QNetd listening on", WAIT);
    let mut seen = Vec::new();
    let got = wait_datagram(&sock, &mut seen, "", Duration::from_millis(500));
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(started.is_some(), "daemon did not start; stderr:\n{}", log.text());
    assert_eq!(got, None, "`qnetd run` logs to syslog only with --syslog");
}

/// Called as `corosync-qnetd`, the daemon logs to syslog without being asked,
/// as the C daemon does (with `-f` as well as detached).
#[test]
fn corosync_qnetd_name_logs_to_syslog_by_default() {
    if let Some(why) = cannot_run() {
        eprintln!("SKIPPED: {why}");
        if std::env::var_os("CI").is_some() {
            panic!("CI must run the syslog test: {why}");
        }
        return;
    }
    let dir = temp_dir("cname-syslog");
    let sock = UnixDatagram::bind(dir.join("log")).unwrap();
    let link = dir.join("corosync-qnetd");
    std::os::unix::fs::symlink(common::qnetd_bin(), &link).unwrap();
    // The C command line has no port 0; take a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let args: Vec<OsString> = ["-f", "-s", "off", "-l", "127.0.0.1", "-p", &port].map(OsString::from).into();
    let (mut child, log) = spawn_with_dev_log(&dir, &link, &args);
    let started = log.wait_for("QNetd listening on", WAIT);
    let pid = child.id();
    let mut seen = Vec::new();
    let listening = wait_datagram(&sock, &mut seen, "QNetd listening on", WAIT);
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(started.is_some(), "daemon did not start; stderr:\n{}", log.text());
    let listening = listening.unwrap_or_else(|| panic!("no syslog line for the start; got {seen:?}"));
    assert!(listening.starts_with("<30>"), "priority: {listening}");
    assert!(listening.contains(&format!("corosync-qnetd[{pid}]: ")), "ident and pid: {listening}");
    assert!(listening.contains("/var/run/corosync-qnetd/corosync-qnetd.sock"), "C default paths: {listening}");
    assert_eq!(status.code(), Some(0));
}
