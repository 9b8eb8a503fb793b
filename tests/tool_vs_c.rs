//! Our `corosync-qnetd-tool` and IPC replies against the real C ones.
//!
//! Starts the installed C `corosync-qnetd` (TLS off, loopback, private socket and
//! lock file), connects scripted qdevice clients to it over TCP so its listing
//! has content, and then checks:
//! * the C tool and our `tool::c_main_with` give identical stdout, stderr and exit
//!   codes for the same arguments (also against canned servers and no server);
//! * the C daemon's raw IPC replies equal `ipc::respond` for the same state and
//!   request bytes (lexer quirks included).
//!
//! Needs `corosync-qnetd` and `corosync-qnetd-tool` on PATH and the right to run
//! them; set `QNETD_SKIP_C=1` to skip where they are not installed.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use qnetd::ipc::{self, ClientStatus, ClusterStatus, ServerStatus};
use qnetd::settings::TlsMode;
use qnetd::tool;
use qnetd::wire::{Heuristics, NodeInfo, RingId, TieBreaker, TieBreakerMode, Vote};

fn skip() -> bool {
    if std::env::var_os("QNETD_SKIP_C").is_some() {
        eprintln!("QNETD_SKIP_C set: skipping comparison with the C tools");
        return true;
    }
    false
}

static N: AtomicUsize = AtomicUsize::new(0);

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "qnetd-tool-vs-c-{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A C qnetd in the foreground; killed by its PID when dropped.
struct CDaemon {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
    port: u16,
}

impl CDaemon {
    fn start(extra: &[&str]) -> CDaemon {
        let dir = temp_dir("daemon");
        let sock = dir.join("q.sock");
        let port = free_port();
        let log = File::create(dir.join("daemon.log")).unwrap();
        let s_opt = format!("local_socket_file={},lock_file={}", sock.display(), dir.join("q.pid").display());
        let port_s = port.to_string();
        let mut args = vec!["-f", "-s", "off", "-S", &s_opt, "-p", &port_s, "-l", "127.0.0.1"];
        args.extend_from_slice(extra);
        let child = Command::new("corosync-qnetd")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("cannot start corosync-qnetd (installed? set QNETD_SKIP_C=1 to skip)");
        let mut d = CDaemon { child, dir, sock, port };
        // Readiness wait (not an assertion on speed): the IPC socket answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if UnixStream::connect(&d.sock).is_ok() {
                break;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("corosync-qnetd exited with {st}: {}", d.log());
            }
            assert!(Instant::now() < deadline, "corosync-qnetd did not come up: {}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    fn sock_arg(&self) -> String {
        self.sock.to_string_lossy().into_owned()
    }

