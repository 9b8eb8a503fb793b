//! The daemon binary over real sockets and real TLS: `qnetd run` on 127.0.0.1
//! driven by `qnetd::client` with certificates from a test CA.

mod common;

use std::io::Write;

use common::{block_on, Daemon, Pki, WAIT};
use qnetd::client::{Client, InitParams};
use qnetd::wire::{ErrorCode, Heuristics, Message, MsgType, NodeInfo, NodeState, RingId, Vote};

const RING: RingId = RingId { node_id: 1, seq: 1 };

fn nodes() -> Vec<NodeInfo> {
    vec![NodeInfo::new(1), NodeInfo::new(2)]
}

/// What a real qdevice sends right after INIT: config, membership, quorum lists.
async fn send_lists(c: &mut Client) {
    c.send_config_list(&nodes(), Some(1), true).await.unwrap();
    c.send_membership_list(RING, &nodes(), Heuristics::Undefined).await.unwrap();
    let quorum: Vec<NodeInfo> = nodes()
        .into_iter()
        .map(|mut n| {
            n.node_state = Some(NodeState::Member);
            n
        })
        .collect();
    c.send_quorum_list(true, &quorum).await.unwrap();
}

/// Read messages (answering VOTE_INFO like qdevice does) until one carries `want`.
async fn wait_vote(c: &mut Client, want: Vote) -> Vec<Message> {
    let mut seen = Vec::new();
    loop {
        let m = match c.recv(WAIT).await {
            Ok(m) => m,
            Err(e) => panic!("waiting for {want:?}: {e}; seen {seen:#?}"),
        };
        if m.msg_type == MsgType::VoteInfo {
            c.send_vote_info_reply(m.seq.unwrap()).await.unwrap();
        }
        assert_ne!(m.msg_type, MsgType::ServerError, "server error: {m:?}");
        let done = m.vote == Some(want);
        seen.push(m);
        if done {
            return seen;
        }
    }
}

/// Skip (answering VOTE_INFO) to the next message of type `want`.
async fn recv_until(c: &mut Client, want: MsgType) -> Message {
    loop {
        let m = c.recv(WAIT).await.unwrap();
        if m.msg_type == want {
            return m;
        }
        assert_ne!(m.msg_type, MsgType::ServerError, "server error: {m:?}");
        if m.msg_type == MsgType::VoteInfo {
            c.send_vote_info_reply(m.seq.unwrap()).await.unwrap();
        }
    }
}

fn server_error_code(m: &Message) -> Option<u16> {
    (m.msg_type == MsgType::ServerError).then_some(m.reply_error_code).flatten()
}

#[test]
fn two_node_ffsplit_cluster_gets_ack_over_tls() {
    let pki = Pki::new("QNet CA");
    let d = Daemon::start("happy", Some(&pki), &[]);
    block_on(async {
        let cfg = pki.client_config(Some("c1"));
        let mut n1 = Client::connect(d.addr).await.unwrap();
        let pre = n1.preinit(b"c1", WAIT).await.unwrap();
        assert_eq!(pre.tls_supported, Some(qnetd::wire::TlsSupported::Supported));
        assert_eq!(pre.tls_client_cert_required, Some(true));
        n1.starttls(cfg.clone(), WAIT).await.unwrap();
        let reply = n1.init(&InitParams::new(1), WAIT).await.unwrap();
        assert_eq!(reply.reply_error_code, Some(0), "{reply:?}");
        assert!(reply.server_max_request_size.unwrap() >= 32768);
        send_lists(&mut n1).await;

        let mut n2 = Client::connect_and_init(d.addr, b"c1", Some(cfg), &InitParams::new(2), WAIT).await.unwrap();
        send_lists(&mut n2).await;

        wait_vote(&mut n1, Vote::Ack).await;
        wait_vote(&mut n2, Vote::Ack).await;

        // Echo still works through TLS.
        n1.send_echo_request(77).await.unwrap();
        let echo = recv_until(&mut n1, MsgType::EchoReply).await;
        assert_eq!(echo.seq, Some(77));

        let list = d.ipc("list verbose\n");
        assert!(list.starts_with("OK\n"), "{list}");
        assert!(list.contains("Cluster \"c1\":"), "{list}");
        assert!(list.contains("TLS active:\t\tYes (client certificate verified)"), "{list}");
        assert_eq!(list.matches("Node ID ").count(), 2, "{list}");
        let status = d.ipc("status\n");
        assert!(status.contains("Connected clients:\t\t2\n"), "{status}");
        assert!(status.contains("QNetd address:\t\t\t127.0.0.1:"), "{status}");
    });
    assert!(d.log.wait_for("TLS established with 127.0.0.1:", WAIT).is_some());
}

