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

use common::{spawn_logged, temp_dir, Log, Pki, WAIT};

/// Why this test cannot run here, if it cannot. Under CI it must run.
fn skip() -> bool {
    // SAFETY: no preconditions.
    let why = if unsafe { libc::geteuid() } != 0 {
        Some("not root: cannot mount over /dev/log".to_string())
    } else {
        match Command::new("unshare").args(["-m", "true"]).output() {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!("unshare -m fails here: {}", String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => Some(format!("unshare -m fails here: {e}")),
        }
    };
    let Some(why) = why else { return false };
    assert!(std::env::var_os("CI").is_none(), "CI must run the syslog tests: {why}");
    eprintln!("SKIPPED: {why}");
    true
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

/// `qnetd run` arguments with private paths under `dir` (as `Daemon` uses them).
fn run_args(dir: &Path, extra: &[&str]) -> Vec<OsString> {
    common::run_args(dir, &dir.join("run/qnetd.pid"), &dir.join("run/qnetd.sock"), extra)
}

/// One daemon run: started, stopped with SIGTERM, and every syslog datagram it sent.
struct Run {
    pid: u32,
    exit: Option<i32>,
    syslog: Vec<String>,
}

/// Start `program args` (see `spawn_with_dev_log`), wait for its listening line on
/// stderr, stop it with SIGTERM. syslog(3) sends each line before returning, so
/// once the process is gone every datagram it sent is already queued on our socket.
fn run_once(dir: &Path, program: &Path, args: &[OsString]) -> Run {
    let sock = UnixDatagram::bind(dir.join("log")).unwrap();
    let (mut child, log) = spawn_with_dev_log(dir, program, args);
    let started = log.wait_for("QNetd listening on", WAIT);
    let pid = child.id();
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let exit = child.wait().unwrap().code();
    assert!(started.is_some(), "daemon did not start; stderr:\n{}", log.text());
    sock.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 8192];
    let mut syslog = Vec::new();
    while let Ok(n) = sock.recv(&mut buf) {
        syslog.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let _ = std::fs::remove_dir_all(dir);
    Run { pid, exit, syslog }
}

impl Run {
    fn line(&self, needle: &str) -> &str {
        let found = self.syslog.iter().find(|l| l.contains(needle));
        found.unwrap_or_else(|| panic!("no syslog line with {needle:?}; got {:?}", self.syslog))
    }

    /// <30> = facility daemon (3) * 8 + info (6); the ident carries the PID (LOG_PID).
    fn assert_daemon_info_from_corosync_qnetd(&self, line: &str) {
        assert!(line.starts_with("<30>"), "priority: {line}");
        assert!(line.contains(&format!("corosync-qnetd[{}]: ", self.pid)), "ident and pid: {line}");
    }
}

#[test]
fn run_with_syslog_logs_start_and_stop_as_corosync_qnetd_facility_daemon() {
    if skip() {
        return;
    }
    let dir = temp_dir("syslog");
    Pki::new("QNet CA").install(&dir.join("db"));
    let r = run_once(&dir, Path::new(common::qnetd_bin()), &run_args(&dir, &["--syslog"]));
    r.assert_daemon_info_from_corosync_qnetd(r.line("QNetd listening on"));
    r.assert_daemon_info_from_corosync_qnetd(r.line("QNetd shutting down"));
    assert_eq!(r.exit, Some(0));
}

#[test]
fn run_without_syslog_flag_writes_nothing_there() {
    if skip() {
        return;
    }
    let dir = temp_dir("nosyslog");
    let r = run_once(&dir, Path::new(common::qnetd_bin()), &run_args(&dir, &["-s", "off"]));
    assert_eq!(r.syslog, Vec::<String>::new(), "`qnetd run` logs to syslog only with --syslog");
    assert_eq!(r.exit, Some(0));
}

/// Called as `corosync-qnetd`, the daemon logs to syslog without being asked,
/// as the C daemon does (with `-f` as well as detached).
#[test]
fn corosync_qnetd_name_logs_to_syslog_by_default() {
    if skip() {
        return;
    }
    let dir = temp_dir("cname-syslog");
    let link = dir.join("corosync-qnetd");
    std::os::unix::fs::symlink(common::qnetd_bin(), &link).unwrap();
    // The C command line has no port 0; take a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let args: Vec<OsString> = ["-f", "-s", "off", "-l", "127.0.0.1", "-p", &port].map(OsString::from).into();
    let r = run_once(&dir, &link, &args);
    let listening = r.line("QNetd listening on");
    r.assert_daemon_info_from_corosync_qnetd(listening);
    assert!(listening.contains("/var/run/corosync-qnetd/corosync-qnetd.sock"), "C default paths: {listening}");
    assert_eq!(r.exit, Some(0));
}
