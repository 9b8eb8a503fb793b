//! `qnetd-bench`: a load generator that plays N clusters × M nodes of qdevice
//! clients against a qnetd (ours or the C `corosync-qnetd`) over real TLS with
//! real client certificates, and measures the server from the outside (RSS and
//! CPU time from /proc, times and latencies on the client side).
//!
//! Subcommands:
//! * `keys`: one ECDSA P-256 key and PKCS#10 request (DER, `CN=<cluster>`) per
//!   cluster, for the target server's own certutil to sign (`scripts/bench.sh`
//!   runs `corosync-qnetd-certutil -s` for both servers).
//! * `run`: start the server (a shell command), drive the phases below, write
//!   `key=value` results.
//! * `report`: print two result files side by side with ratios and targets.
//! * `probe`: check that a server survives a node leaving while the only other
//!   connected node of its cluster has done INIT but sent no node list yet (the
//!   C qnetd 3.0.3 segfaults there; see BENCHMARKS.md).
//! * `free-port`: print a free TCP port on 127.0.0.1.
//!
//! Connect phases keep at most `--connect-window` clients between TCP connect
//! and INIT_REPLY, and end after `--phase-timeout-s`: clients not in by then
//! leave the run (before their next attempt, never by resetting a connection
//! that got in) and later phases use the ones that did; the results say how
//! many.
//!
//! Phases of `run`, all against one server process (restarted once):
//! 1. idle RSS;
//! 2. connect the first `--small` clients (whole clusters) and wait until every
//!    one holds a vote; RSS;
//! 3. connect the rest; RSS;
//! 4. heartbeats: (if `--hb-fast-ms` differs from `--hb-ms`, every client first
//!    switches to it with SET_OPTION) the server's CPU time over `--hb-window-s`
//!    divided by the ECHO replies received in that window;
//! 5. vote latency: `--latency-clusters` clusters split 2|2 and merge again,
//!    `--event-rate` events per second; each node's latency runs from the moment
//!    the last node of its cluster has written its new membership list to the
//!    VOTE_INFO for its new ring (ACK or NACK, so a split's winners include the
//!    NACK round trip of the losers, as ffsplit's two phases demand);
//! 6. the server is stopped (SIGTERM) and started again; when its port accepts,
//!    every (remaining) client reconnects at once (the reconnect storm).
//!
//! The generator is one thread (a smol `LocalExecutor`), so on a 2-core machine
//! it leaves the other core to the (single-threaded) server. Each node is one
//! task using [`qnetd::client::Client`]; messages are built with [`qnetd::wire`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argh::FromArgs;
use async_io::Timer;
use futures_lite::future;
use qnetd::client::{Client, ClientError, InitParams};
use qnetd::wire::{Heuristics, Message, MsgType, NodeInfo, NodeState, RingId, Vote};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use smol::channel::{Receiver, Sender};
use smol::lock::Semaphore;

/// Load generator and measurements for qnetd servers (see scripts/bench.sh).
#[derive(FromArgs)]
struct Top {
    #[argh(subcommand)]
    cmd: Sub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Sub {
    Keys(KeysArgs),
    Run(RunArgs),
    Report(ReportArgs),
    FreePort(FreePortArgs),
    Probe(ProbeArgs),
}

/// Write <dir>/<prefix><i>.crq (PKCS#10 DER, CN=<prefix><i>) and
/// <dir>/<prefix><i>.key (PKCS#8 DER, ECDSA P-256) for i in 0..clusters.
#[derive(FromArgs)]
#[argh(subcommand, name = "keys")]
struct KeysArgs {
    /// output directory
    #[argh(option)]
    dir: PathBuf,
    /// number of clusters
    #[argh(option)]
    clusters: usize,
    /// cluster name prefix
    #[argh(option, default = "String::from(\"bench\")")]
    prefix: String,
}

/// Start a server and measure it (results as key=value lines).
#[derive(FromArgs)]
#[argh(subcommand, name = "run")]
struct RunArgs {
    /// label for the results (e.g. "ours", "C")
    #[argh(option)]
    label: String,
    /// shell command that runs the server in the foreground; it must `exec`
    /// the server so that the child's PID is the server's
    #[argh(option)]
    server_cmd: String,
    /// where the server's stdout/stderr go
    #[argh(option)]
    server_log: PathBuf,
    /// server address (127.0.0.0/8 only)
    #[argh(option)]
    addr: SocketAddr,
    /// CA certificate the clients trust (PEM, or a qnetd-cacert.crt export)
    #[argh(option)]
    ca: PathBuf,
    /// directory with the signed cluster-<name>.crt files (DER)
    #[argh(option)]
    certs: PathBuf,
    /// directory with the <name>.key files written by `keys`
    #[argh(option)]
    keys: PathBuf,
    /// cluster name prefix, as given to `keys`
    #[argh(option, default = "String::from(\"bench\")")]
    prefix: String,
    /// number of clusters
    #[argh(option)]
    clusters: usize,
    /// nodes per cluster (even, ≥ 2: latency events split clusters in halves)
    #[argh(option, default = "4")]
    nodes: u32,
    /// clients in the first step (rounded up to whole clusters)
    #[argh(option)]
    small: usize,
    /// heartbeat interval sent in INIT, ms (qdevice default 8000)
    #[argh(option, default = "8000")]
    hb_ms: u32,
    /// heartbeat interval during the heartbeat phase, ms (set with SET_OPTION)
    #[argh(option, default = "1000")]
    hb_fast_ms: u32,
    /// length of the heartbeat measurement window, s
    #[argh(option, default = "10")]
    hb_window_s: u64,
    /// clusters that split and merge in the latency phase (0 = all)
    #[argh(option, default = "0")]
    latency_clusters: usize,
    /// membership-change events per second in the latency phase
    #[argh(option, default = "200")]
    event_rate: u32,
    /// at most this many clients between TCP connect and INIT_REPLY at once
    /// (0 = unlimited: every client at the same instant)
    #[argh(option, default = "0")]
    connect_window: usize,
    /// per-attempt limit for connect + PREINIT + TLS + INIT, s
    #[argh(option, default = "30")]
    attempt_timeout_s: u64,
    /// give up waiting for a phase after this many seconds
    #[argh(option, default = "240")]
    phase_timeout_s: u64,
    /// results file (key=value lines)
    #[argh(option)]
    out: PathBuf,
}

/// Print the comparison table of two result files.
#[derive(FromArgs)]
#[argh(subcommand, name = "report")]
struct ReportArgs {
    /// our results
    #[argh(positional)]
    ours: PathBuf,
    /// the C qnetd's results
    #[argh(positional)]
    c: PathBuf,
}

/// Start a server and check that it survives a node leaving while the only
/// other connected node of its cluster has done INIT but sent no node list yet
/// (ffsplit, lowest tie-breaker). Exit status 0 if the server survives.
#[derive(FromArgs)]
#[argh(subcommand, name = "probe")]
struct ProbeArgs {
    /// shell command that runs the server in the foreground (`exec` it)
    #[argh(option)]
    server_cmd: String,
    /// where the server's stdout/stderr go
    #[argh(option)]
    server_log: PathBuf,
    /// server address (127.0.0.0/8 only)
    #[argh(option)]
    addr: SocketAddr,
    /// CA certificate the clients trust
    #[argh(option)]
    ca: PathBuf,
    /// directory with cluster-<name>.crt
    #[argh(option)]
    certs: PathBuf,
    /// directory with <name>.key
    #[argh(option)]
    keys: PathBuf,
    /// cluster name (a key and certificate must exist for it)
    #[argh(option, default = "String::from(\"bench0\")")]
    cluster: String,
}

/// Print a free TCP port on 127.0.0.1.
#[derive(FromArgs)]
#[argh(subcommand, name = "free-port")]
struct FreePortArgs {}

fn main() {
    let top: Top = argh::from_env();
    let r = match top.cmd {
        Sub::Keys(a) => keys(&a),
        Sub::Run(a) => run(a),
        Sub::Report(a) => report(&a),
        Sub::Probe(a) => probe(&a),
        Sub::FreePort(_) => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| println!("{}", a.port()))
            .map_err(|e| format!("cannot bind 127.0.0.1:0: {e}")),
    };
    if let Err(e) = r {
        eprintln!("qnetd-bench: {e}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------------ keys

fn keys(a: &KeysArgs) -> Result<(), String> {
    std::fs::create_dir_all(&a.dir).map_err(|e| format!("cannot create {}: {e}", a.dir.display()))?;
    for i in 0..a.clusters {
        let name = format!("{}{}", a.prefix, i);
        let key = rcgen::KeyPair::generate().map_err(|e| format!("key generation: {e}"))?;
        let mut params = rcgen::CertificateParams::new(Vec::new()).map_err(|e| e.to_string())?;
        let mut dn = rcgen::DistinguishedName::new();
        // PrintableString, as the real client tool writes the subject.
        let cn = rcgen::string::PrintableString::try_from(name.as_str()).map_err(|e| format!("{name}: {e}"))?;
        dn.push(rcgen::DnType::CommonName, rcgen::DnValue::PrintableString(cn));
        params.distinguished_name = dn;
        let csr = params.serialize_request(&key).map_err(|e| format!("CSR for {name}: {e}"))?;
        write_file(&a.dir.join(format!("{name}.crq")), csr.der().as_ref())?;
        write_file(&a.dir.join(format!("{name}.key")), &key.serialize_der())?;
    }
    Ok(())
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), String> {
    std::fs::write(path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

// ------------------------------------------------------------------ /proc

/// Resident set of a process, kB (VmRSS, VmHWM, RssAnon).
#[derive(Clone, Copy, Default, Debug)]
struct Mem {
    rss: u64,
    hwm: u64,
    anon: u64,
}

fn proc_mem(pid: u32) -> Result<Mem, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(Mem { rss: field("VmRSS:"), hwm: field("VmHWM:"), anon: field("RssAnon:") })
}

/// User + system CPU time of a process, seconds.
fn proc_cpu(pid: u32) -> Result<f64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may contain spaces) start at state (3).
    let rest = s.rsplit_once(')').map(|(_, r)| r).ok_or("bad /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, String> {
        f.get(i).and_then(|v| v.parse::<f64>().ok()).ok_or_else(|| "bad /proc stat field".to_string())
    };
    // utime is field 14, stime 15 (1-based); `f[0]` is field 3.
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) / hz)
}