#[test]
fn tls12_only_client_is_served() {
    let pki = Pki::new("QNet CA");
    let d = Daemon::start("tls12", Some(&pki), &[]);
    let cfg =
        qnetd::tls::client_config_with_versions(&pki.ca_der(), Some(pki.client_cert("c1")), &[&rustls::version::TLS12])
            .unwrap();
    block_on(async {
        let c = Client::connect_and_init(d.addr, b"c1", Some(cfg), &InitParams::new(1), WAIT).await;
        assert!(c.is_ok(), "{:?}", c.err());
    });
    assert!(d.log.wait_for("TLSv1_2", WAIT).is_some(), "{}", d.log.text());
}

/// Connect, PREINIT, STARTTLS with `cfg`, INIT: the server must drop us without
/// an INIT_REPLY.
fn assert_dropped_at_tls(d: &Daemon, cluster: &[u8], cfg: std::sync::Arc<rustls::ClientConfig>) {
    block_on(async {
        let mut c = Client::connect(d.addr).await.unwrap();
        c.preinit(cluster, WAIT).await.unwrap();
        match c.starttls(cfg, WAIT).await {
            // TLS 1.2, or the server refused before our Finished.
            Err(e) if e.is_disconnect() => return,
            Err(e) => panic!("unexpected handshake error {e}"),
            Ok(()) => {}
        }
        // TLS 1.3: the verdict on our certificate comes after our Finished.
        let r = c.init(&InitParams::new(1), WAIT).await;
        match r {
            Err(e) if e.is_disconnect() => {}
            other => panic!("expected a disconnect, got {other:?}"),
        }
    });
}

#[test]
fn client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new("QNet CA");
    let other = Pki::new("Evil CA");
    let d = Daemon::start("wrongca", Some(&pki), &[]);
    let (chain, key) = other.client_cert("c1");
    let cfg = qnetd::tls::client_config(&pki.ca_der(), Some((chain, key))).unwrap();
    assert_dropped_at_tls(&d, b"c1", cfg);
    assert!(d.log.wait_for("TLS handshake with 127.0.0.1:", WAIT).is_some(), "{}", d.log.text());
    // The daemon still serves others.
    block_on(async {
        Client::connect_and_init(d.addr, b"c1", Some(pki.client_config(Some("c1"))), &InitParams::new(1), WAIT)
            .await
            .unwrap();
    });
}

#[test]
fn certificate_for_another_cluster_is_dropped_at_init() {
    let pki = Pki::new("QNet CA");
    let d = Daemon::start("wrongname", Some(&pki), &[]);
    block_on(async {
        let mut c = Client::connect(d.addr).await.unwrap();
        c.preinit(b"c1", WAIT).await.unwrap();
        c.starttls(pki.client_config(Some("other")), WAIT).await.unwrap();
        let r = c.init(&InitParams::new(1), WAIT).await;
        assert!(matches!(&r, Err(e) if e.is_disconnect()), "{r:?}");
        // Case-insensitive CN match is accepted (NSS rule).
        let ok =
            Client::connect_and_init(d.addr, b"C1", Some(pki.client_config(Some("c1"))), &InitParams::new(1), WAIT)
                .await;
        assert!(ok.is_ok(), "{:?}", ok.err());
    });
}