    /// Wait for the daemon to exit on its own (after `shutdown`).
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "daemon did not exit after shutdown");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for CDaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM to this child's PID only.
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGTERM);
            }
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_c(args: &[&str]) -> Run {
    let o = Command::new("corosync-qnetd-tool")
        .args(args)
        .env_remove("POSIXLY_CORRECT")
        .output()
        .expect("cannot run corosync-qnetd-tool");
    Run {
        code: o.status.code().expect("C tool killed by a signal"),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn run_ours(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tool::c_main_with("corosync-qnetd-tool", &args, &mut out, &mut err);
    Run { code, stdout: String::from_utf8_lossy(&out).into_owned(), stderr: String::from_utf8_lossy(&err).into_owned() }
}

/// Run both tools, assert identical results, return them.
fn same(args: &[&str]) -> Run {
    let c = run_c(args);
    let ours = run_ours(args);
    assert_eq!(ours, c, "args {args:?}");
    c
}

/// One raw request on the daemon's IPC socket; the whole reply.
fn ipc_raw(sock: &Path, req: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.write_all(req).unwrap();
    let mut reply = Vec::new();
    // The daemon may close before reading everything we sent; that is a reply too.
    let _ = s.read_to_end(&mut reply);
    reply
}

// ---- a scripted qdevice client (TLS off), just enough to populate the listing ----

fn tlv(t: u16, v: &[u8]) -> Vec<u8> {
    let mut o = t.to_be_bytes().to_vec();
    o.extend_from_slice(&(v.len() as u16).to_be_bytes());
    o.extend_from_slice(v);
    o
}

fn u16s(v: impl IntoIterator<Item = u16>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn ring(r: RingId) -> Vec<u8> {
    let mut v = r.node_id.to_be_bytes().to_vec();
    v.extend_from_slice(&r.seq.to_be_bytes());
    v
}

fn node_infos(nodes: &[NodeInfo]) -> Vec<u8> {
    let mut o = Vec::new();
    for n in nodes {
        let mut inner = tlv(9, &n.node_id.to_be_bytes());
        if n.data_center_id != 0 {
            inner.extend(tlv(15, &n.data_center_id.to_be_bytes()));
        }
        o.extend(tlv(17, &inner));
    }
    o
}

fn vote_of(b: u8) -> Vote {
    match b {
        1 => Vote::Ack,
        2 => Vote::Nack,
        3 => Vote::AskLater,
        4 => Vote::WaitForReply,
        5 => Vote::NoChange,
        _ => panic!("bad vote {b}"),
    }
}

struct QClient {
    s: TcpStream,
    seq: u32,
    last_vote: Option<Vote>,
    last_ack_nack: Option<Vote>,
    addr: String,
}

impl QClient {
    fn connect(port: u16, cluster: &[u8]) -> QClient {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let a = s.local_addr().unwrap();
        let mut c =
            QClient { s, seq: 0, last_vote: None, last_ack_nack: None, addr: format!("{}:{}", a.ip(), a.port()) };
        let (t, _) = c.request(0, tlv(1, cluster));
        assert_eq!(t, 1, "PREINIT_REPLY expected");
        c
    }

    /// Send one message (seq added first), return the reply, recording every
    /// vote the server sends as the C server records it.
    fn request(&mut self, msg_type: u16, rest: Vec<u8>) -> (u16, Vec<(u16, Vec<u8>)>) {
        self.seq += 1;
        let mut body = tlv(0, &self.seq.to_be_bytes());
        body.extend(rest);
        let mut f = msg_type.to_be_bytes().to_vec();
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend(body);
        self.s.write_all(&f).unwrap();
        loop {
            let mut h = [0u8; 6];
            self.s.read_exact(&mut h).unwrap();
            let t = u16::from_be_bytes([h[0], h[1]]);
            let len = u32::from_be_bytes([h[2], h[3], h[4], h[5]]) as usize;
            let mut b = vec![0u8; len];
            self.s.read_exact(&mut b).unwrap();
            let mut opts = Vec::new();
            let mut i = 0;
            while i + 4 <= b.len() {
                let ot = u16::from_be_bytes([b[i], b[i + 1]]);
                let ol = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
                opts.push((ot, b[i + 4..i + 4 + ol].to_vec()));
                i += 4 + ol;
            }
            assert_ne!(t, 5, "SERVER_ERROR {opts:?}");
            if let Some((_, v)) = opts.iter().find(|(o, _)| *o == 19) {
                let v = vote_of(v[0]);
                self.last_vote = Some(v);
                if matches!(v, Vote::Ack | Vote::Nack) {
                    self.last_ack_nack = Some(v);
                }
            }
            if t != 14 {
                return (t, opts);
            }
        }
    }

    fn init(&mut self, node_id: u32, algo: u16, hb: u32, tb: TieBreaker, r: RingId) {
        let mut m = tlv(4, &u16s(0..18));
        m.extend(tlv(5, &u16s(0..24)));
        m.extend(tlv(9, &node_id.to_be_bytes()));
        m.extend(tlv(11, &algo.to_be_bytes()));
        m.extend(tlv(12, &hb.to_be_bytes()));
        let mut tbv = vec![tb.mode as u8];
        tbv.extend_from_slice(&tb.node_id.to_be_bytes());
        m.extend(tlv(21, &tbv));
        m.extend(tlv(13, &ring(r)));
        let (t, opts) = self.request(3, m);
        assert_eq!(t, 4);
        assert_eq!(opts.iter().find(|(o, _)| *o == 6).map(|(_, v)| v.clone()), Some(vec![0, 0]), "INIT refused");
    }

    fn set_kap(&mut self) {
        assert_eq!(self.request(6, tlv(23, &[1])).0, 7);
    }

    fn config_list(&mut self, initial: bool, version: Option<u64>, nodes: &[NodeInfo]) {
        let mut m = tlv(18, &[if initial { 0 } else { 1 }]);
        if let Some(v) = version {
            m.extend(tlv(14, &v.to_be_bytes()));
        }
        m.extend(node_infos(nodes));
        assert_eq!(self.request(10, m).0, 11);
    }

    fn membership_list(&mut self, r: RingId, nodes: &[NodeInfo], h: Heuristics) {
        let mut m = tlv(18, &[2]);
        m.extend(tlv(13, &ring(r)));
        m.extend(node_infos(nodes));
        if h != Heuristics::Undefined {
            m.extend(tlv(22, &[h as u8]));
        }
        assert_eq!(self.request(10, m).0, 11);
    }

    fn heuristics_change(&mut self, h: Heuristics) {
        assert_eq!(self.request(16, tlv(22, &[h as u8])).0, 17);
    }
}

fn ni(id: u32, dc: u32) -> NodeInfo {
    NodeInfo { node_id: id, data_center_id: dc, node_state: None }
}

/// What we told the daemon about one client, to build the expected listing.
struct Expect {
    node_id: u32,
    algorithm: u16,
    tb: TieBreaker,
    kap: bool,
    hb: u32,
    config_version: Option<u64>,
    config: Vec<NodeInfo>,
    ring: RingId,
    membership: Vec<NodeInfo>,
    heuristics: (Heuristics, Heuristics, Heuristics),
}

fn status_of(c: &QClient, e: &Expect) -> ClientStatus {
    ClientStatus {
        node_id: e.node_id,
        addr: c.addr.clone(),
        algorithm: e.algorithm,
        tie_breaker: e.tb,
        kap: e.kap,
        heartbeat_interval: e.hb,
        config_version: e.config_version,
        config_nodes: e.config.clone(),
        ring_id: e.ring,
        membership_nodes: e.membership.clone(),
        heuristics: e.heuristics.0,
        membership_heuristics: e.heuristics.1,
        regular_heuristics: e.heuristics.2,
        tls_active: false,
        cert_verified: false,
        last_sent_vote: c.last_vote,
        last_sent_ack_nack_vote: c.last_ack_nack,
    }
}

const WEIRD: &[u8] = b"we\"ird\\name";

/// Populate a daemon: three clusters with varied state plus one PREINIT-only
/// connection. Returns the live clients (keep them!) and the expected snapshot.
fn populate(port: u16) -> (Vec<QClient>, Vec<ClusterStatus>) {
    let lowest = TieBreaker { mode: TieBreakerMode::Lowest, node_id: 0 };
    let highest = TieBreaker { mode: TieBreakerMode::Highest, node_id: 0 };
    let node4 = TieBreaker { mode: TieBreakerMode::NodeId, node_id: 4 };
    let r0 = RingId { node_id: 1, seq: 5 };
    let u = Heuristics::Undefined;
    let mut clients = Vec::new();
    let mut clusters = Vec::new();

    // alpha: ffsplit, both clients KAP; node 1 sent an initial config list.
    let mut a1 = QClient::connect(port, b"alpha");
    a1.init(1, 1, 120_000, lowest, r0);
    a1.set_kap();
    let cfg = vec![ni(1, 10), ni(2, 20)];
    a1.config_list(true, Some(7), &cfg);
    let mut a2 = QClient::connect(port, b"alpha");
    a2.init(2, 1, 100_000, lowest, r0);
    a2.set_kap();
    let e1 = Expect {
        node_id: 1,
        algorithm: 1,
        tb: lowest,
        kap: true,
        hb: 120_000,
        config_version: Some(7),
        config: cfg,
        ring: r0,
        membership: vec![],
        heuristics: (u, u, u),
    };
    let e2 = Expect {
        node_id: 2,
        algorithm: 1,
        tb: lowest,
        kap: true,
        hb: 100_000,
        config_version: None,
        config: vec![],
        ring: r0,
        membership: vec![],
        heuristics: (u, u, u),
    };
    clusters.push(ClusterStatus { name: b"alpha".to_vec(), clients: vec![status_of(&a1, &e1), status_of(&a2, &e2)] });
    clients.extend([a1, a2]);

    // beta: test algorithm, tie-breaker node 4; node 4 got the membership +
    // heuristics treatment, node 3 a changed config list without version.
    // Node 4 joins first: the listing must still be in node-id order.
    let mut b4 = QClient::connect(port, b"beta");
    b4.init(4, 0, 90_000, node4, RingId { node_id: 4, seq: 0x1b });
    let r4 = RingId { node_id: 4, seq: 0x1c };
    b4.membership_list(r4, &[ni(4, 0), ni(3, 0)], Heuristics::Pass);
    b4.heuristics_change(Heuristics::Fail);
    let mut b3 = QClient::connect(port, b"beta");
    b3.init(3, 0, 95_000, node4, RingId { node_id: 3, seq: 0xabc });
    b3.config_list(false, None, &[ni(3, 0), ni(4, 0)]);
    let e4 = Expect {
        node_id: 4,
        algorithm: 0,
        tb: node4,
        kap: false,
        hb: 90_000,
        config_version: None,
        config: vec![],
        ring: r4,
        membership: vec![ni(4, 0), ni(3, 0)],
        heuristics: (Heuristics::Fail, Heuristics::Pass, Heuristics::Fail),
    };
    let e3 = Expect {
        node_id: 3,
        algorithm: 0,
        tb: node4,
        kap: false,
        hb: 95_000,
        config_version: None,
        config: vec![ni(3, 0), ni(4, 0)],
        ring: RingId { node_id: 3, seq: 0xabc },
        membership: vec![],
        heuristics: (u, u, u),
    };
    clusters.push(ClusterStatus { name: b"beta".to_vec(), clients: vec![status_of(&b3, &e3), status_of(&b4, &e4)] });

    // we"ird\name: ffsplit, only one of the two clients has KAP → no suffix.
    let mut w9 = QClient::connect(port, WEIRD);
    w9.init(9, 1, 8000 * 15, highest, r0);
    w9.set_kap();
    let mut w8 = QClient::connect(port, WEIRD);
    w8.init(8, 1, 8000 * 15, highest, r0);
    let weird = |node_id, kap| Expect {
        node_id,
        algorithm: 1,
        tb: highest,
        kap,
        hb: 120_000,
        config_version: None,
        config: vec![],
        ring: r0,
        membership: vec![],
        heuristics: (u, u, u),
    };
    let (e9, e8) = (weird(9, true), weird(8, false));
    clusters.push(ClusterStatus { name: WEIRD.to_vec(), clients: vec![status_of(&w8, &e8), status_of(&w9, &e9)] });
    clients.extend([b4, b3, w9, w8]);

    // A connection that never got past PREINIT: counted, not listed.
    clients.push(QClient::connect(port, b"zeta"));
    (clients, clusters)
}

#[test]
fn tool_and_replies_match_c_with_clients() {
    if skip() {
        return;
    }
    let d = CDaemon::start(&["-m", "20"]);
    let (clients, clusters) = populate(d.port);
    let status = ServerStatus {
        listen_addr: "127.0.0.1".into(),
        port: d.port,
        tls: TlsMode::Off,
        client_cert_required: true,
        connected_clients: clients.len(),
        connected_clusters: clusters.len(),
        max_clients: 20,
        ..ServerStatus::default()
    };
    let sock = d.sock_arg();
    let p = sock.as_str();

    // Tool against tool.
    for args in [
        &["-s", "-p", p][..],
        &["-sv", "-p", p],
        &["-p", p, "-s", "-v"],
        &["-l", "-p", p],
        &["-lv", "-p", p],
        &["-lvp", p],
        &["-l", "-c", "beta", "-p", p],
        &["-lv", "-c", "we\"ird\\name", "-p", p],
        &["-l", "-c", "nosuch", "-p", p],
        &["-l", "-c", "", "-p", p],
        &["-lc", "alpha", "-v", "-p", p],
        &["junk", "-p", p, "more", "-l"],
        &["-s", "-l", "-p", p],
    ] {
        same(args);
    }
    // The listing really has content (so the comparisons above mean something).
    let lv = same(&["-lv", "-p", p]);
    assert!(lv.stdout.contains("Cluster \"we\"ird\\name\":"), "{}", lv.stdout);
    assert!(lv.stdout.contains("Configured node list:\t1 (10), 2 (20)"), "{}", lv.stdout);

    // Raw replies against ipc::respond for the same state.
    let requests: &[&[u8]] = &[
        b"status\n",
        b"status verbose\n",
        b"STATUS Verbose\r\n",
        b"status foo verbose\n",
        b"list\n",
        b"list verbose\n",
        b"LIST VERBOSE\n",
        b"list cluster beta\n",
        b"list cluster \"we\\\"ird\\\\name\" verbose\n",
        b"list cluster we\\\"ird\\\\name\n",
        b"list cluster \"we\"\\\"\"ird\\name\"\n",
        b"list cluster\n",
        b"list cluster \"\" verbose\n",
        b"list \"\" verbose\n",
        b"list bogus verbose\n",
        b"list cluster alpha cluster beta\n",
        b"\tlist\x0bverbose\x0c\n",
        b"li\\st\n",
        b"\"sta\"tus verbose\n",
        b"\n",
        b"   \n",
        b"\"\" status\n",
        b"foo bar\n",
        b"\"foo bar\" baz\n",
        b"f\\\"oo\n",
        b"\"unterminated\n",
        b"status\\\n",
        b"list verbose\ntrailing junk",
    ];
    let all: Vec<ClusterStatus> = clusters.clone();
    for req in requests {
        let c = ipc_raw(&d.sock, req);
        let ours = ipc::respond(req, &status, &all, 10_485_760);
        assert_eq!(
            String::from_utf8_lossy(&ours.reply),
            String::from_utf8_lossy(&c),
            "request {:?}",
            String::from_utf8_lossy(req)
        );
        assert!(!ours.shutdown);
    }
    drop(clients);
}

#[test]
fn tool_matches_c_without_clients() {
    if skip() {
        return;
    }
    let d = CDaemon::start(&[]);
    let sock = d.sock_arg();
    let p = sock.as_str();
    for args in [
        &["-s", "-p", p][..],
        &["-sv", "-p", p],
        &["-l", "-p", p],
        &["-lv", "-p", p],
        &["-l", "-c", "nosuch", "-p", p],
        &["-H", "-s", "-p", p],
    ] {
        same(args);
    }
    let r = same(&["-s", "-p", p]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("QNetd address:\t\t\t127.0.0.1:"), "{}", r.stdout);
    let status =
        ServerStatus { listen_addr: "127.0.0.1".into(), port: d.port, tls: TlsMode::Off, ..ServerStatus::default() };
    for req in [&b"status verbose\n"[..], b"list\n", b"list verbose\n"] {
        assert_eq!(ipc_raw(&d.sock, req), ipc::respond(req, &status, &[], 10_485_760).reply);
    }
}

#[test]
fn usage_errors_and_connect_failures_match_c() {
    if skip() {
        return;
    }
    let dir = temp_dir("noserver");
    let missing = dir.join("nothing.sock");
    let m = missing.to_str().unwrap();
    let plain = dir.join("plain");
    std::fs::write(&plain, b"").unwrap();
    let long = format!("/{}", "x".repeat(120));
    for args in [
        &[][..],
        &["-h"],
        &["-v"],
        &["-x"],
        &["-s", "-x"],
        &["-s", "-c"],
        &["-s", "-p"],
        &["--", "-s"],
        &["--status"],
        &["-s", "-p", m],
        &["-lv", "-c", "c1", "-p", m],
        &["-H", "-p", m],
        &["-s", "-p", plain.to_str().unwrap()],
        &["-s", "-p", &long],
        &["-s", "-p", ""],
        &["-s", "-p", dir.to_str().unwrap()],
    ] {
        same(args);
    }
    let r = same(&["-s", "-p", m]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.to_lowercase().contains("is qnetd running?"), "pcs matches on this: {}", r.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Canned servers: reply handling (Error, odd status lines, early EOF) of both
/// tools, each against its own identical server.
#[test]
fn reply_handling_matches_c() {
    if skip() {
        return;
    }
    let replies: &[&[u8]] = &[
        b"OK\nsome body\nlines\n",
        b"ok\r\nbody without newline",
        b"Error\nUnknown command 'x'\n",
        b"ERROR\r\nmulti\nline\n",
        b"Okay\nbody\n",
        b"\nbody\n",
        b"OK",
        b"",
        b"O\rK\nbody\n",
    ];
    for reply in replies {
        let mut runs = Vec::new();
        for which in 0..2 {
            let dir = temp_dir("canned");
            let path = dir.join("s.sock");
            let l = UnixListener::bind(&path).unwrap();
            let reply = reply.to_vec();
            let h = std::thread::spawn(move || {
                let (mut c, _) = l.accept().unwrap();
                let mut buf = Vec::new();
                let mut b = [0u8; 256];
                while !ipc::request_complete(&buf) {
                    match c.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&b[..n]),
                    }
                }
                let _ = c.write_all(&reply);
                buf
            });
            let args = ["-lv", "-c", "c1", "-p", path.to_str().unwrap()];
            let r = if which == 0 { run_c(&args) } else { run_ours(&args) };
            let req = h.join().unwrap();
            assert_eq!(req, b"list verbose cluster \"c1\" \n");
            runs.push(r);
            let _ = std::fs::remove_dir_all(&dir);
        }
        assert_eq!(runs[1], runs[0], "reply {:?}", String::from_utf8_lossy(reply));
    }
}

/// `-H` stops the daemon, with identical tool output, for both tools.
#[test]
fn shutdown_matches_c() {
    if skip() {
        return;
    }
    let mut results = Vec::new();
    for which in 0..2 {
        let mut d = CDaemon::start(&[]);
        let sock = d.sock_arg();
        let args = ["-H", "-p", sock.as_str()];
        let r = if which == 0 { run_c(&args) } else { run_ours(&args) };
        let st = d.wait_exit();
        assert!(st.success(), "daemon exit {st}: {}", d.log());
        results.push(r);
    }
    assert_eq!(results[1], results[0]);
    assert_eq!(results[0], Run { code: 0, stdout: String::new(), stderr: String::new() });
}

/// With a small ipc_max_send_size an error message that does not fit closes the
/// connection without a reply, in both implementations.
#[test]
fn small_send_buffer_matches_c() {
    if skip() {
        return;
    }
    let d = CDaemon::start(&["-S", "ipc_max_send_size=1024"]);
    let status =
        ServerStatus { listen_addr: "127.0.0.1".into(), port: d.port, tls: TlsMode::Off, ..ServerStatus::default() };
    for n in [998usize, 999, 1000, 1100, 3000] {
        let req = format!("{}\n", "y".repeat(n));
        let c = ipc_raw(&d.sock, req.as_bytes());
        let ours = ipc::respond(req.as_bytes(), &status, &[], 1024);
        assert_eq!(ours.reply, c, "unknown command of {n} bytes");
    }
}

/// `qnetd health` against the C daemon: it answers `status json` with text, so
/// the daemon is healthy but its idle time unknown.
#[test]
fn health_against_c_daemon() {
    if skip() {
        return;
    }
    let d = CDaemon::start(&[]);
    let args = |extra: &[&str]| {
        use argh::FromArgs;
        let sock = d.sock_arg();
        let mut a = vec!["--socket", sock.as_str()];
        a.extend_from_slice(extra);
        tool::health_check(&tool::HealthArgs::from_args(&["health"], &a).unwrap())
    };
    assert_eq!(args(&[]), (0, "healthy: 0 clients, 0 clusters".to_string()));
    let (code, line) = args(&["--max-idle", "60"]);
    assert_eq!(code, 1);
    assert!(line.starts_with("unhealthy: daemon does not report its idle time"), "{line}");
    drop(d);
    let gone = tool::health_check(&tool::HealthArgs {
        socket: Some(PathBuf::from("/nonexistent/q.sock")),
        max_idle: None,
        cert_days: None,
        dir: None,
        timeout: 5,
    });
    assert_eq!(gone, (1, "unhealthy: cannot connect to /nonexistent/q.sock: No such file or directory".to_string()));
}
