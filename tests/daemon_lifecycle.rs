//! Process-level behaviour of the daemon: signals, IPC shutdown, the lock file,
//! sd_notify and daemonizing.

mod common;

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{block_on, spawn_logged, spawn_run, temp_dir, Daemon, Pki, WAIT};
use qnetd::client::{Client, InitParams};

#[test]
fn sigterm_with_clients_connected_exits_0_and_cleans_up() {
    let pki = Pki::new("QNet CA");
    let mut d = Daemon::start("sigterm", Some(&pki), &[]);
    assert!(d.sock.exists());
    block_on(async {
        let mut tls_client =
            Client::connect_and_init(d.addr, b"c1", Some(pki.client_config(Some("c1"))), &InitParams::new(1), WAIT)
                .await
                .unwrap();
        let mut plain = Client::connect(d.addr).await.unwrap();
        plain.preinit(b"c1", WAIT).await.unwrap();
        d.signal(libc::SIGTERM);
        tls_client.expect_disconnect(WAIT).await.unwrap();
        plain.expect_disconnect(WAIT).await.unwrap();
    });
    let status = d.wait_exit(WAIT).expect("daemon did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(!d.sock.exists(), "IPC socket file must be removed");
    // The lock file stays (as in C); its lock died with the process.
    assert!(d.lock.exists());
}

#[test]
fn sigint_also_stops_the_daemon() {
    let mut d = Daemon::start("sigint", None, &["-s", "off"]);
    d.signal(libc::SIGINT);
    assert_eq!(d.wait_exit(WAIT).expect("no exit").code(), Some(0));
    assert!(!d.sock.exists());
}

#[test]
fn ipc_shutdown_replies_ok_then_exits_0() {
    let mut d = Daemon::start("ipcshut", None, &["-s", "off"]);
    block_on(async {
        let mut c = Client::connect(d.addr).await.unwrap();
        c.preinit(b"c1", WAIT).await.unwrap();
        assert_eq!(d.ipc("shutdown\n"), "OK\n");
        c.expect_disconnect(WAIT).await.unwrap();
    });
    assert_eq!(d.wait_exit(WAIT).expect("no exit").code(), Some(0));
    assert!(!d.sock.exists());
}

#[test]
fn ipc_oversize_request_is_closed_without_reply() {
    let d = Daemon::start("ipcbig", None, &["-s", "off", "-S", "ipc_max_receive_size=1024"]);
    let long = format!("status {}\n", "x".repeat(2000));
    // Closed without a reply (a reset while we still write counts as that too).
    match d.ipc_raw(&long) {
        Ok(reply) => assert_eq!(reply, ""),
        Err(e) => {
            assert!(matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe), "{e}")
        }
    }
    assert!(d.ipc("status\n").starts_with("OK\n"), "the daemon still answers");
}