#[test]
fn missing_client_certificate_is_refused() {
    let pki = Pki::new("QNet CA");
    let d = Daemon::start("nocert", Some(&pki), &[]);
    assert_dropped_at_tls(&d, b"c1", pki.client_config(None));
}

#[test]
fn client_certificate_not_requested_with_c_off() {
    let pki = Pki::new("QNet CA");
    let d = Daemon::start("coff", Some(&pki), &["-c", "off"]);
    block_on(async {
        let mut c = Client::connect(d.addr).await.unwrap();
        let pre = c.preinit(b"c1", WAIT).await.unwrap();
        assert_eq!(pre.tls_client_cert_required, Some(false));
        c.starttls(pki.client_config(None), WAIT).await.unwrap();
        let r = c.init(&InitParams::new(1), WAIT).await.unwrap();
        assert_eq!(r.reply_error_code, Some(0));
    });
}

#[test]
fn plaintext_init_when_tls_required_gets_server_error_3_and_stays() {
    let pki = Pki::new("QNet CA");
    let d = Daemon::start("tlsreq", Some(&pki), &["-s", "required"]);
    block_on(async {
        let mut c = Client::connect(d.addr).await.unwrap();
        let pre = c.preinit(b"c1", WAIT).await.unwrap();
        assert_eq!(pre.tls_supported, Some(qnetd::wire::TlsSupported::Required));
        let mut init = Message::new(MsgType::Init);
        init.seq = Some(c.next_seq());
        init.node_id = Some(1);
        c.send(&init).await.unwrap();
        let e = c.recv(WAIT).await.unwrap();
        assert_eq!(server_error_code(&e), Some(ErrorCode::TlsRequired as u16), "{e:?}");
        // Connection kept: PREINIT still answered.
        c.preinit(b"c1", WAIT).await.unwrap();
    });
}

#[test]
fn oversize_frame_gets_server_error_5_and_connection_is_kept() {
    let d = Daemon::start("oversize", None, &["-s", "off"]);
    block_on(async {
        let mut c = Client::connect(d.addr).await.unwrap();
        let body_len = 40_000u32;
        let mut frame = vec![0, 8];
        frame.extend_from_slice(&body_len.to_be_bytes());
        frame.extend(std::iter::repeat_n(0xAB, body_len as usize));
        c.send_raw(&frame).await.unwrap();
        let e = c.recv(WAIT).await.unwrap();
        assert_eq!(server_error_code(&e), Some(ErrorCode::MessageTooLong as u16), "{e:?}");
        assert_eq!(e.seq, None);
        let pre = c.preinit(b"c1", WAIT).await.unwrap();
        assert_eq!(pre.tls_supported, Some(qnetd::wire::TlsSupported::Unsupported));
    });
}

#[test]
fn garbage_gets_server_errors_and_connection_is_kept() {
    let d = Daemon::start("garbage", None, &["-s", "off"]);
    block_on(async {
        let mut c = Client::connect(d.addr).await.unwrap();
        // Unknown type with a body → 4; a body that is no TLV sequence → 9.
        c.send_raw(&[0xff, 0xff, 0, 0, 0, 3, 1, 2, 3]).await.unwrap();
        let e = c.recv(WAIT).await.unwrap();
        assert_eq!(server_error_code(&e), Some(ErrorCode::UnsupportedMessage as u16), "{e:?}");
        c.send_raw(&[0, 0, 0, 0, 0, 3, 1, 2, 3]).await.unwrap();
        let e = c.recv(WAIT).await.unwrap();
        assert_eq!(server_error_code(&e), Some(ErrorCode::ErrorDecodingMsg as u16), "{e:?}");
        c.preinit(b"c1", WAIT).await.unwrap();
    });
}