// ------------------------------------------------------------------ shared state

/// What the orchestrator tells a node task.
#[derive(Debug, Clone, Copy)]
enum Cmd {
    /// (Re)connect now, and keep retrying until connected.
    Connect,
    /// Send the cluster's current view (membership + quorum lists).
    Membership,
    /// Switch the heartbeat interval (SET_OPTION + own timer).
    Heartbeat(u32),
    /// End the task.
    Stop,
}

struct ClusterSt {
    name: String,
    tls: Arc<rustls::ClientConfig>,
    /// Split into two halves (each its own ring) or whole.
    split: bool,
    ring_seq: u64,
    /// Nodes of the current event that have not yet written their lists.
    event_unsent: u32,
    /// When the last node of the current event wrote its lists.
    event_t0: Option<Instant>,
}

#[derive(Default)]
struct NodeSt {
    /// Takes part in the phases (set when told to connect; cleared when a
    /// connect phase ran out of time before this node got in).
    active: bool,
    connected: bool,
    /// Got a VOTE_INFO (ACK or NACK) for its current ring since (re)connecting
    /// or since the last membership change.
    decided: bool,
    ack: bool,
    /// A latency sample is due at the next decision.
    event_pending: bool,
}

#[derive(Default)]
struct Counters {
    connected: usize,
    /// Connect attempts under way.
    in_flight: usize,
    decided: usize,
    acks: usize,
    echo_replies: u64,
    connect_attempts: u64,
    connect_failures: u64,
    /// Dropped by the server (or network) while the orchestrator did not expect it.
    unexpected_disconnects: u64,
    server_errors: u64,
    late_or_stray_votes: u64,
}

struct Bench {
    nodes_per_cluster: u32,
    hb_ms: u32,
    clusters: Vec<ClusterSt>,
    nodes: Vec<NodeSt>,
    c: Counters,
    /// µs, one per node per event.
    latencies: Vec<u64>,
    /// Nodes reconnect by themselves after an unexpected drop (off while the
    /// orchestrator restarts the server).
    auto_reconnect: bool,
    first_error: Option<String>,
    /// The server process while it should be running.
    server_pid: Option<u32>,
}

type Shared = Rc<RefCell<Bench>>;

impl Bench {
    /// Ring and membership of node `id` (1-based) in cluster `c` now.
    fn view(&self, c: usize, id: u32) -> (RingId, Vec<u32>) {
        let cl = &self.clusters[c];
        let m = self.nodes_per_cluster;
        if cl.split {
            let half = m / 2;
            let (lo, hi) = if id <= half { (1, half) } else { (half + 1, m) };
            (RingId { node_id: lo, seq: cl.ring_seq }, (lo..=hi).collect())
        } else {
            (RingId { node_id: 1, seq: cl.ring_seq }, (1..=m).collect())
        }
    }

    fn set_connected(&mut self, idx: usize, on: bool) {
        let n = &mut self.nodes[idx];
        if n.connected != on {
            n.connected = on;
            if on {
                self.c.connected += 1
            } else {
                self.c.connected -= 1
            }
        }
        if !on {
            self.undecide(idx);
        }
    }