#[test]
fn second_instance_on_the_same_lock_file_is_refused() {
    let d = Daemon::start("lock1", None, &["-s", "off"]);
    let other = temp_dir("lock2");
    let (mut child, log) = spawn_run(&other, &d.lock, &other.join("q.sock"), &["-s", "off"]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(log.wait_for("another instance is running", WAIT).is_some(), "{}", log.text());
    // The first one is untouched: socket still there and answering.
    assert!(d.ipc("status\n").starts_with("OK\n"));
    let pid: i32 = std::fs::read_to_string(&d.lock).unwrap().trim().parse().unwrap();
    assert_eq!(pid, d.pid());
    let _ = std::fs::remove_dir_all(other);
}

#[test]
fn stale_lock_after_sigkill_is_recovered() {
    let mut d = Daemon::start("stale", None, &["-s", "off"]);
    let old_pid = d.pid();
    d.signal(libc::SIGKILL);
    d.wait_exit(WAIT).expect("SIGKILL did not kill");
    assert!(d.lock.exists() && d.sock.exists(), "SIGKILL leaves both files behind");
    // Same lock file and socket path: the new instance must take over.
    let (mut child, log) = spawn_run(&d.dir, &d.lock, &d.sock, &["-s", "off"]);
    let ok = log.wait_for("QNetd listening on", WAIT);
    let pid: i32 = std::fs::read_to_string(&d.lock).unwrap().trim().parse().unwrap();
    // SAFETY: our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(ok.is_some(), "{}", log.text());
    assert_eq!(pid, child.id() as i32);
    assert_ne!(pid, old_pid);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sd_notify_ready_is_sent() {
    let dir = temp_dir("notify");
    let notify_path = dir.join("notify.sock");
    let listener = UnixDatagram::bind(&notify_path).unwrap();
    assert_eq!(notification(&dir, &listener, notify_path.as_os_str()).as_deref(), Some(&b"READY=1"[..]));
    let _ = std::fs::remove_dir_all(dir);
}

/// Start `qnetd run -s off` with NOTIFY_SOCKET=`notify_socket`, read the first
/// datagram `listener` gets (bounded by WAIT), stop the daemon.
fn notification(dir: &Path, listener: &UnixDatagram, notify_socket: &OsStr) -> Option<Vec<u8>> {
    listener.set_read_timeout(Some(WAIT)).unwrap();
    let mut cmd = common::run_command(dir, &dir.join("q.pid"), &dir.join("q.sock"), &["-s", "off"]);
    cmd.env("NOTIFY_SOCKET", notify_socket);
    let (mut child, _log) = spawn_logged(cmd);
    let mut buf = [0u8; 64];
    let n = listener.recv(&mut buf);
    // SAFETY: our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    n.ok().map(|n| buf[..n].to_vec())
}

#[test]
fn corosync_qnetd_without_f_daemonizes_after_start_up() {
    let dir = temp_dir("daemonize");
    let bin = dir.join("corosync-qnetd");
    std::os::unix::fs::symlink(common::qnetd_bin(), &bin).unwrap();
    let lock = dir.join("run/q.pid");
    let sock = dir.join("run/q.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s_opt = format!("lock_file={},local_socket_file={}", lock.display(), sock.display());
    let out = Command::new(&bin)
        .args(["-s", "off", "-l", "127.0.0.1", "-p", &port.to_string(), "-S", &s_opt])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The parent returned only after the child held the lock and the sockets.
    let pid: i32 = std::fs::read_to_string(&lock).unwrap().trim().parse().unwrap();
    assert!(sock.exists());
    block_on(async {
        let mut c = Client::connect(([127, 0, 0, 1], port).into()).await.unwrap();
        c.preinit(b"c1", WAIT).await.unwrap();
    });
    // SAFETY: the daemon we started (its PID from its own lock file).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + WAIT;
    // SAFETY: signal 0 only probes for existence.
    while unsafe { libc::kill(pid, 0) } == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!sock.exists(), "daemonized instance must clean up on SIGTERM");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn daemonize_failure_is_reported_by_the_parent() {
    let d = Daemon::start("daemonfail", None, &["-s", "off"]);
    let dir = temp_dir("daemonfail2");
    let bin = dir.join("corosync-qnetd");
    std::os::unix::fs::symlink(common::qnetd_bin(), &bin).unwrap();
    let s_opt = format!("lock_file={},local_socket_file={}", d.lock.display(), dir.join("q.sock").display());
    let out = Command::new(&bin)
        .args(["-s", "off", "-l", "127.0.0.1", "-p", "1", "-S", &s_opt])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another instance is running"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Start `qnetd run` without `-l` (plus `extra`), connect to 127.0.0.1 and
/// return the peer address the daemon logged for us.
fn wildcard_peer(extra: &[&str]) -> (String, String) {
    let dir = temp_dir("wildcard");
    let mut cmd = Command::new(common::qnetd_bin());
    cmd.args(["run", "-s", "off", "-p", "0", "--lock-file"])
        .arg(dir.join("q.pid"))
        .arg("--socket")
        .arg(dir.join("q.sock"))
        .args(extra)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let (mut child, log) = spawn_logged(cmd);
    let line = log.wait_for("QNetd listening on ", WAIT).expect("no listening line");
    let bound = line.split("QNetd listening on ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let port: u16 = bound.rsplit(':').next().unwrap().parse().unwrap();
    block_on(async {
        let mut c = Client::connect(([127, 0, 0, 1], port).into()).await.unwrap();
        c.preinit(b"c1", WAIT).await.unwrap();
    });
    let peer = log.wait_for("New client connected from ", WAIT).expect("no connect line");
    // SAFETY: our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
    (bound, peer.split("New client connected from ").nth(1).unwrap().to_string())
}

#[test]
fn wildcard_listener_is_dual_stack_like_c() {
    let (bound, peer) = wildcard_peer(&[]);
    assert!(bound.starts_with("[::]:"), "{bound}");
    assert!(peer.starts_with("::ffff:127.0.0.1:"), "IPv4 peers show as mapped addresses: {peer}");
}

#[test]
fn ipv4_only_listener_with_4() {
    let (bound, peer) = wildcard_peer(&["-4"]);
    assert!(bound.starts_with("0.0.0.0:"), "{bound}");
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
}

#[test]
fn ipc_socket_umask_and_group_settings_apply() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = Daemon::start("umask", None, &["-s", "off", "-S", "local_socket_umask=077,local_socket_gid=1"]);
    let meta = std::fs::metadata(&d.sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700, "umask 077 while binding");
    assert_eq!(meta.gid(), 1, "chgrp to local_socket_gid");
    assert!(d.ipc("status\n").starts_with("OK\n"));
}

#[test]
fn sd_notify_to_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let dir = temp_dir("notify-abstract");
    let name = format!("qnetd-test-notify-{}-{}", std::process::id(), dir.file_name().unwrap().to_string_lossy());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixDatagram::bind_addr(&addr).unwrap();
    let ready = notification(&dir, &listener, OsStr::new(&format!("@{name}")));
    assert_eq!(ready.as_deref(), Some(&b"READY=1"[..]));
    let _ = std::fs::remove_dir_all(dir);
}