#[test]
fn starttls_with_tls_off_drops_the_connection() {
    let d = Daemon::start("tlsoff", None, &["-s", "off"]);
    block_on(async {
        let mut c = Client::connect(d.addr).await.unwrap();
        c.preinit(b"c1", WAIT).await.unwrap();
        let mut m = Message::new(MsgType::StartTls);
        m.seq = Some(c.next_seq());
        c.send(&m).await.unwrap();
        c.expect_disconnect(WAIT).await.unwrap();
    });
}

#[test]
fn stalled_connections_are_dropped_after_the_handshake_deadline() {
    let pki = Pki::new("QNet CA");
    let d = Daemon::start("stall", Some(&pki), &["-S", "handshake_timeout=300"]);
    block_on(async {
        // Says nothing at all.
        let mut silent = Client::connect(d.addr).await.unwrap();
        // Stops in the middle of the TLS handshake: STARTTLS, then silence.
        let mut mid_tls = Client::connect(d.addr).await.unwrap();
        mid_tls.preinit(b"c1", WAIT).await.unwrap();
        let mut m = Message::new(MsgType::StartTls);
        m.seq = Some(mid_tls.next_seq());
        mid_tls.send(&m).await.unwrap();
        silent.expect_disconnect(WAIT).await.unwrap();
        mid_tls.expect_disconnect(WAIT).await.unwrap();
    });
    let status = d.ipc("status\n");
    assert!(status.contains("Connected clients:\t\t0\n"), "{status}");
}

#[test]
fn max_clients_closes_extra_connections_at_once() {
    let d = Daemon::start("maxcl", None, &["-s", "off", "-m", "1"]);
    block_on(async {
        let mut first = Client::connect(d.addr).await.unwrap();
        first.preinit(b"c1", WAIT).await.unwrap();
        let mut second = Client::connect(d.addr).await.unwrap();
        second.expect_disconnect(WAIT).await.unwrap();
        first.preinit(b"c1", WAIT).await.unwrap();
    });
}

/// The real client sends SNI "Qnetd Server" (not a DNS name). Python's ssl
/// module (OpenSSL) can send it; rustls cannot. Skipped without python3.
#[test]
fn invalid_sni_qnetd_server_is_accepted() {
    let has_python =
        std::process::Command::new("python3").args(["-c", "import ssl"]).status().map(|s| s.success()).unwrap_or(false);
    if !has_python {
        eprintln!("python3 with ssl not available: skipping the SNI test");
        return;
    }
    let pki = Pki::new("QNet CA");
    let d = Daemon::start("sni", Some(&pki), &["-c", "off"]);
    let ca_pem = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", base64(&pki.ca_der()));
    let ca_path = d.dir.join("ca.pem");
    std::fs::File::create(&ca_path).unwrap().write_all(ca_pem.as_bytes()).unwrap();
    let script = r#"
import socket, ssl, struct, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
def tlv(t, v): return struct.pack(">HH", t, len(v)) + v
def frame(t, body): return struct.pack(">HI", t, len(body)) + body
s.sendall(frame(0, tlv(0, struct.pack(">I", 1)) + tlv(1, b"c1")))
hdr = s.recv(6); body = s.recv(struct.unpack(">HI", hdr)[1])
s.sendall(frame(2, tlv(0, struct.pack(">I", 2))))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations(ca)
t = ctx.wrap_socket(s, server_hostname="Qnetd Server")
t.sendall(frame(8, tlv(0, struct.pack(">I", 9))))
print("version", t.version())
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, "127.0.0.1", &d.addr.port().to_string(), ca_path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("version TLS"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d.log.wait_for("TLS established with", WAIT).is_some(), "{}", d.log.text());
}