    fn undecide(&mut self, idx: usize) {
        let n = &mut self.nodes[idx];
        if n.decided {
            n.decided = false;
            self.c.decided -= 1;
        }
        if n.ack {
            n.ack = false;
            self.c.acks -= 1;
        }
    }

    fn note_error(&mut self, what: String) {
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }
}

// ------------------------------------------------------------------ node task

/// Small deterministic jitter source (xorshift), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

struct NodeCtx {
    b: Shared,
    idx: usize,
    cluster: usize,
    id: u32,
    addr: SocketAddr,
    window: Option<Rc<Semaphore>>,
    attempt_timeout: Duration,
    rx: Receiver<Cmd>,
    rng: Rng,
}

// Lives only from one select to the match that consumes it.
#[allow(clippy::large_enum_variant)]
enum Ev {
    Msg(Result<Message, ClientError>),
    Cmd(Option<Cmd>),
}

enum Next {
    /// Wait for the orchestrator's next Connect.
    WaitConnect,
    /// Reconnect by ourselves after a pause (unexpected drop).
    Reconnect,
    Stop,
}

async fn node_task(mut n: NodeCtx) {
    let mut next = Next::WaitConnect;
    loop {
        match next {
            Next::Stop => return,
            Next::WaitConnect => loop {
                match n.rx.recv().await {
                    Ok(Cmd::Connect) => break,
                    Ok(Cmd::Stop) | Err(_) => return,
                    Ok(_) => {}
                }
            },
            Next::Reconnect => {
                Timer::after(Duration::from_millis(500 + n.rng.below(1000))).await;
            }
        }
        let Some(client) = connect(&mut n).await else { return };
        next = session(&mut n, client).await;
    }
}

/// Connect (retrying until it works or a Stop/Close arrives) and send what a
/// qdevice sends right after INIT.
async fn connect(n: &mut NodeCtx) -> Option<Client> {
    let (cfg, name, ring, members) = {
        let b = n.b.borrow();
        let cl = &b.clusters[n.cluster];
        let (ring, members) = b.view(n.cluster, n.id);
        (cl.tls.clone(), cl.name.clone(), ring, members)
    };
    let mut backoff = 100u64;
    loop {
        // A Stop while we retry ends the task; other commands wait.
        if let Ok(Cmd::Stop) = n.rx.try_recv() {
            return None;
        }
        let permit = match &n.window {
            Some(w) => Some(w.acquire().await),
            None => None,
        };
        // The orchestrator gave up on us (a connect phase ran out of time):
        // leave without touching the server.
        if !n.b.borrow().nodes[n.idx].active {
            return None;
        }
        {
            let mut b = n.b.borrow_mut();
            b.c.connect_attempts += 1;
            b.c.in_flight += 1;
        }
        let mut params = InitParams::new(n.id);
        params.heartbeat_interval = n.b.borrow().hb_ms;
        params.ring_id = ring;
        let t = n.attempt_timeout;
        let attempt = async {
            let mut c = Client::connect_and_init(n.addr, name.as_bytes(), Some(cfg.clone()), &params, t).await?;
            c.send_set_option_kap(false).await?;
            let cfg_nodes: Vec<NodeInfo> = (1..=n.b.borrow().nodes_per_cluster).map(NodeInfo::new).collect();
            c.send_config_list(&cfg_nodes, Some(1), true).await?;
            let mem = member_infos(&members);
            c.send_membership_list(ring, &mem, Heuristics::Undefined).await?;
            c.send_quorum_list(true, &mem).await?;
            Ok::<Client, ClientError>(c)
        };
        let res = future::or(attempt, async {
            Timer::after(t).await;
            Err(ClientError::Timeout)
        })
        .await;
        drop(permit);
        n.b.borrow_mut().c.in_flight -= 1;
        match res {
            Ok(c) => {
                // In, even if the orchestrator gave up on us meanwhile: a
                // client that connected stays (dropping it now would be a
                // reset right after its setup, which is not what is measured).
                let mut b = n.b.borrow_mut();
                b.nodes[n.idx].active = true;
                b.set_connected(n.idx, true);
                return Some(c);
            }
            Err(e) => {
                let mut b = n.b.borrow_mut();
                b.c.connect_failures += 1;
                let msg = format!("connect {}/{}: {e}", name, n.id);
                b.note_error(msg);
            }
        }
        Timer::after(Duration::from_millis(backoff + n.rng.below(backoff))).await;
        backoff = (backoff * 2).min(2000);
    }
}

fn member_infos(ids: &[u32]) -> Vec<NodeInfo> {
    ids.iter()
        .map(|&id| {
            let mut i = NodeInfo::new(id);
            i.node_state = Some(NodeState::Member);
            i
        })
        .collect()
}

/// One connected session: heartbeats, votes, commands.
async fn session(n: &mut NodeCtx, mut c: Client) -> Next {
    let mut hb_ms = n.b.borrow().hb_ms as u64;
    let mut next_hb = Instant::now() + Duration::from_millis(n.rng.below(hb_ms) + 1);
    let mut echo_seq = 0u32;
    let end = loop {
        let wait = next_hb.saturating_duration_since(Instant::now());
        let ev = future::or(async { Ev::Msg(c.recv(wait).await) }, async { Ev::Cmd(n.rx.recv().await.ok()) }).await;
        let r: Result<(), ClientError> = match ev {
            Ev::Msg(Err(ClientError::Timeout)) => {
                next_hb += Duration::from_millis(hb_ms);
                if next_hb < Instant::now() {
                    next_hb = Instant::now() + Duration::from_millis(hb_ms);
                }
                echo_seq = echo_seq.wrapping_add(1);
                c.send_echo_request(echo_seq).await
            }
            Ev::Msg(Err(e)) => break Err(e),
            Ev::Msg(Ok(m)) => on_message(n, &mut c, m).await,
            Ev::Cmd(None) | Ev::Cmd(Some(Cmd::Stop)) => break Ok(Next::Stop),
            Ev::Cmd(Some(Cmd::Connect)) => Ok(()),
            Ev::Cmd(Some(Cmd::Heartbeat(ms))) => {
                hb_ms = ms as u64;
                next_hb = Instant::now() + Duration::from_millis(n.rng.below(hb_ms) + 1);
                let mut m = Message::new(MsgType::SetOption);
                m.seq = Some(c.next_seq());
                m.heartbeat_interval = Some(ms);
                c.send(&m).await
            }
            Ev::Cmd(Some(Cmd::Membership)) => send_view(n, &mut c).await,
        };
        if let Err(e) = r {
            break Err(e);
        }
    };
    drop(c);
    let mut b = n.b.borrow_mut();
    b.set_connected(n.idx, false);
    match end {
        Ok(next) => next,
        Err(e) => {
            b.c.unexpected_disconnects += u64::from(b.auto_reconnect);
            if b.auto_reconnect {
                let msg = format!("node {}/{} dropped: {e}", b.clusters[n.cluster].name, n.id);
                b.note_error(msg);
                Next::Reconnect
            } else {
                Next::WaitConnect
            }
        }
    }
}

async fn on_message(n: &mut NodeCtx, c: &mut Client, m: Message) -> Result<(), ClientError> {
    match m.msg_type {
        MsgType::EchoReply => {
            n.b.borrow_mut().c.echo_replies += 1;
            Ok(())
        }
        MsgType::VoteInfo => {
            if let Some(seq) = m.seq {
                c.send_vote_info_reply(seq).await?;
            }
            record_vote(n, m.ring_id, m.vote);
            Ok(())
        }
        MsgType::NodeListReply | MsgType::AskForVoteReply | MsgType::HeuristicsChangeReply => {
            record_vote(n, m.ring_id, m.vote);
            Ok(())
        }
        MsgType::SetOptionReply => Ok(()),
        MsgType::ServerError => {
            let mut b = n.b.borrow_mut();
            b.c.server_errors += 1;
            b.note_error(format!("SERVER_ERROR {:?}", m.reply_error_code));
            // A real qdevice disconnects on any server error.
            Err(ClientError::Unexpected(Box::new(m)))
        }
        _ => Err(ClientError::Unexpected(Box::new(m))),
    }
}

/// An ACK or NACK for the node's current ring decides it (and ends a pending
/// latency measurement); anything else is bookkeeping.
fn record_vote(n: &mut NodeCtx, ring: Option<RingId>, vote: Option<Vote>) {
    let now = Instant::now();
    let mut b = n.b.borrow_mut();
    let (cur, _) = b.view(n.cluster, n.id);
    let Some(v @ (Vote::Ack | Vote::Nack)) = vote else { return };
    if ring != Some(cur) {
        b.c.late_or_stray_votes += 1;
        return;
    }
    let t0 = b.clusters[n.cluster].event_t0;
    let bb = &mut *b;
    let node = &mut bb.nodes[n.idx];
    if node.event_pending {
        node.event_pending = false;
        match t0 {
            Some(t0) => bb.latencies.push(now.saturating_duration_since(t0).as_micros() as u64),
            None => bb.c.late_or_stray_votes += 1,
        }
    }
    if !node.decided {
        node.decided = true;
        bb.c.decided += 1;
    }
    let ack = v == Vote::Ack;
    if node.ack != ack {
        node.ack = ack;
        if ack {
            bb.c.acks += 1
        } else {
            bb.c.acks -= 1
        }
    }
}

/// Membership change: send the cluster's new view as a qdevice does (membership
/// list, then quorum list).
async fn send_view(n: &mut NodeCtx, c: &mut Client) -> Result<(), ClientError> {
    let (ring, members, split) = {
        let mut b = n.b.borrow_mut();
        b.undecide(n.idx);
        b.nodes[n.idx].event_pending = true;
        let (ring, members) = b.view(n.cluster, n.id);
        (ring, members, b.clusters[n.cluster].split)
    };
    let mem = member_infos(&members);
    c.send_membership_list(ring, &mem, Heuristics::Undefined).await?;
    c.send_quorum_list(!split, &mem).await?;
    let mut b = n.b.borrow_mut();
    let cl = &mut b.clusters[n.cluster];
    cl.event_unsent = cl.event_unsent.saturating_sub(1);
    if cl.event_unsent == 0 {
        cl.event_t0 = Some(Instant::now());
    }
    Ok(())
}

// ------------------------------------------------------------------ orchestrator

struct Server {
    cmd: String,
    log: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
}

impl Server {
    fn pid(&self) -> Result<u32, String> {
        self.child.as_ref().map(|c| c.id()).ok_or_else(|| "server not running".into())
    }

    /// Spawn and wait until the port accepts. Returns the time that took.
    async fn start(&mut self) -> Result<Duration, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let child = Command::new("sh")
            .arg("-c")
            .arg(&self.cmd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start server: {e}"))?;
        self.child = Some(child);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!("server exited during start-up ({st}); see {}", self.log.display()));
                }
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(format!("server not listening on {} after 30 s", self.addr));
            }
            Timer::after(Duration::from_millis(5)).await;
        }
    }

    /// SIGTERM and wait for the exit (SIGKILL after 20 s).
    async fn stop(&mut self) -> Result<(), String> {
        let Some(mut c) = self.child.take() else { return Ok(()) };
        // SAFETY: kill(2) on the PID of our own child.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Ok(Some(_)) = c.try_wait() {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = c.kill();
                let _ = c.wait();
                return Err("server ignored SIGTERM for 20 s (killed)".into());
            }
            Timer::after(Duration::from_millis(5)).await;
        }
    }
}

struct Results {
    lines: Vec<(String, String)>,
}

impl Results {
    fn put(&mut self, k: &str, v: impl std::fmt::Display) {
        eprintln!("  {k} = {v}");
        self.lines.push((k.to_string(), v.to_string()));
    }
}

fn run(a: RunArgs) -> Result<(), String> {
    if !a.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", a.addr));
    }
    if a.nodes < 2 || a.nodes % 2 != 0 {
        return Err("--nodes must be even and at least 2".into());
    }
    let ca_pem = read_file(&a.ca)?;
    let ca =
        CertificateDer::from_pem_slice(&ca_pem).map_err(|e| format!("{}: no PEM certificate: {e}", a.ca.display()))?;
    let mut clusters = Vec::with_capacity(a.clusters);
    for i in 0..a.clusters {
        let name = format!("{}{}", a.prefix, i);
        let cert = read_file(&a.certs.join(format!("cluster-{name}.crt")))?;
        let key = read_file(&a.keys.join(format!("{name}.key")))?;
        let tls =
            qnetd::tls::client_config(ca.as_ref(), Some((vec![cert], key))).map_err(|e| format!("{name}: {e}"))?;
        clusters.push(ClusterSt { name, tls, split: false, ring_seq: 1, event_unsent: 0, event_t0: None });
    }
    let total = a.clusters * a.nodes as usize;
    let b: Shared = Rc::new(RefCell::new(Bench {
        nodes_per_cluster: a.nodes,
        hb_ms: a.hb_ms,
        clusters,
        nodes: (0..total).map(|_| NodeSt::default()).collect(),
        c: Counters::default(),
        latencies: Vec::new(),
        auto_reconnect: true,
        first_error: None,
        server_pid: None,
    }));
    let ex = Rc::new(smol::LocalExecutor::new());
    let window = (a.connect_window > 0).then(|| Rc::new(Semaphore::new(a.connect_window)));
    let mut txs: Vec<Sender<Cmd>> = Vec::with_capacity(total);
    for idx in 0..total {
        let (tx, rx) = smol::channel::unbounded();
        txs.push(tx);
        let ctx = NodeCtx {
            b: b.clone(),
            idx,
            cluster: idx / a.nodes as usize,
            id: (idx % a.nodes as usize) as u32 + 1,
            addr: a.addr,
            window: window.clone(),
            attempt_timeout: Duration::from_secs(a.attempt_timeout_s),
            rx,
            rng: Rng(0x9E37_79B9_7F4A_7C15 ^ (idx as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D)),
        };
        ex.spawn(node_task(ctx)).detach();
    }
    let server = Server { cmd: a.server_cmd.clone(), log: a.server_log.clone(), addr: a.addr, child: None };
    let res = smol::block_on(ex.run(orchestrate(&a, &b, &txs, server)));
    let mut out = String::new();
    let results = match res {
        Ok(r) => r,
        Err((r, e)) => {
            for (k, v) in &r.lines {
                let _ = writeln!(out, "{k}={v}");
            }
            let _ = writeln!(out, "error={e}");
            let _ = std::fs::write(&a.out, out);
            return Err(e);
        }
    };
    for (k, v) in &results.lines {
        let _ = writeln!(out, "{k}={v}");
    }
    write_file(&a.out, out.as_bytes())
}