/// PREINIT, STARTTLS and the ClientHello in one write (a client may pipeline):
/// the PREINIT_REPLY must come back in plaintext, and the bytes after STARTTLS in
/// the same read must reach TLS. Uses python3's ssl with memory BIOs.
#[test]
fn pipelined_preinit_starttls_and_client_hello() {
    let has_python =
        std::process::Command::new("python3").args(["-c", "import ssl"]).status().map(|s| s.success()).unwrap_or(false);
    if !has_python {
        eprintln!("python3 with ssl not available: skipping the pipelining test");
        return;
    }
    let pki = Pki::new("QNet CA");
    let d = Daemon::start("pipeline", Some(&pki), &["-c", "off"]);
    let ca_path = d.dir.join("ca.pem");
    let pem = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", base64(&pki.ca_der()));
    std::fs::write(&ca_path, pem).unwrap();
    let script = r#"
import socket, ssl, struct, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
def tlv(t, v): return struct.pack(">HH", t, len(v)) + v
def frame(t, body): return struct.pack(">HI", t, len(body)) + body
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations(ca)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out, server_hostname="Qnetd Server")
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
s.sendall(frame(0, tlv(0, struct.pack(">I", 1)) + tlv(1, b"c1")) + frame(2, tlv(0, struct.pack(">I", 2))) + out.read())
pending = b""
def recv_exact(n):
    global pending
    while len(pending) < n:
        c = s.recv(65536)
        if not c:
            raise SystemExit("eof")
        pending += c
    r, pending = pending[:n], pending[n:]
    return r
t, l = struct.unpack(">HI", recv_exact(6))
recv_exact(l)
assert t == 1, "expected PREINIT_REPLY in plaintext, got type %d" % t
inc.write(pending)
while True:
    try:
        obj.do_handshake()
        break
    except ssl.SSLWantReadError:
        if out.pending:
            s.sendall(out.read())
        c = s.recv(65536)
        if not c:
            raise SystemExit("eof in handshake")
        inc.write(c)
obj.write(frame(8, tlv(0, struct.pack(">I", 9))))
s.sendall(out.read())
buf = b""
while len(buf) < 6 or len(buf) < 6 + struct.unpack(">HI", buf[:6])[1]:
    try:
        buf += obj.read(65536)
    except ssl.SSLWantReadError:
        c = s.recv(65536)
        if not c:
            raise SystemExit("eof")
        inc.write(c)
print("reply-type", struct.unpack(">H", buf[:2])[0], obj.version())
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, "127.0.0.1", &d.addr.port().to_string(), ca_path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // ECHO_REQUEST before INIT → SERVER_ERROR (type 5), through TLS.
    assert!(
        out.status.success() && stdout.contains("reply-type 5 TLS"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\n")
}

/// Many clients at once over TLS in one cluster: every one gets its INIT_REPLY
/// and its own echo reply, none is starved or mixed up. (Clients stay connected
/// until all are done: a leaving member would trigger ffsplit VOTE_INFO fan-out,
/// which is not what this test is about. The backlog is raised because 100
/// simultaneous SYNs overflow the C default of 10 and then wait for retries.)
#[test]
fn one_hundred_concurrent_tls_clients_are_all_served() {
    let pki = Pki::new("QNet CA");
    let d = Daemon::start("many", Some(&pki), &["-S", "listen_backlog=128"]);
    let cfg = pki.client_config(Some("big"));
    let ex = smol::LocalExecutor::new();
    let tasks: Vec<_> = (1..=100u32)
        .map(|node| {
            let cfg = cfg.clone();
            let addr = d.addr;
            ex.spawn(async move {
                let mut c = Client::connect_and_init(addr, b"big", Some(cfg), &InitParams::new(node), WAIT).await?;
                c.send_echo_request(node).await?;
                loop {
                    let m = c.recv(WAIT).await?;
                    if m.msg_type == MsgType::EchoReply {
                        return Ok::<_, qnetd::client::ClientError>((m.seq.unwrap_or(0), c));
                    }
                }
            })
        })
        .collect();
    let results: Vec<_> = block_on(ex.run(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    }));
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok((seq, _client)) => assert_eq!(*seq, i as u32 + 1),
            Err(e) => panic!("client {}: {e}", i + 1),
        }
    }
    let status = d.ipc("status\n");
    assert!(status.contains("Connected clients:\t\t100\n"), "{status}");
    assert!(status.contains("Connected clusters:\t\t1\n"), "{status}");
}