async fn orchestrate(
    a: &RunArgs,
    b: &Shared,
    txs: &[Sender<Cmd>],
    mut server: Server,
) -> Result<Results, (Results, String)> {
    let mut r = Results { lines: Vec::new() };
    let res = phases(a, b, txs, &mut server, &mut r).await;
    // Server first: the clients then see EOF instead of resetting connections
    // under a running server.
    b.borrow_mut().server_pid = None;
    let stopped = server.stop().await;
    for tx in txs {
        let _ = tx.try_send(Cmd::Stop);
    }
    match res.and(stopped) {
        Ok(()) => Ok(r),
        Err(e) => Err((r, e)),
    }
}

fn send_all(txs: &[Sender<Cmd>], range: std::ops::Range<usize>, cmd: Cmd) {
    for tx in &txs[range] {
        let _ = tx.try_send(cmd);
    }
}

/// Whether a process has ended (gone, or a zombie not yet reaped).
fn process_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Err text when the server we are measuring has died under us.
fn server_gone(b: &Bench) -> Option<String> {
    let pid = b.server_pid?;
    process_ended(pid).then(|| format!("the server (pid {pid}) died; see its log (a crash shows in dmesg)"))
}

/// Wait until `done(bench)`; Err after `limit` or when the server dies.
async fn wait_until(
    b: &Shared,
    what: &str,
    limit: Duration,
    done: impl Fn(&Bench) -> bool,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        {
            let bb = b.borrow();
            if done(&bb) {
                return Ok(t0.elapsed());
            }
            if let Some(e) = server_gone(&bb) {
                return Err(format!("{what}: {e}"));
            }
            if t0.elapsed() > limit {
                let c = &bb.c;
                return Err(format!(
                    "{what}: not done after {} s (connected {}, decided {}, acks {}, attempts {}, failures {}, \
                     unexpected disconnects {}, first error: {})",
                    limit.as_secs(),
                    c.connected,
                    c.decided,
                    c.acks,
                    c.connect_attempts,
                    c.connect_failures,
                    c.unexpected_disconnects,
                    bb.first_error.as_deref().unwrap_or("none")
                ));
            }
        }
        Timer::after(Duration::from_millis(2)).await;
    }
}

/// Let the server finish what is queued (its CPU time stops moving), so the
/// readings that follow are of a quiet server.
async fn settle(pid: u32) {
    let mut last = proc_cpu(pid).unwrap_or(0.0);
    // At most 5 s: a server that is never idle (e.g. busy with heartbeats) is
    // measured as it is.
    for _ in 0..20 {
        Timer::after(Duration::from_millis(250)).await;
        let now = proc_cpu(pid).unwrap_or(0.0);
        if now - last < 0.005 {
            break;
        }
        last = now;
    }
}

/// Outcome of a connect phase.
struct Storm {
    secs: f64,
    cpu: f64,
    /// Clients of the phase holding the vote at the end.
    reached: usize,
    complete: bool,
}

/// Send Connect to the active nodes of `range` (with `join`, the whole range
/// becomes active first; t0 = just before) and wait
/// until each of them holds the vote. If that takes longer than the phase
/// limit, the clients not connected by then are stopped and leave the run (the
/// later phases use the clients that got in, and the results say so).
async fn storm(
    a: &RunArgs,
    b: &Shared,
    txs: &[Sender<Cmd>],
    pid: u32,
    range: std::ops::Range<usize>,
    join: bool,
) -> Result<Storm, String> {
    let cpu0 = proc_cpu(pid)?;
    let members: Vec<usize> = {
        let mut bb = b.borrow_mut();
        if join {
            for i in range.clone() {
                bb.nodes[i].active = true;
            }
        }
        range.filter(|&i| bb.nodes[i].active).collect()
    };
    let t0 = Instant::now();
    for &i in &members {
        let _ = txs[i].try_send(Cmd::Connect);
    }
    let limit = Duration::from_secs(a.phase_timeout_s);
    let holding = |bb: &Bench| members.iter().filter(|&&i| bb.nodes[i].decided && bb.nodes[i].ack).count();
    let done = loop {
        if holding(&b.borrow()) == members.len() {
            break true;
        }
        if t0.elapsed() > limit {
            break false;
        }
        if let Some(e) = server_gone(&b.borrow()) {
            return Err(e);
        }
        Timer::after(Duration::from_millis(2)).await;
    };
    let secs = t0.elapsed().as_secs_f64();
    let cpu = proc_cpu(pid)? - cpu0;
    let reached = holding(&b.borrow());
    if !done {
        // Out of time: the clients still outside give up before their next
        // attempt (they end without touching the server); attempts under way
        // finish, and who gets in stays. Then everyone in gets the vote.
        {
            let mut bb = b.borrow_mut();
            for &i in &members {
                if !bb.nodes[i].connected {
                    bb.nodes[i].active = false;
                }
            }
        }
        let grace = Duration::from_secs(a.attempt_timeout_s + 5);
        wait_until(b, "attempts under way", grace, |bb| bb.c.in_flight == 0).await?;
        wait_until(b, "votes of the late ones", limit, |bb| {
            bb.nodes.iter().filter(|n| n.active).all(|n| n.connected && n.decided && n.ack)
        })
        .await?;
        let active = active_count(b);
        eprintln!(
            "  (out of time after {secs:.0} s: {reached} of {} held the vote; {active} clients stay)",
            members.len()
        );
    }
    Ok(Storm { secs, cpu, reached, complete: done })
}

fn active_count(b: &Shared) -> usize {
    b.borrow().nodes.iter().filter(|n| n.active).count()
}

fn put_storm(r: &mut Results, key: &str, st: &Storm) {
    r.put(&format!("{key}_s"), format!("{:.3}", st.secs));
    r.put(&format!("{key}_cpu_s"), format!("{:.2}", st.cpu));
    r.put(&format!("{key}_reached"), st.reached);
    r.put(&format!("{key}_complete"), u8::from(st.complete));
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

async fn phases(
    a: &RunArgs,
    b: &Shared,
    txs: &[Sender<Cmd>],
    server: &mut Server,
    r: &mut Results,
) -> Result<(), String> {
    let m = a.nodes as usize;
    let total = txs.len();
    let small = a.small.div_ceil(m).min(a.clusters) * m;
    let limit = Duration::from_secs(a.phase_timeout_s);
    let label = &a.label;
    let gen_cpu0 = proc_cpu(std::process::id())?;
    r.put("server", label);
    r.put("clusters", a.clusters);
    r.put("nodes_per_cluster", a.nodes);
    r.put("clients_small", small);
    r.put("clients", total);
    r.put("hb_fast_ms", a.hb_fast_ms);
    r.put("connect_window", a.connect_window);
    r.put("phase_timeout_s", a.phase_timeout_s);

    eprintln!("[{label}] start server");
    let t = server.start().await?;
    let pid = server.pid()?;
    b.borrow_mut().server_pid = Some(pid);
    r.put("start_to_listen_s", format!("{:.3}", t.as_secs_f64()));
    Timer::after(Duration::from_secs(1)).await;
    let idle = proc_mem(pid)?;
    r.put("rss_idle_kb", idle.rss);
    r.put("anon_idle_kb", idle.anon);

    eprintln!("[{label}] connect {small} clients");
    let st = storm(a, b, txs, pid, 0..small, true).await?;
    put_storm(r, "connect_small", &st);
    settle(pid).await;
    let mem = proc_mem(pid)?;
    r.put("rss_small_kb", mem.rss);
    r.put("anon_small_kb", mem.anon);
    r.put("clients_small_active", active_count(b));

    if total > small && st.complete {
        eprintln!("[{label}] connect {} more clients", total - small);
        let st = storm(a, b, txs, pid, small..total, true).await?;
        put_storm(r, "connect_rest", &st);
        settle(pid).await;
    }
    let active = active_count(b);
    let mem = proc_mem(pid)?;
    r.put("clients_active", active);
    r.put("rss_full_kb", mem.rss);
    r.put("anon_full_kb", mem.anon);

    // Heartbeats (optionally at a faster rhythm, so the window holds many).
    eprintln!("[{label}] heartbeats of {active} clients every {} ms for {} s", a.hb_fast_ms, a.hb_window_s);
    if a.hb_fast_ms != a.hb_ms {
        send_all(txs, 0..total, Cmd::Heartbeat(a.hb_fast_ms));
        // One full interval, so that every client is on the new rhythm.
        Timer::after(Duration::from_millis(a.hb_fast_ms as u64 + 500)).await;
    }
    let (cpu0, hb0) = (proc_cpu(pid)?, b.borrow().c.echo_replies);
    Timer::after(Duration::from_secs(a.hb_window_s)).await;
    let (cpu1, hb1) = (proc_cpu(pid)?, b.borrow().c.echo_replies);
    if a.hb_fast_ms != a.hb_ms {
        send_all(txs, 0..total, Cmd::Heartbeat(a.hb_ms));
    }
    let hbs = hb1 - hb0;
    r.put("hb_count", hbs);
    r.put("hb_cpu_s", format!("{:.2}", cpu1 - cpu0));
    let per10k = if hbs > 0 { (cpu1 - cpu0) * 10_000.0 / hbs as f64 } else { f64::NAN };
    r.put("hb_cpu_per_10k_s", format!("{per10k:.4}"));
    settle(pid).await;

    // Vote latency: each chosen cluster splits 2|2, then (second round) merges.
    let lat_clusters = if a.latency_clusters == 0 { a.clusters } else { a.latency_clusters.min(a.clusters) };
    eprintln!("[{label}] latency: {lat_clusters} clusters split, then merge; {} events/s", a.event_rate);
    b.borrow_mut().latencies.clear();
    let cpu0 = proc_cpu(pid)?;
    let gap = Duration::from_secs_f64(1.0 / a.event_rate.max(1) as f64);
    let t_lat = Instant::now();
    let mut next = Instant::now();
    let mut events = 0usize;
    for round in 0..2 {
        for c in 0..lat_clusters {
            let nodes: Vec<usize> = {
                let mut bb = b.borrow_mut();
                let nodes: Vec<usize> = (c * m..(c + 1) * m).filter(|&i| bb.nodes[i].active).collect();
                let cl = &mut bb.clusters[c];
                cl.split = round == 0;
                cl.ring_seq += 1;
                cl.event_unsent = nodes.len() as u32;
                cl.event_t0 = None;
                nodes
            };
            if nodes.is_empty() {
                continue;
            }
            events += 1;
            for &i in &nodes {
                let _ = txs[i].try_send(Cmd::Membership);
            }
            next += gap;
            Timer::at(next).await;
        }
        // Every node of the round decided before the next round starts (a
        // cluster must not get its merge while its split is still in flight).
        let n = lat_clusters * m;
        wait_until(b, "latency round", limit, |bb| bb.nodes[..n].iter().all(|x| !x.event_pending)).await?;
    }
    let lat_cpu = proc_cpu(pid)? - cpu0;
    r.put("lat_events", events);
    r.put("lat_wall_s", format!("{:.2}", t_lat.elapsed().as_secs_f64()));
    r.put("lat_cpu_s", format!("{lat_cpu:.2}"));
    {
        let mut l = b.borrow().latencies.clone();
        l.sort_unstable();
        r.put("lat_samples", l.len());
        r.put("lat_p50_ms", format!("{:.3}", percentile(&l, 50.0)));
        r.put("lat_p90_ms", format!("{:.3}", percentile(&l, 90.0)));
        r.put("lat_p99_ms", format!("{:.3}", percentile(&l, 99.0)));
        r.put("lat_max_ms", format!("{:.3}", percentile(&l, 100.0)));
    }
    wait_until(b, "all ACK after merge", limit, |bb| bb.c.acks >= active).await?;
    settle(pid).await;
    let mem = proc_mem(pid)?;
    r.put("hwm_kb", mem.hwm);

    // Restart: stop, wait until every client saw it, start, reconnect storm.
    eprintln!("[{label}] restart the server; reconnect storm of {active} clients");
    {
        let mut bb = b.borrow_mut();
        bb.auto_reconnect = false;
        bb.server_pid = None;
    }
    server.stop().await?;
    wait_until(b, "clients notice the stop", limit, |bb| bb.c.connected == 0).await?;
    let t = server.start().await?;
    let pid = server.pid()?;
    b.borrow_mut().server_pid = Some(pid);
    r.put("restart_to_listen_s", format!("{:.3}", t.as_secs_f64()));
    b.borrow_mut().auto_reconnect = true;
    let st = storm(a, b, txs, pid, 0..total, false).await?;
    put_storm(r, "restart_storm", &st);
    settle(pid).await;
    let mem = proc_mem(pid)?;
    r.put("rss_after_restart_kb", mem.rss);

    let bb = b.borrow();
    r.put("connect_attempts", bb.c.connect_attempts);
    r.put("connect_failures", bb.c.connect_failures);
    r.put("unexpected_disconnects", bb.c.unexpected_disconnects);
    r.put("server_errors", bb.c.server_errors);
    r.put("stray_votes", bb.c.late_or_stray_votes);
    r.put("first_error", bb.first_error.as_deref().unwrap_or("none"));
    r.put("generator_cpu_s", format!("{:.1}", proc_cpu(std::process::id())? - gen_cpu0));
    Ok(())
}

// ------------------------------------------------------------------ probe

fn probe(a: &ProbeArgs) -> Result<(), String> {
    if !a.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", a.addr));
    }
    let ca_pem = read_file(&a.ca)?;
    let ca =
        CertificateDer::from_pem_slice(&ca_pem).map_err(|e| format!("{}: no PEM certificate: {e}", a.ca.display()))?;
    let cert = read_file(&a.certs.join(format!("cluster-{}.crt", a.cluster)))?;
    let key = read_file(&a.keys.join(format!("{}.key", a.cluster)))?;
    let tls = qnetd::tls::client_config(ca.as_ref(), Some((vec![cert], key))).map_err(|e| e.to_string())?;
    let mut server = Server { cmd: a.server_cmd.clone(), log: a.server_log.clone(), addr: a.addr, child: None };
    let t = Duration::from_secs(10);
    let name = a.cluster.as_bytes();
    let outcome = smol::block_on(async {
        server.start().await?;
        let pid = server.pid()?;
        let err = |e: ClientError| format!("client: {e}");
        // Node 1: a complete member that holds the vote.
        let ring = RingId { node_id: 1, seq: 1 };
        let nodes = member_infos(&[1, 2]);
        let mut n1 =
            Client::connect_and_init(a.addr, name, Some(tls.clone()), &InitParams::new(1), t).await.map_err(err)?;
        n1.send_config_list(&[NodeInfo::new(1), NodeInfo::new(2)], Some(1), true).await.map_err(err)?;
        n1.send_membership_list(ring, &nodes, Heuristics::Undefined).await.map_err(err)?;
        n1.send_quorum_list(true, &nodes).await.map_err(err)?;
        loop {
            let m = n1.recv(t).await.map_err(err)?;
            if m.msg_type == MsgType::VoteInfo {
                n1.send_vote_info_reply(m.seq.unwrap_or(0)).await.map_err(err)?;
                break;
            }
        }
        // Node 2: INIT done, no node list yet (a real qdevice sends its lists
        // right after INIT_REPLY; a busy server reads them a bit later).
        let mut n2 =
            Client::connect_and_init(a.addr, name, Some(tls.clone()), &InitParams::new(2), t).await.map_err(err)?;
        // Node 1 leaves (clean close: nothing unread).
        drop(n1);
        Timer::after(Duration::from_millis(500)).await;
        let alive = !process_ended(pid);
        // Node 2 still has a server to talk to?
        let answered = n2.send_echo_request(1).await.is_ok() && n2.recv(Duration::from_secs(2)).await.is_ok();
        server.stop().await?;
        Ok::<_, String>((alive, answered))
    });
    let (alive, answered) = match outcome {
        Ok(x) => x,
        Err(e) => {
            let _ = smol::block_on(server.stop());
            return Err(e);
        }
    };
    if alive && answered {
        println!("survived: node 2 still gets answers after node 1 left");
        Ok(())
    } else {
        println!("DIED: the server is gone after node 1 left (alive={alive}, answered={answered})");
        Err("server did not survive".into())
    }
}

// ------------------------------------------------------------------ report

fn load_results(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// One cell of the table: a value, possibly only a lower bound (a phase that
/// ran out of time), and the number of clients it was measured with.
#[derive(Clone, Default)]
struct Cell {
    v: Option<f64>,
    at_least: bool,
    clients: f64,
    note: String,
}

enum Target {
    None,
    /// ours / C must be at most this.
    Ratio(f64, &'static str),
    /// ours must be at most this.
    Abs(f64, &'static str),
}

struct Row {
    label: String,
    ours: Cell,
    c: Cell,
    decimals: usize,
    /// Per client or per heartbeat: comparable across client counts.
    normalized: bool,
    target: Target,
}

fn report(a: &ReportArgs) -> Result<(), String> {
    let ours = load_results(&a.ours)?;
    let c = load_results(&a.c)?;
    let num = |m: &HashMap<String, String>, k: &str| -> Option<f64> { m.get(k).and_then(|v| v.parse().ok()) };
    let text = |m: &HashMap<String, String>, k: &str| -> String { m.get(k).cloned().unwrap_or_else(|| "?".into()) };
    let n = num(&ours, "clients").unwrap_or(0.0);
    let s = num(&ours, "clients_small").unwrap_or(0.0);
    let plain = |v: Option<f64>| Cell { v, clients: n, ..Default::default() };
    // Measured with the clients that got in (fewer than planned when a
    // connect phase ran out of time): say how many.
    let at = |m: &HashMap<String, String>, v: Option<f64>| {
        let active = num(m, "clients_active").unwrap_or(n);
        let note = if active < n { format!(" (at {active:.0})") } else { String::new() };
        Cell { v, at_least: false, clients: active, note }
    };
    let mb = |m: &HashMap<String, String>, k: &str| num(m, k).map(|v| v / 1024.0);
    let per_client = |m: &HashMap<String, String>| {
        let (full, small, active) = (num(m, "rss_full_kb")?, num(m, "rss_small_kb")?, num(m, "clients_active")?);
        (active > s).then(|| (full - small) / (active - s))
    };
    // A connect phase (or the two connect steps in a row): time or CPU, a lower
    // bound if it ran out of time.
    let storm = |m: &HashMap<String, String>, keys: &[&str], planned: f64, cpu: bool| {
        let mut cell = Cell { clients: planned, ..Default::default() };
        let (mut sum, mut reached) = (0.0, 0.0);
        for k in keys {
            // A later step that never ran (an earlier one ran out of time).
            let Some(v) = num(m, &format!("{k}_{}", if cpu { "cpu_s" } else { "s" })) else { continue };
            sum += v;
            reached += num(m, &format!("{k}_reached")).unwrap_or(0.0);
            cell.v = Some(sum);
            if num(m, &format!("{k}_complete")) == Some(0.0) {
                cell.at_least = !cpu;
                cell.note = if cpu { " (until then)".into() } else { format!(" ({reached:.0} of {planned:.0} voted)") };
                return cell;
            }
        }
        if planned < n {
            cell.note = format!(" ({planned:.0} clients)");
        }
        cell
    };
    let active = |m: &HashMap<String, String>| num(m, "clients_active").unwrap_or(n);
    let row = |label: String, ours: Cell, c: Cell, decimals: usize, normalized: bool, target: Target| Row {
        label,
        ours,
        c,
        decimals,
        normalized,
        target,
    };
    let conn = ["connect_small", "connect_rest"];
    let rows = vec![
        row(
            "idle RSS (MB)".into(),
            plain(mb(&ours, "rss_idle_kb")),
            plain(mb(&c, "rss_idle_kb")),
            2,
            true,
            Target::Abs(2.0, "≤ 2 MB"),
        ),
        row(
            format!("RSS with {s:.0} clients (MB)"),
            plain(mb(&ours, "rss_small_kb")),
            plain(mb(&c, "rss_small_kb")),
            1,
            true,
            Target::None,
        ),
        row(
            format!("RSS with {n:.0} clients (MB)"),
            at(&ours, mb(&ours, "rss_full_kb")),
            at(&c, mb(&c, "rss_full_kb")),
            1,
            false,
            Target::None,
        ),
        row(
            format!("RSS per client, {s:.0}→{n:.0} (KB)"),
            at(&ours, per_client(&ours)),
            at(&c, per_client(&c)),
            1,
            true,
            Target::Ratio(1.0 / 3.0, "≤ 1/3 of C"),
        ),
        row("peak RSS (MB)".into(), at(&ours, mb(&ours, "hwm_kb")), at(&c, mb(&c, "hwm_kb")), 1, false, Target::None),
        row(
            format!("connect {n:.0} clients, all voted (s)"),
            storm(&ours, &conn, n, false),
            storm(&c, &conn, n, false),
            2,
            false,
            Target::None,
        ),
        row(
            "  server CPU for it (s)".into(),
            storm(&ours, &conn, n, true),
            storm(&c, &conn, n, true),
            2,
            false,
            Target::None,
        ),
        row(
            "restart: start → listening (s)".into(),
            plain(num(&ours, "restart_to_listen_s")),
            plain(num(&c, "restart_to_listen_s")),
            3,
            true,
            Target::None,
        ),
        row(
            format!("reconnect storm after restart, {n:.0} voted (s)"),
            storm(&ours, &["restart_storm"], active(&ours), false),
            storm(&c, &["restart_storm"], active(&c), false),
            2,
            false,
            Target::Ratio(0.5, "≤ 1/2 of C"),
        ),
        row(
            "  server CPU for it (s)".into(),
            storm(&ours, &["restart_storm"], active(&ours), true),
            storm(&c, &["restart_storm"], active(&c), true),
            2,
            false,
            Target::None,
        ),
        row(
            format!("vote latency p50 at {n:.0} (ms)"),
            at(&ours, num(&ours, "lat_p50_ms")),
            at(&c, num(&c, "lat_p50_ms")),
            2,
            false,
            Target::None,
        ),
        row(
            format!("vote latency p99 at {n:.0} (ms)"),
            at(&ours, num(&ours, "lat_p99_ms")),
            at(&c, num(&c, "lat_p99_ms")),
            2,
            false,
            Target::Ratio(1.0, "≤ C"),
        ),
        row(
            "vote latency max (ms)".into(),
            at(&ours, num(&ours, "lat_max_ms")),
            at(&c, num(&c, "lat_max_ms")),
            2,
            false,
            Target::None,
        ),
        row(
            format!("server CPU per 10,000 heartbeats at {n:.0} (s)"),
            at(&ours, num(&ours, "hb_cpu_per_10k_s")),
            at(&c, num(&c, "hb_cpu_per_10k_s")),
            3,
            false,
            Target::None,
        ),
    ];
    let fmt = |cell: &Cell, d: usize| match cell.v.filter(|v| v.is_finite()) {
        Some(v) => format!("{}{v:.d$}{}", if cell.at_least { "> " } else { "" }, cell.note),
        None => "-".into(),
    };
    let mut out = String::new();
    let _ = writeln!(out, "| metric | ours | C corosync-qnetd | ours / C | target |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    let mut bounded = false;
    for Row { label, ours: o, c: cv, decimals: d, normalized, target } in rows {
        // ours / C. It is only an upper bound when C's value is a lower bound,
        // or when C was measured with fewer clients on a quantity that grows
        // with the number of clients (time, memory, latency, CPU per beat).
        let ratio = match (o.v, cv.v) {
            (Some(o), Some(cv)) if cv > 0.0 && o.is_finite() && cv.is_finite() => Some(o / cv),
            _ => None,
        };
        let upper = (cv.at_least && !o.at_least) || (!normalized && cv.clients < o.clients);
        bounded |= upper && ratio.is_some();
        let verdict = match target {
            Target::None => String::new(),
            Target::Ratio(max, text) => match ratio {
                Some(r) if r <= max && !o.at_least => format!("{text}: met"),
                Some(_) => format!("{text}: MISSED"),
                None => format!("{text}: ?"),
            },
            Target::Abs(max, text) => match o.v {
                Some(v) if v <= max => format!("{text}: met"),
                Some(_) => format!("{text}: MISSED"),
                None => format!("{text}: ?"),
            },
        };
        let ratio = ratio
            .map(|r| {
                let d = if r < 0.01 { 3 } else { 2 };
                format!("{}{r:.d$}", if upper { "< " } else { "" })
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "| {label} | {} | {} | {ratio} | {verdict} |", fmt(&o, d), fmt(&cv, d));
    }
    if bounded {
        let _ = writeln!(
            out,
            "\n\"< x\": an upper bound: C's value is a lower bound (out of time), or C was measured with fewer \
             clients on a quantity that only grows with more."
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "| run health | ours | C corosync-qnetd |");
    let _ = writeln!(out, "|---|---:|---:|");
    for k in [
        "clients_active",
        "hb_count",
        "lat_samples",
        "connect_attempts",
        "connect_failures",
        "unexpected_disconnects",
        "server_errors",
        "generator_cpu_s",
    ] {
        let _ = writeln!(out, "| {k} | {} | {} |", text(&ours, k), text(&c, k));
    }
    for (name, m) in [("ours", &ours), ("C", &c)] {
        if let Some(e) = m.get("error") {
            let _ = writeln!(out, "\n{name}: run FAILED: {e}");
        }
        if let Some(limit) = m.get("phase_timeout_s") {
            for k in ["connect_small", "connect_rest", "restart_storm"] {
                if m.get(&format!("{k}_complete")).map(String::as_str) == Some("0") {
                    let reached = text(m, &format!("{k}_reached"));
                    let _ = writeln!(
                        out,
                        "\n{name}: {k} ran out of its {limit} s limit with {reached} clients holding the vote; \
                         clients not connected by then left the run (rows marked \"at N\" were measured with N)."
                    );
                }
            }
        }
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
    Ok(())
}
