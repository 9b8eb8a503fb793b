//! The qnetd instance as a sans-IO state machine: every client connection's
//! session (session.md) plus the clusters they form.
//!
//! The shell (server.rs) owns sockets and TLS; it calls in with bytes, TLS results,
//! EOFs and the current time, and drains frames to send, events and the next
//! deadline. Nothing here reads a clock or touches a socket.
//!
//! Processing follows the C qnetd step by step (message order, error precedence,
//! reply option order), because real clients are strict about replies. Where the C
//! code does something that only a hostile client could exploit, we deviate and
//! say so at that spot.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use log::{debug, info, warn};

use crate::algo::{self, Ctx, DecisionAlgorithm, VoteInfoOut};
use crate::cluster::{Cluster, ConnId, Member, Millis};
use crate::ipc::{ClientStatus, ClusterStatus};
use crate::settings::{CoreSettings, TlsMode};
use crate::wire::{
    self, ErrorCode, Frame, FrameReader, Heuristics, Message, MsgType, NodeListType, RingId, TieBreaker, Vote,
};

/// The heartbeat a connection is assumed to have before INIT tells us its real one.
/// A compile-time constant in the C qnetd (not `heartbeat_interval_max`, quirk Q11).
pub const INITIAL_HEARTBEAT: u32 = 120_000;

/// Longest interval the C timer list accepts; a dead-peer timeout above it is refused.
const MAX_TIMER_MS: u64 = 18_000_000;

/// Names carried by a verified client certificate, extracted by the shell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    /// subjectAltName dNSName entries.
    pub dns_names: Vec<String>,
    /// Subject common names.
    pub common_names: Vec<String>,
}

impl CertNames {
    /// NSS `CERT_VerifyCertName` as qnetd uses it: a host-name match against the
    /// subjectAltName DNS entries when there are any, otherwise against the subject
    /// common name, ASCII case-insensitive. Real cluster certificates have no SAN and
    /// CN = cluster name.
    pub fn matches(&self, cluster_name: &[u8]) -> bool {
        let candidates = if self.dns_names.is_empty() { &self.common_names } else { &self.dns_names };
        candidates.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(cluster_name))
    }
}

/// Why a connection was closed by the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// `-m` reached at accept.
    MaxClients,
    /// No complete frame within the dead-peer timeout.
    DeadPeer,
    /// PREINIT/STARTTLS/INIT not completed within the handshake timeout.
    HandshakeTimeout,
    /// STARTTLS while TLS is off, or a second STARTTLS.
    TlsNotPossible,
    /// TLS gate: no client certificate.
    NoClientCertificate,
    /// TLS gate: certificate name differs from the cluster name.
    CertificateNameMismatch,
    /// Outbound queue full or a message over the send limit.
    SendQueueFull,
    /// Server shutting down.
    Shutdown,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CloseReason::MaxClients => "maximum number of clients reached",
            CloseReason::DeadPeer => "no message within the dead-peer timeout",
            CloseReason::HandshakeTimeout => "handshake (PREINIT/TLS/INIT) not completed in time",
            CloseReason::TlsNotPossible => "STARTTLS not possible (TLS off or already started)",
            CloseReason::NoClientCertificate => "client sent no certificate",
            CloseReason::CertificateNameMismatch => "client certificate name differs from the cluster name",
            CloseReason::SendQueueFull => "send queue full or message too large",
            CloseReason::Shutdown => "server shutting down",
        })
    }
}

/// Something the shell must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Frames are queued for this connection: drain them with `poll_transmit`.
    Transmit(ConnId),
    /// STARTTLS accepted: the connection's following inbound bytes are a TLS
    /// ClientHello. `handle_input` returned right after the STARTTLS frame.
    StartTls(ConnId),
    /// The core has dropped this connection: flush nothing more, close the socket.
    Close(ConnId, CloseReason),
}

/// Counters for IPC `status` and the health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreStatus {
    /// TCP connections in any phase.
    pub connected_clients: usize,
    pub connected_clusters: usize,
    /// When the connection count last dropped to zero (or the instance started);
    /// `None` while at least one connection exists.
    pub no_clients_since: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    DeadPeer,
    Handshake,
    Algo,
}

/// Per-connection state (session.md §1) that is not algorithm-visible; the
/// algorithm-visible part lives in the cluster's [`Member`] once INIT succeeded.
struct Conn {
    addr: String,
    reader: FrameReader,
    outbox: VecDeque<Vec<u8>>,
    /// A `Transmit` event is outstanding (cleared when the outbox is drained).
    notified: bool,
    tls_started: bool,
    /// Set by `tls_established`: names of the verified peer certificate, if any.
    peer_cert: Option<CertNames>,
    tls_peer_certificate_verified: bool,
    preinit_received: bool,
    init_received: bool,
    cluster_name: Option<Vec<u8>>,
    /// Key of the cluster this connection is a member of (after INIT).
    cluster: Option<u64>,
    dpd_interval: Millis,
    dpd_deadline: Option<Millis>,
    handshake_deadline: Option<Millis>,
    closing: Option<CloseReason>,
}

/// Outcome of the TLS gate (session.md §5.1).
enum Gate {
    Pass,
    /// SERVER_ERROR 3 was queued; the handler stops.
    Stop,
    Drop(CloseReason),
}

/// The whole server state.
pub struct Instance {
    settings: CoreSettings,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    /// Clusters in creation order (the tool lists them in this order).
    clusters: BTreeMap<u64, Cluster>,
    cluster_by_name: HashMap<Vec<u8>, u64>,
    next_cluster: u64,
    timers: BinaryHeap<Reverse<(Millis, TimerKind, ConnId)>>,
    events: VecDeque<Event>,
    /// Connections scheduled for teardown, in scheduling order.
    closing: VecDeque<ConnId>,
    no_clients_since: Option<Millis>,
}

/// Builds the frame for a SERVER_ERROR.
fn server_error(seq: Option<u32>, code: ErrorCode) -> Vec<u8> {
    let mut m = Message::new(MsgType::ServerError);
    m.seq = seq;
    m.reply_error_code = Some(code as u16);
    m.encode()
}

/// Everything a vote-bearing reply needs.
struct Reply {
    msg_type: MsgType,
    seq: u32,
    node_list_type: Option<NodeListType>,
    vote: Vote,
    heuristics: Option<Heuristics>,
}

impl Instance {
    pub fn new(settings: CoreSettings) -> Self {
        Instance {
            settings,
            conns: HashMap::new(),
            next_conn: 1,
            clusters: BTreeMap::new(),
            cluster_by_name: HashMap::new(),
            next_cluster: 1,
            timers: BinaryHeap::new(),
            events: VecDeque::new(),
            closing: VecDeque::new(),
            no_clients_since: Some(0),
        }
    }

    /// Like `new`, but the "no clients since" clock starts at `now`.
    pub fn new_at(settings: CoreSettings, now: Millis) -> Self {
        let mut i = Self::new(settings);
        i.no_clients_since = Some(now);
        i
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// Dead-peer timeout for a heartbeat, or `None` if the timer cannot take it
    /// (then the C qnetd refuses the heartbeat / drops the connection).
    fn dpd_timeout(&self, heartbeat: u32) -> Option<Millis> {
        let t = (self.settings.dpd_interval_coefficient * f64::from(heartbeat)).floor();
        if (1.0..=MAX_TIMER_MS as f64).contains(&t) {
            Some(t as Millis)
        } else {
            None
        }
    }

    /// A TCP connection was accepted from `peer` (`ip:port` as printed by the tool).
    /// Returns `None` when it must be closed at once without a message: `max_clients`
    /// reached, or a dead-peer timeout the timer cannot represent.
    pub fn accept(&mut self, now: Millis, peer: String) -> Option<ConnId> {
        if self.settings.max_clients != 0 && self.conns.len() as u64 >= self.settings.max_clients {
            info!("refusing client {peer}: maximum of {} clients reached", self.settings.max_clients);
            return None;
        }
        let dpd_interval = if self.settings.dpd_enabled {
            match self.dpd_timeout(INITIAL_HEARTBEAT) {
                Some(t) => t,
                None => {
                    warn!("refusing client {peer}: dead-peer timeout out of the timer's range");
                    return None;
                }
            }
        } else {
            0
        };
        let id = self.next_conn;
        self.next_conn += 1;
        let mut conn = Conn {
            addr: peer,
            reader: FrameReader::new(self.settings.max_client_receive_size as usize),
            outbox: VecDeque::new(),
            notified: false,
            tls_started: false,
            peer_cert: None,
            tls_peer_certificate_verified: false,
            preinit_received: false,
            init_received: false,
            cluster_name: None,
            cluster: None,
            dpd_interval,
            dpd_deadline: None,
            handshake_deadline: None,
            closing: None,
        };
        if self.settings.dpd_enabled {
            conn.dpd_deadline = Some(now + dpd_interval);
            self.timers.push(Reverse((now + dpd_interval, TimerKind::DeadPeer, id)));
        }
        if self.settings.handshake_timeout > 0 {
            let at = now + self.settings.handshake_timeout;
            conn.handshake_deadline = Some(at);
            self.timers.push(Reverse((at, TimerKind::Handshake, id)));
        }
        self.conns.insert(id, conn);
        self.no_clients_since = None;
        Some(id)
    }

    /// Inbound application bytes (plaintext before STARTTLS, decrypted after).
    /// Returns how many bytes were consumed. Fewer than `data.len()` only when a
    /// STARTTLS was accepted (the rest belongs to TLS) or the connection was closed.
    pub fn handle_input(&mut self, now: Millis, conn: ConnId, data: &[u8]) -> usize {
        let mut off = 0;
        while off < data.len() {
            let Some(c) = self.conns.get_mut(&conn) else { break };
            if c.closing.is_some() {
                break;
            }
            let (n, frame) = c.reader.feed(&data[off..]);
            off += n;
            let Some(frame) = frame else {
                if n == 0 {
                    // A reader that takes nothing and yields nothing would spin.
                    break;
                }
                continue;
            };
            let starttls = self.handle_frame(now, conn, frame);
            if starttls {
                self.process_closes(now);
                return off;
            }
        }
        self.process_closes(now);
        off
    }

    /// The TLS handshake after STARTTLS completed. `peer` is `Some` when the client
    /// presented a certificate that chains to our CA (the shell verified it).
    pub fn tls_established(&mut self, now: Millis, conn: ConnId, peer: Option<CertNames>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.peer_cert = peer;
        }
        self.process_closes(now);
    }

    /// EOF, socket or TLS error seen by the shell. Tears the client down (no
    /// `Close` event for it: the shell already knows).
    pub fn handle_close(&mut self, now: Millis, conn: ConnId) {
        self.teardown(now, conn, None, false);
        self.process_closes(now);
    }

    /// Next queued outbound frame for `conn`.
    pub fn poll_transmit(&mut self, conn: ConnId) -> Option<Vec<u8>> {
        let c = self.conns.get_mut(&conn)?;
        let f = c.outbox.pop_front();
        if f.is_none() {
            c.notified = false;
        }
        f
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the timer entry still describes the connection's live deadline.
    fn timer_live(&self, at: Millis, kind: TimerKind, conn: ConnId) -> bool {
        let Some(c) = self.conns.get(&conn) else { return false };
        match kind {
            TimerKind::DeadPeer => c.dpd_deadline == Some(at),
            TimerKind::Handshake => c.handshake_deadline == Some(at),
            TimerKind::Algo => {
                self.member_and_cluster(conn).and_then(|(_, m)| m.algo_timer).map(|(d, _)| d) == Some(at)
            }
        }
    }

    /// Earliest live deadline (dead-peer, handshake, algorithm timers), if any.
    /// Stale heap entries (restarted timers) at the top are dropped first, so the
    /// shell never wakes up for a timer that no longer exists.
    pub fn poll_timeout(&mut self) -> Option<Millis> {
        while let Some(&Reverse((at, kind, conn))) = self.timers.peek() {
            if self.timer_live(at, kind, conn) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Fire every deadline that is due at `now`.
    pub fn handle_timeout(&mut self, now: Millis) {
        while let Some(&Reverse((at, kind, conn))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.timer_live(at, kind, conn) {
                continue;
            }
            match kind {
                TimerKind::DeadPeer => {
                    if let Some(c) = self.conns.get(&conn) {
                        info!("client {} doesn't sent any message during {}ms, disconnecting", c.addr, c.dpd_interval);
                    }
                    self.schedule_close(conn, CloseReason::DeadPeer);
                }
                TimerKind::Handshake => self.schedule_close(conn, CloseReason::HandshakeTimeout),
                TimerKind::Algo => self.fire_algo_timer(now, conn),
            }
            self.process_closes(now);
        }
        self.process_closes(now);
    }

    /// Server going down: tear every client down with `server_going_down = true`
    /// (no VOTE_INFO is produced). Emits `Close(_, Shutdown)` for each.
    pub fn shutdown(&mut self, now: Millis) {
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.teardown(now, id, Some(CloseReason::Shutdown), true);
        }
        self.closing.clear();
    }

    /// Counters for IPC `status` (listen address and port are the shell's).
    pub fn status(&self) -> CoreStatus {
        CoreStatus {
            connected_clients: self.conns.len(),
            connected_clusters: self.clusters.len(),
            no_clients_since: self.no_clients_since,
        }
    }

    /// Number of TCP connections in any phase.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Clusters in creation order, members in node-id order, for IPC `list`.
    pub fn cluster_list(&self) -> Vec<ClusterStatus> {
        self.clusters
            .values()
            .map(|cl| ClusterStatus {
                name: cl.name.clone(),
                clients: cl
                    .members
                    .iter()
                    .map(|m| {
                        let conn = self.conns.get(&m.conn);
                        ClientStatus {
                            node_id: m.node_id,
                            addr: conn.map(|c| c.addr.clone()).unwrap_or_default(),
                            algorithm: m.algorithm,
                            tie_breaker: m.tie_breaker,
                            kap: m.kap,
                            heartbeat_interval: m.heartbeat_interval,
                            config_version: m.config_version,
                            config_nodes: m.config.clone(),
                            ring_id: m.ring_id,
                            membership_nodes: m.membership.clone(),
                            heuristics: m.heuristics,
                            membership_heuristics: m.membership_heuristics,
                            regular_heuristics: m.regular_heuristics,
                            tls_active: conn.is_some_and(|c| c.tls_started),
                            cert_verified: conn.is_some_and(|c| c.tls_peer_certificate_verified),
                            last_sent_vote: m.last_sent_vote,
                            last_sent_ack_nack_vote: m.last_sent_ack_nack_vote,
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    // ----------------------------------------------------------------------
    // Frame dispatch
    // ----------------------------------------------------------------------

    /// Handle one complete frame. Returns true when STARTTLS was accepted.
    fn handle_frame(&mut self, now: Millis, conn: ConnId, frame: Frame) -> bool {
        let (msg_type, raw) = match frame {
            Frame::Skipped { code } => {
                // Skipped frames do not restart the dead-peer timer (wire.md §2.1).
                self.queue(conn, server_error(None, code));
                return false;
            }
            Frame::Message { msg_type, raw } => (msg_type, raw),
        };
        self.restart_dpd(now, conn);
        let msg = match wire::decode(msg_type, &raw[wire::HEADER_LEN..]) {
            Ok(m) => m,
            Err(e) => {
                let addr = self.conns.get(&conn).map(|c| c.addr.as_str()).unwrap_or("?");
                debug!("client {addr}: undecodable {msg_type:?}: {e}");
                self.queue(conn, server_error(e.seq, ErrorCode::ErrorDecodingMsg));
                return false;
            }
        };
        match msg_type {
            MsgType::Preinit => self.on_preinit(conn, &msg),
            MsgType::StartTls => return self.on_starttls(conn, &msg),
            MsgType::Init => self.on_init(now, conn, &msg),
            MsgType::SetOption => self.on_set_option(now, conn, &msg),
            MsgType::EchoRequest => self.on_echo(conn, &msg, &raw),
            MsgType::NodeList => self.on_node_list(now, conn, &msg),
            MsgType::AskForVote => self.on_ask_for_vote(now, conn, &msg),
            MsgType::VoteInfoReply => self.on_vote_info_reply(now, conn, &msg),
            MsgType::HeuristicsChange => self.on_heuristics_change(now, conn, &msg),
            MsgType::PreinitReply
            | MsgType::InitReply
            | MsgType::ServerError
            | MsgType::SetOptionReply
            | MsgType::EchoReply
            | MsgType::NodeListReply
            | MsgType::AskForVoteReply
            | MsgType::VoteInfo
            | MsgType::HeuristicsChangeReply => {
                self.queue(conn, server_error(msg.seq, ErrorCode::UnexpectedMessage));
            }
        }
        false
    }

    fn restart_dpd(&mut self, now: Millis, conn: ConnId) {
        if !self.settings.dpd_enabled {
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            let at = now + c.dpd_interval;
            c.dpd_deadline = Some(at);
            self.timers.push(Reverse((at, TimerKind::DeadPeer, conn)));
        }
    }

    /// TLS gate of session.md §5.1, applied by every handler except PREINIT,
    /// STARTTLS and the unexpected-message one.
    fn tls_gate(&mut self, conn: ConnId, msg: &Message) -> Gate {
        let tls = self.settings.tls;
        let cert_required = self.settings.client_cert_required;
        let Some(c) = self.conns.get_mut(&conn) else { return Gate::Stop };
        match tls {
            TlsMode::Off => return Gate::Pass,
            TlsMode::On if !c.tls_started => return Gate::Pass,
            TlsMode::Required if !c.tls_started => {
                self.queue(conn, server_error(msg.seq, ErrorCode::TlsRequired));
                return Gate::Stop;
            }
            _ => {}
        }
        if !cert_required || c.tls_peer_certificate_verified {
            return Gate::Pass;
        }
        let Some(names) = &c.peer_cert else { return Gate::Drop(CloseReason::NoClientCertificate) };
        let cluster = c.cluster_name.as_deref().unwrap_or_default();
        if !names.matches(cluster) {
            warn!(
                "client {}: certificate name {:?} does not match cluster name {:?}",
                c.addr,
                names.common_names,
                String::from_utf8_lossy(cluster)
            );
            return Gate::Drop(CloseReason::CertificateNameMismatch);
        }
        c.tls_peer_certificate_verified = true;
        Gate::Pass
    }

    /// Runs the TLS gate; false means the handler must stop (error sent or dropped).
    fn gate(&mut self, conn: ConnId, msg: &Message) -> bool {
        match self.tls_gate(conn, msg) {
            Gate::Pass => true,
            Gate::Stop => false,
            Gate::Drop(reason) => {
                self.schedule_close(conn, reason);
                false
            }
        }
    }

    /// Gate + "INIT must have succeeded" (SERVER_ERROR 11 otherwise).
    fn gate_initialised(&mut self, conn: ConnId, msg: &Message) -> bool {
        if !self.gate(conn, msg) {
            return false;
        }
        if !self.conns.get(&conn).is_some_and(|c| c.init_received) {
            self.queue(conn, server_error(msg.seq, ErrorCode::InitRequired));
            return false;
        }
        true
    }

    fn on_preinit(&mut self, conn: ConnId, msg: &Message) {
        let Some(name) = &msg.cluster_name else {
            self.queue(conn, server_error(msg.seq, ErrorCode::DoesntContainRequiredOption));
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.cluster_name.as_deref() != Some(name.as_slice()) {
            // Deviation from C: a changed name invalidates an earlier certificate
            // check, so a client cannot verify as cluster A, rename itself to B
            // with another PREINIT and then join B (C keeps the verified flag).
            c.tls_peer_certificate_verified = false;
        }
        c.cluster_name = Some(name.clone());
        c.preinit_received = true;
        let mut reply = Message::new(MsgType::PreinitReply);
        reply.seq = msg.seq;
        reply.tls_supported = Some(self.settings.tls.wire());
        reply.tls_client_cert_required = Some(self.settings.client_cert_required);
        self.queue(conn, reply.encode());
    }

    fn on_starttls(&mut self, conn: ConnId, msg: &Message) -> bool {
        let Some(c) = self.conns.get(&conn) else { return false };
        if !c.preinit_received {
            self.queue(conn, server_error(msg.seq, ErrorCode::PreinitRequired));
            return false;
        }
        if self.settings.tls == TlsMode::Off || c.tls_started {
            // C drops when TLS cannot be set up; a second STARTTLS would stack TLS
            // sessions in C, which no client does: we drop it too.
            self.schedule_close(conn, CloseReason::TlsNotPossible);
            return false;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.tls_started = true;
        }
        self.events.push_back(Event::StartTls(conn));
        true
    }

    /// INIT with the exact C error precedence (session.md §5.3).
    fn on_init(&mut self, now: Millis, conn: ConnId, msg: &Message) {
        if !self.gate(conn, msg) {
            return;
        }
        let Some(c) = self.conns.get(&conn) else { return };
        let already = c.init_received;
        let mut err = ErrorCode::NoError;
        if !c.preinit_received {
            err = ErrorCode::PreinitRequired;
        }
        if err == ErrorCode::NoError && msg.node_id.is_none() {
            err = ErrorCode::DoesntContainRequiredOption;
        }
        let node_id = msg.node_id.unwrap_or(0);
        if err == ErrorCode::NoError && msg.ring_id.is_none() {
            err = ErrorCode::DoesntContainRequiredOption;
        }
        let ring_id = msg.ring_id.unwrap_or_default();
        let mut heartbeat = INITIAL_HEARTBEAT;
        if err == ErrorCode::NoError && msg.heartbeat_interval.is_none() {
            err = ErrorCode::DoesntContainRequiredOption;
        } else {
            let hb = msg.heartbeat_interval.unwrap_or(0);
            if hb < self.settings.heartbeat_interval_min || hb > self.settings.heartbeat_interval_max {
                err = ErrorCode::InvalidHeartbeatInterval;
            } else {
                heartbeat = hb;
                if self.settings.dpd_enabled {
                    match self.dpd_timeout(hb) {
                        // C retunes the dead-peer timer here even if INIT fails later;
                        // we do too, but never for an already initialised client
                        // (a repeated INIT changes nothing, see below).
                        Some(t) if !already => self.set_dpd_interval(now, conn, t),
                        Some(_) => {}
                        None => err = ErrorCode::InvalidHeartbeatInterval,
                    }
                }
            }
        }
        if err == ErrorCode::NoError && msg.tie_breaker.is_none() {
            err = ErrorCode::DoesntContainRequiredOption;
        }
        let tie_breaker = msg.tie_breaker;
        let algorithm;
        if err == ErrorCode::NoError && msg.algorithm.is_none() {
            err = ErrorCode::DoesntContainRequiredOption;
            algorithm = 0;
        } else {
            algorithm = msg.algorithm.unwrap_or(0);
            if algo::lookup(algorithm).is_none() {
                err = ErrorCode::UnsupportedDecisionAlgorithm;
            }
        }
        let cluster_name = self.conns.get(&conn).and_then(|c| c.cluster_name.clone()).unwrap_or_default();
        if err == ErrorCode::NoError {
            // tie_breaker is Some here (checked above).
            let tb = tie_breaker.unwrap_or(TieBreaker { mode: wire::TieBreakerMode::Lowest, node_id: 0 });
            err = self.admission_check(conn, &cluster_name, node_id, algorithm, tb);
            if err == ErrorCode::NoError && !already {
                err = self.join_cluster(now, conn, cluster_name.clone(), node_id, algorithm, tb, heartbeat, ring_id);
            }
        }
        let mut reply = Message::new(MsgType::InitReply);
        reply.reply_error_code = Some(err as u16);
        if msg.supported_messages.is_some() {
            reply.supported_messages = Some((0..MsgType::ALL.len() as u16).collect());
        }
        if msg.supported_options.is_some() {
            reply.supported_options = Some((0..wire::opt::COUNT).collect());
        }
        reply.seq = msg.seq;
        reply.server_max_request_size = Some(self.settings.max_client_receive_size);
        reply.server_max_reply_size = Some(self.settings.max_client_send_size);
        reply.supported_algorithms = Some(algo::supported());
        let addr = self.conns.get(&conn).map(|c| c.addr.clone()).unwrap_or_default();
        if err == ErrorCode::NoError {
            info!(
                "client {addr} initialised: cluster {:?}, node {node_id}, algorithm {}",
                String::from_utf8_lossy(&cluster_name),
                algo::lookup(algorithm).map(|a| a.name()).unwrap_or("?")
            );
        } else {
            info!("client {addr}: INIT refused with error code {} ({err:?})", err as u16);
        }
        self.queue(conn, reply.encode());
    }

    /// Cluster admission (session.md §7): walk members in node-id order and report
    /// the first differing tie-breaker (15), algorithm (16) or duplicate node id (17).
    /// A repeated INIT finds the client itself and gets 17, as in C (quirk Q4),
    /// without C's overwriting of the stored fields.
    fn admission_check(&self, conn: ConnId, name: &[u8], node_id: u32, algorithm: u16, tb: TieBreaker) -> ErrorCode {
        let Some(key) = self.cluster_by_name.get(name) else { return ErrorCode::NoError };
        let Some(cl) = self.clusters.get(key) else { return ErrorCode::NoError };
        for m in &cl.members {
            if m.conn == conn {
                return ErrorCode::DuplicateNodeId;
            }
            if m.tie_breaker != tb {
                return ErrorCode::TieBreakerDiffersFromOtherNodes;
            }
            if m.algorithm != algorithm {
                return ErrorCode::AlgorithmDiffersFromOtherNodes;
            }
            if m.node_id == node_id {
                return ErrorCode::DuplicateNodeId;
            }
        }
        ErrorCode::NoError
    }

    /// Insert the client into its cluster and run the algorithm's client_init.
    /// On an algorithm error the insertion is rolled back (C leaves the client in
    /// the cluster without algorithm data).
    #[allow(clippy::too_many_arguments)]
    fn join_cluster(
        &mut self,
        now: Millis,
        conn: ConnId,
        name: Vec<u8>,
        node_id: u32,
        algorithm: u16,
        tb: TieBreaker,
        heartbeat: u32,
        ring_id: RingId,
    ) -> ErrorCode {
        let Some(alg) = algo::lookup(algorithm) else { return ErrorCode::UnsupportedDecisionAlgorithm };
        let key = match self.cluster_by_name.get(&name) {
            Some(k) => *k,
            None => {
                let k = self.next_cluster;
                self.next_cluster += 1;
                self.clusters.insert(k, Cluster::new(name.clone()));
                self.cluster_by_name.insert(name.clone(), k);
                k
            }
        };
        let mut member = Member::new(conn, node_id, algorithm, tb);
        member.heartbeat_interval = heartbeat;
        member.ring_id = ring_id;
        member.kap = self.settings.keep_active_partition_tie_breaker;
        let mut out = Vec::new();
        let result = {
            let Some(cl) = self.clusters.get_mut(&key) else { return ErrorCode::InternalError };
            let t = cl.insert(member);
            let mut ctx = Ctx { now, cluster: cl, out: &mut out };
            let r = alg.client_init(&mut ctx, t);
            if r.is_err() {
                cl.members.remove(t);
            }
            r
        };
        if let Err(e) = result {
            self.drop_cluster_if_empty(key);
            return e;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.init_received = true;
            c.cluster = Some(key);
            c.handshake_deadline = None;
        }
        self.send_vote_infos(now, &out, "client init");
        self.sync_algo_timers(key);
        ErrorCode::NoError
    }

    fn drop_cluster_if_empty(&mut self, key: u64) {
        if self.clusters.get(&key).is_some_and(|c| c.members.is_empty()) {
            if let Some(cl) = self.clusters.remove(&key) {
                self.cluster_by_name.remove(&cl.name);
            }
        }
    }

    fn set_dpd_interval(&mut self, now: Millis, conn: ConnId, interval: Millis) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.dpd_interval = interval;
            let at = now + interval;
            c.dpd_deadline = Some(at);
            self.timers.push(Reverse((at, TimerKind::DeadPeer, conn)));
        }
    }

    fn on_set_option(&mut self, now: Millis, conn: ConnId, msg: &Message) {
        if !self.gate_initialised(conn, msg) {
            return;
        }
        if msg.seq.is_none() && msg.heartbeat_interval.is_none() && msg.kap.is_none() {
            // Deliberate difference from C: a SET_OPTION with none of seq, heartbeat or
            // KAP (only unknown options) changes nothing, and the C qnetd answers it with
            // a SET_OPTION_REPLY with an empty body, which no decoder (its own client's
            // included) accepts. We answer "required option missing" instead, so every
            // frame we send decodes. Real clients always send seq and never see either.
            self.queue(conn, server_error(None, ErrorCode::DoesntContainRequiredOption));
            return;
        }
        if let Some(hb) = msg.heartbeat_interval {
            if hb < self.settings.heartbeat_interval_min || hb > self.settings.heartbeat_interval_max {
                self.queue(conn, server_error(msg.seq, ErrorCode::InvalidHeartbeatInterval));
                return;
            }
            if let Some(m) = self.member_mut(conn) {
                m.heartbeat_interval = hb;
            }
            if self.settings.dpd_enabled {
                match self.dpd_timeout(hb) {
                    Some(t) => self.set_dpd_interval(now, conn, t),
                    None => {
                        // As in C, the new heartbeat stays although the timer refused it.
                        self.queue(conn, server_error(msg.seq, ErrorCode::InvalidHeartbeatInterval));
                        return;
                    }
                }
            }
        }
        let (hb_now, kap_now) = match self.member_mut(conn) {
            Some(m) => {
                if let Some(kap) = msg.kap {
                    m.kap = kap;
                }
                (m.heartbeat_interval, m.kap)
            }
            None => return,
        };
        let mut reply = Message::new(MsgType::SetOptionReply);
        reply.seq = msg.seq;
        if msg.heartbeat_interval.is_some() {
            reply.heartbeat_interval = Some(hb_now);
        }
        if msg.kap.is_some() {
            reply.kap = Some(kap_now);
        }
        self.queue(conn, reply.encode());
    }

    fn on_echo(&mut self, conn: ConnId, msg: &Message, raw: &[u8]) {
        if !self.gate_initialised(conn, msg) {
            return;
        }
        // The reply is the request frame byte for byte with only the type changed.
        let mut reply = raw.to_vec();
        reply[..2].copy_from_slice(&(MsgType::EchoReply as u16).to_be_bytes());
        self.queue(conn, reply);
    }

    fn on_node_list(&mut self, now: Millis, conn: ConnId, msg: &Message) {
        if !self.gate_initialised(conn, msg) {
            return;
        }
        let Some(list_type) = msg.node_list_type else {
            self.queue(conn, server_error(msg.seq, ErrorCode::DoesntContainRequiredOption));
            return;
        };
        let Some(seq) = msg.seq else {
            self.queue(conn, server_error(None, ErrorCode::DoesntContainRequiredOption));
            return;
        };
        let nodes = &msg.nodes;
        let heuristics = msg.heuristics.unwrap_or_default();
        let result = match list_type {
            NodeListType::InitialConfig | NodeListType::ChangedConfig => {
                let initial = list_type == NodeListType::InitialConfig;
                self.run_algo(now, conn, "config node list", |alg, ctx, t| {
                    alg.config_node_list_received(ctx, t, seq, msg.config_version, nodes, initial)
                })
            }
            NodeListType::Membership => {
                let Some(ring_id) = msg.ring_id else {
                    self.queue(conn, server_error(Some(seq), ErrorCode::DoesntContainRequiredOption));
                    return;
                };
                self.run_algo(now, conn, "membership node list", |alg, ctx, t| {
                    alg.membership_node_list_received(ctx, t, seq, ring_id, nodes, heuristics)
                })
            }
            NodeListType::Quorum => {
                let Some(quorate) = msg.quorate else {
                    self.queue(conn, server_error(Some(seq), ErrorCode::DoesntContainRequiredOption));
                    return;
                };
                self.run_algo(now, conn, "quorum node list", |alg, ctx, t| {
                    alg.quorum_node_list_received(ctx, t, seq, quorate, nodes)
                })
            }
        };
        let vote = match result {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                self.queue(conn, server_error(Some(seq), e));
                return;
            }
            None => return,
        };
        // Store only after the algorithm ran (quirk Q8: algorithms see old values).
        if let Some(m) = self.member_mut(conn) {
            match list_type {
                NodeListType::InitialConfig | NodeListType::ChangedConfig => {
                    m.config = msg.nodes.clone();
                    m.config_version = msg.config_version;
                }
                NodeListType::Membership => {
                    m.membership = msg.nodes.clone();
                    m.ring_id = msg.ring_id.unwrap_or_default();
                    m.membership_heuristics = heuristics;
                    m.heuristics = heuristics;
                }
                NodeListType::Quorum => m.quorum = msg.nodes.clone(),
            }
        }
        self.reply_vote(
            conn,
            Reply { msg_type: MsgType::NodeListReply, seq, node_list_type: Some(list_type), vote, heuristics: None },
            "node list",
        );
    }

    fn on_ask_for_vote(&mut self, now: Millis, conn: ConnId, msg: &Message) {
        if !self.gate_initialised(conn, msg) {
            return;
        }
        let Some(seq) = msg.seq else {
            self.queue(conn, server_error(None, ErrorCode::DoesntContainRequiredOption));
            return;
        };
        match self.run_algo(now, conn, "ask for vote", |alg, ctx, t| alg.ask_for_vote_received(ctx, t, seq)) {
            Some(Ok(vote)) => self.reply_vote(
                conn,
                Reply { msg_type: MsgType::AskForVoteReply, seq, node_list_type: None, vote, heuristics: None },
                "ask for vote",
            ),
            Some(Err(e)) => self.queue(conn, server_error(Some(seq), e)),
            None => {}
        }
    }

    fn on_vote_info_reply(&mut self, now: Millis, conn: ConnId, msg: &Message) {
        if !self.gate_initialised(conn, msg) {
            return;
        }
        let Some(seq) = msg.seq else {
            self.queue(conn, server_error(None, ErrorCode::DoesntContainRequiredOption));
            return;
        };
        if let Some(Err(e)) =
            self.run_algo(now, conn, "vote info reply", |alg, ctx, t| alg.vote_info_reply_received(ctx, t, seq))
        {
            self.queue(conn, server_error(Some(seq), e));
        }
    }

    fn on_heuristics_change(&mut self, now: Millis, conn: ConnId, msg: &Message) {
        if !self.gate_initialised(conn, msg) {
            return;
        }
        let (Some(seq), Some(h)) = (msg.seq, msg.heuristics) else {
            self.queue(conn, server_error(msg.seq, ErrorCode::DoesntContainRequiredOption));
            return;
        };
        match self
            .run_algo(now, conn, "heuristics change", |alg, ctx, t| alg.heuristics_change_received(ctx, t, seq, h))
        {
            Some(Ok(vote)) => {
                if let Some(m) = self.member_mut(conn) {
                    m.regular_heuristics = h;
                    m.heuristics = h;
                }
                self.reply_vote(
                    conn,
                    Reply {
                        msg_type: MsgType::HeuristicsChangeReply,
                        seq,
                        node_list_type: None,
                        vote,
                        heuristics: Some(h),
                    },
                    "heuristics change",
                );
            }
            Some(Err(e)) => self.queue(conn, server_error(Some(seq), e)),
            None => {}
        }
    }

    /// Record `vote` as sent to `conn` and queue the reply carrying it.
    fn reply_vote(&mut self, conn: ConnId, r: Reply, why: &str) {
        let Some((ring_id, node_id, name)) =
            self.member_and_cluster(conn).map(|(cl, m)| (m.ring_id, m.node_id, cl.name.clone()))
        else {
            return;
        };
        if let Some(m) = self.member_mut(conn) {
            let before = m.last_sent_ack_nack_vote;
            m.record_vote(r.vote);
            log_vote_change(&name, node_id, before, m.last_sent_ack_nack_vote, why);
        }
        let mut reply = Message::new(r.msg_type);
        reply.seq = Some(r.seq);
        reply.node_list_type = r.node_list_type;
        reply.vote = Some(r.vote);
        reply.ring_id = Some(ring_id);
        reply.heuristics = r.heuristics;
        self.queue(conn, reply.encode());
    }

    // ----------------------------------------------------------------------
    // Algorithm plumbing
    // ----------------------------------------------------------------------

    fn member_mut(&mut self, conn: ConnId) -> Option<&mut Member> {
        let key = self.conns.get(&conn)?.cluster?;
        let cl = self.clusters.get_mut(&key)?;
        cl.members.iter_mut().find(|m| m.conn == conn)
    }

    fn member_and_cluster(&self, conn: ConnId) -> Option<(&Cluster, &Member)> {
        let key = self.conns.get(&conn)?.cluster?;
        let cl = self.clusters.get(&key)?;
        let m = cl.members.iter().find(|m| m.conn == conn)?;
        Some((cl, m))
    }

    /// Run an algorithm callback for `conn`, then queue the VOTE_INFOs it produced
    /// (before the caller queues the trigger's reply) and log vote changes.
    /// `None` if the connection is not a cluster member.
    fn run_algo<R>(
        &mut self,
        now: Millis,
        conn: ConnId,
        why: &str,
        f: impl FnOnce(&dyn DecisionAlgorithm, &mut Ctx, usize) -> R,
    ) -> Option<R> {
        let key = self.conns.get(&conn)?.cluster?;
        let mut out = Vec::new();
        let r = {
            let cl = self.clusters.get_mut(&key)?;
            let t = cl.index_of_conn(conn)?;
            let alg = algo::lookup(cl.members[t].algorithm)?;
            let mut ctx = Ctx { now, cluster: cl, out: &mut out };
            f(alg, &mut ctx, t)
        };
        let trigger = self.clusters.get(&key).and_then(|cl| cl.index_of_conn(conn).map(|t| cl.members[t].node_id));
        let why = match trigger {
            Some(n) => format!("{why} from node {n}"),
            None => why.to_string(),
        };
        self.send_vote_infos(now, &out, &why);
        self.sync_algo_timers(key);
        Some(r)
    }

    /// Queue VOTE_INFOs in production order. A VOTE_INFO that cannot be queued
    /// drops its *recipient* — deviation from C quirk F5, which drops the trigger:
    /// the recipient is the client whose queue is full.
    fn send_vote_infos(&mut self, _now: Millis, out: &[VoteInfoOut], why: &str) {
        for vi in out {
            let mut m = Message::new(MsgType::VoteInfo);
            m.seq = Some(vi.seq);
            m.vote = Some(vi.vote);
            m.ring_id = Some(vi.ring_id);
            if let Some((cl, mem)) = self.member_and_cluster(vi.conn) {
                debug!(
                    "cluster {:?} node {}: VOTE_INFO seq {} {} ({why})",
                    String::from_utf8_lossy(&cl.name),
                    mem.node_id,
                    vi.seq,
                    vi.vote.name()
                );
                if matches!(vi.vote, Vote::Ack | Vote::Nack) {
                    info!(
                        "cluster {:?} node {}: vote {} sent ({why})",
                        String::from_utf8_lossy(&cl.name),
                        mem.node_id,
                        vi.vote.name()
                    );
                }
            }
            self.queue(vi.conn, m.encode());
        }
    }

    /// Put every armed algorithm timer of the cluster into the timer heap (cheap:
    /// clusters are small; stale heap entries are skipped when they surface).
    fn sync_algo_timers(&mut self, key: u64) {
        let Some(cl) = self.clusters.get(&key) else { return };
        for m in &cl.members {
            if let Some((at, _)) = m.algo_timer {
                if !self.timers.iter().any(|Reverse(e)| *e == (at, TimerKind::Algo, m.conn)) {
                    self.timers.push(Reverse((at, TimerKind::Algo, m.conn)));
                }
            }
        }
    }

    /// The generic algorithm timer (algorithms.md §7).
    fn fire_algo_timer(&mut self, now: Millis, conn: ConnId) {
        let Some(key) = self.conns.get(&conn).and_then(|c| c.cluster) else { return };
        let mut out = Vec::new();
        let (outcome, interval) = {
            let Some(cl) = self.clusters.get_mut(&key) else { return };
            let Some(t) = cl.index_of_conn(conn) else { return };
            let Some(alg) = algo::lookup(cl.members[t].algorithm) else { return };
            let interval = cl.members[t].algo_timer.map(|(_, i)| i).unwrap_or(0);
            cl.members[t].algo_timer = None;
            let mut ctx = Ctx { now, cluster: cl, out: &mut out };
            (alg.timer_callback(&mut ctx, t), interval)
        };
        self.send_vote_infos(now, &out, "algorithm timer");
        if let Some(e) = outcome.error {
            if let Some(m) = self.member_mut(conn) {
                m.algo_timer = None;
            }
            self.queue(conn, server_error(None, e));
            self.sync_algo_timers(key);
            return;
        }
        if let Some(vote) = outcome.send_vote {
            let info = self.member_mut(conn).map(|m| {
                m.timer_vote_seq = m.timer_vote_seq.wrapping_add(1);
                let before = m.last_sent_ack_nack_vote;
                m.record_vote(vote);
                (m.timer_vote_seq, m.ring_id, m.node_id, before, m.last_sent_ack_nack_vote)
            });
            if let Some((seq, ring_id, node_id, before, after)) = info {
                if let Some(cl) = self.clusters.get(&key) {
                    log_vote_change(&cl.name, node_id, before, after, "algorithm timer");
                }
                let mut m = Message::new(MsgType::VoteInfo);
                m.seq = Some(seq);
                m.vote = Some(vote);
                m.ring_id = Some(ring_id);
                self.queue(conn, m.encode());
            }
        }
        if outcome.reschedule && interval > 0 {
            if let Some(m) = self.member_mut(conn) {
                if m.algo_timer.is_none() {
                    m.algo_timer = Some((now + interval, interval));
                }
            }
        }
        self.sync_algo_timers(key);
    }

    // ----------------------------------------------------------------------
    // Output and teardown
    // ----------------------------------------------------------------------

    /// Queue a frame; a full queue or an oversized frame schedules the connection's
    /// drop (session.md §9).
    fn queue(&mut self, conn: ConnId, frame: Vec<u8>) {
        let max_size = self.settings.max_client_send_size as usize;
        let max_buffers = self.settings.max_client_send_buffers;
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.closing.is_some() {
            return;
        }
        if frame.len() > max_size || c.outbox.len() >= max_buffers {
            warn!("client {}: cannot queue message (queue full or message too large)", c.addr);
            self.schedule_close(conn, CloseReason::SendQueueFull);
            return;
        }
        c.outbox.push_back(frame);
        if !c.notified {
            c.notified = true;
            self.events.push_back(Event::Transmit(conn));
        }
    }

    fn schedule_close(&mut self, conn: ConnId, reason: CloseReason) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.closing.is_none() {
                c.closing = Some(reason);
                c.outbox.clear();
                self.closing.push_back(conn);
            }
        }
    }

    /// Tear down every connection scheduled for it (teardowns may schedule more).
    fn process_closes(&mut self, now: Millis) {
        while let Some(conn) = self.closing.pop_front() {
            let reason = self.conns.get(&conn).and_then(|c| c.closing.clone());
            if let Some(reason) = reason {
                self.teardown(now, conn, Some(reason), false);
            }
        }
    }

    /// session.md §10: the algorithm sees the leaving client while it is still a
    /// member; then the client leaves its cluster (destroyed when empty).
    fn teardown(&mut self, now: Millis, conn: ConnId, reason: Option<CloseReason>, going_down: bool) {
        let Some(c) = self.conns.get(&conn) else { return };
        let addr = c.addr.clone();
        let cluster = c.cluster;
        if let Some(key) = cluster {
            let mut out = Vec::new();
            if let Some(cl) = self.clusters.get_mut(&key) {
                if let Some(t) = cl.index_of_conn(conn) {
                    if let Some(alg) = algo::lookup(cl.members[t].algorithm) {
                        let mut ctx = Ctx { now, cluster: cl, out: &mut out };
                        alg.client_disconnect(&mut ctx, t, going_down);
                    }
                    // The algorithm may have re-ordered nothing, but find it again to be safe.
                    if let Some(t) = cl.index_of_conn(conn) {
                        cl.members.remove(t);
                    }
                }
            }
            let out: Vec<VoteInfoOut> = out.into_iter().filter(|v| v.conn != conn).collect();
            self.send_vote_infos(now, &out, &format!("client {addr} disconnected"));
            self.drop_cluster_if_empty(key);
            self.sync_algo_timers(key);
        }
        self.conns.remove(&conn);
        if self.conns.is_empty() {
            self.no_clients_since = Some(now);
        }
        match reason {
            Some(r) => {
                info!("client {addr} disconnected: {r}");
                self.events.push_back(Event::Close(conn, r));
            }
            None => info!("client {addr} disconnected"),
        }
    }
}

fn log_vote_change(cluster: &[u8], node_id: u32, before: Option<Vote>, after: Option<Vote>, why: &str) {
    if before != after {
        let name = |v: Option<Vote>| v.map(|v| v.name()).unwrap_or("none");
        info!(
            "cluster {:?} node {node_id}: vote {} -> {} ({why})",
            String::from_utf8_lossy(cluster),
            name(before),
            name(after)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{NodeInfo, TieBreakerMode, TlsSupported};

    /// A test driver: one Instance, a clock, and helpers that speak frames.
    pub(crate) struct H {
        pub inst: Instance,
        pub now: Millis,
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    pub(crate) fn decode_frame(f: &[u8]) -> Message {
        let t = MsgType::from_u16(u16::from_be_bytes([f[0], f[1]])).expect("known type");
        wire::decode(t, &f[wire::HEADER_LEN..]).expect("server frames decode")
    }

    pub(crate) fn tb_lowest() -> TieBreaker {
        TieBreaker { mode: TieBreakerMode::Lowest, node_id: 0 }
    }

    pub(crate) fn init_msg(seq: u32, node: u32, algorithm: u16) -> Message {
        let mut m = Message::new(MsgType::Init);
        m.seq = Some(seq);
        m.node_id = Some(node);
        m.algorithm = Some(algorithm);
        m.heartbeat_interval = Some(8000);
        m.tie_breaker = Some(tb_lowest());
        m.ring_id = Some(RingId { node_id: 1, seq: 5 });
        m
    }

    impl H {
        pub fn new(settings: CoreSettings) -> Self {
            H { inst: Instance::new(settings), now: 1000 }
        }
        pub fn plain() -> Self {
            H::new(CoreSettings { tls: TlsMode::Off, handshake_timeout: 0, ..CoreSettings::default() })
        }
        pub fn connect(&mut self) -> ConnId {
            self.inst.accept(self.now, "::ffff:127.0.0.1:40000".into()).expect("accepted")
        }
        pub fn raw(&mut self, c: ConnId, bytes: &[u8]) -> usize {
            self.inst.handle_input(self.now, c, bytes)
        }
        pub fn send(&mut self, c: ConnId, m: &Message) -> Vec<Message> {
            self.raw(c, &m.encode());
            self.drain(c)
        }
        pub fn drain_raw(&mut self, c: ConnId) -> Vec<Vec<u8>> {
            let mut v = Vec::new();
            while let Some(f) = self.inst.poll_transmit(c) {
                v.push(f);
            }
            v
        }
        pub fn drain(&mut self, c: ConnId) -> Vec<Message> {
            self.drain_raw(c).iter().map(|f| decode_frame(f)).collect()
        }
        pub fn events(&mut self) -> Vec<Event> {
            std::iter::from_fn(|| self.inst.poll_event()).collect()
        }
        pub fn closed(&mut self) -> Vec<(ConnId, CloseReason)> {
            self.events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::Close(c, r) => Some((c, r)),
                    _ => None,
                })
                .collect()
        }
        pub fn preinit(&mut self, c: ConnId, name: &str) {
            let mut m = Message::new(MsgType::Preinit);
            m.seq = Some(1);
            m.cluster_name = Some(name.as_bytes().to_vec());
            let r = self.send(c, &m);
            assert_eq!(r[0].msg_type, MsgType::PreinitReply);
        }
        /// PREINIT + INIT; returns the INIT_REPLY error code.
        pub fn join(&mut self, c: ConnId, cluster: &str, node: u32, algorithm: u16) -> u16 {
            self.preinit(c, cluster);
            let r = self.send(c, &init_msg(2, node, algorithm));
            r[0].reply_error_code.expect("error code")
        }
        pub fn advance(&mut self, ms: Millis) {
            self.now += ms;
            self.inst.handle_timeout(self.now);
        }
    }

    fn err_of(m: &Message) -> (MsgType, Option<u32>, Option<u16>) {
        (m.msg_type, m.seq, m.reply_error_code)
    }

    #[test]
    fn preinit_reply_is_byte_exact() {
        let mut h = H::new(CoreSettings::default());
        let c = h.connect();
        h.raw(c, &hex("0000 00000015 0000 0004 00000001 0001 0009 6d79636c7573746572"));
        assert_eq!(h.drain_raw(c), vec![hex("0001 00000012 0000 0004 00000001 0002 0001 01 0003 0001 01")]);
    }

    #[test]
    fn preinit_reports_cert_flag_even_with_tls_off() {
        let mut h = H::new(CoreSettings { tls: TlsMode::Off, client_cert_required: true, ..Default::default() });
        let c = h.connect();
        let mut m = Message::new(MsgType::Preinit);
        m.cluster_name = Some(b"x".to_vec());
        let r = h.send(c, &m);
        assert_eq!(r[0].tls_supported, Some(TlsSupported::Unsupported));
        assert_eq!(r[0].tls_client_cert_required, Some(true));
        assert_eq!(r[0].seq, None, "no seq in the request, none in the reply");
    }

    #[test]
    fn preinit_without_cluster_name_is_error_7_with_seq() {
        let mut h = H::plain();
        let c = h.connect();
        let mut m = Message::new(MsgType::Preinit);
        m.seq = Some(4);
        let r = h.send(c, &m);
        assert_eq!(err_of(&r[0]), (MsgType::ServerError, Some(4), Some(7)));
        // PREINIT was not accepted: INIT now fails with PREINIT_REQUIRED.
        let r = h.send(c, &init_msg(5, 1, 1));
        assert_eq!(r[0].reply_error_code, Some(6));
    }

    #[test]
    fn starttls_before_preinit_is_error_6_and_stays_plaintext() {
        let mut h = H::new(CoreSettings::default());
        let c = h.connect();
        let mut m = Message::new(MsgType::StartTls);
        m.seq = Some(2);
        let bytes = m.encode();
        assert_eq!(h.raw(c, &bytes), bytes.len());
        assert_eq!(err_of(&h.drain(c)[0]), (MsgType::ServerError, Some(2), Some(6)));
        assert!(!h.events().iter().any(|e| matches!(e, Event::StartTls(_))));
    }

    #[test]
    fn starttls_stops_consuming_at_the_frame_end() {
        let mut h = H::new(CoreSettings::default());
        let c = h.connect();
        h.preinit(c, "labcluster");
        let mut bytes = hex("0002 00000008 0000 0004 00000002");
        let frame_len = bytes.len();
        bytes.extend_from_slice(&[0x16, 0x03, 0x01, 0x02, 0x00]); // start of a ClientHello
        assert_eq!(h.raw(c, &bytes), frame_len);
        assert!(h.events().contains(&Event::StartTls(c)));
        assert!(h.drain(c).is_empty(), "no reply to STARTTLS");
    }

    #[test]
    fn starttls_with_tls_off_drops_the_client() {
        let mut h = H::plain();
        let c = h.connect();
        h.preinit(c, "x");
        let mut st = Message::new(MsgType::StartTls);
        st.seq = Some(2);
        h.send(c, &st);
        assert_eq!(h.closed(), vec![(c, CloseReason::TlsNotPossible)]);
    }

    #[test]
    fn init_error_precedence_matches_c() {
        // (preinit?, modifier, expected code) — session.md §5.3 "consequences worth testing".
        type Case = (bool, fn(&mut Message), u16);
        let cases: Vec<Case> = vec![
            (false, |m| m.heartbeat_interval = None, 13),
            (false, |m| m.algorithm = None, 6),
            (
                true,
                |m| {
                    m.node_id = None;
                    m.algorithm = Some(9)
                },
                12,
            ),
            (
                true,
                |m| {
                    m.node_id = None;
                    m.heartbeat_interval = Some(5)
                },
                13,
            ),
            (
                true,
                |m| {
                    m.heartbeat_interval = Some(100);
                    m.tie_breaker = None
                },
                13,
            ),
            (true, |m| m.node_id = None, 7),
            (true, |m| m.ring_id = None, 7),
            (true, |m| m.heartbeat_interval = None, 7),
            (true, |m| m.tie_breaker = None, 7),
            (true, |m| m.algorithm = None, 7),
            (true, |m| m.algorithm = Some(4), 12),
            (true, |m| m.heartbeat_interval = Some(120_001), 13),
            (true, |m| m.heartbeat_interval = Some(999), 13),
            (true, |m| m.heartbeat_interval = Some(1000), 0),
            (true, |_| {}, 0),
        ];
        for (i, (preinit, modify, want)) in cases.into_iter().enumerate() {
            let mut h = H::plain();
            let c = h.connect();
            if preinit {
                h.preinit(c, "c1");
            }
            let mut m = init_msg(2, 1, 1);
            modify(&mut m);
            let r = h.send(c, &m);
            assert_eq!(r.len(), 1, "case {i}");
            assert_eq!(r[0].msg_type, MsgType::InitReply, "case {i}");
            assert_eq!(r[0].reply_error_code, Some(want), "case {i}");
        }
    }

    #[test]
    fn init_reply_is_byte_exact() {
        let mut h = H::plain();
        let c = h.connect();
        h.preinit(c, "c1");
        let mut m = init_msg(2, 1, 1);
        m.supported_messages = Some((0..18).collect());
        m.supported_options = Some((0..24).collect());
        h.raw(c, &m.encode());
        let mut want = hex("0004 00000086 0006 0002 0000 0004 0024");
        for i in 0..18u16 {
            want.extend_from_slice(&i.to_be_bytes());
        }
        want.extend(hex("0005 0030"));
        for i in 0..24u16 {
            want.extend_from_slice(&i.to_be_bytes());
        }
        want.extend(hex("0000 0004 00000002 0007 0004 00008000 0008 0004 00008000 000a 0008 0000 0001 0002 0003"));
        assert_eq!(want.len(), 140);
        assert_eq!(h.drain_raw(c), vec![want]);
    }

    #[test]
    fn init_reply_omits_lists_the_client_did_not_send() {
        let mut h = H::plain();
        let c = h.connect();
        h.preinit(c, "c1");
        let r = h.send(c, &init_msg(2, 1, 1));
        assert_eq!(r[0].supported_messages, None);
        assert_eq!(r[0].supported_options, None);
        assert_eq!(r[0].supported_algorithms, Some(vec![0, 1, 2, 3]));
    }

    #[test]
    fn admission_reports_first_member_difference_in_node_order() {
        let mut h = H::plain();
        let a = h.connect();
        assert_eq!(h.join(a, "c", 2, 1), 0);
        // Duplicate node id.
        let b = h.connect();
        assert_eq!(h.join(b, "c", 2, 1), 17);
        // Different algorithm.
        let b = h.connect();
        assert_eq!(h.join(b, "c", 3, 3), 16);
        // Different tie-breaker beats the duplicate-id check of a later member.
        let d = h.connect();
        h.preinit(d, "c");
        let mut m = init_msg(2, 2, 1);
        m.tie_breaker = Some(TieBreaker { mode: TieBreakerMode::Highest, node_id: 0 });
        assert_eq!(h.send(d, &m)[0].reply_error_code, Some(15));
        // Node-id mode compares the node id too.
        let e = h.connect();
        h.preinit(e, "c");
        let mut m = init_msg(2, 5, 1);
        m.tie_breaker = Some(TieBreaker { mode: TieBreakerMode::NodeId, node_id: 1 });
        assert_eq!(h.send(e, &m)[0].reply_error_code, Some(15));
        // Another cluster name is another cluster (byte-exact, case-sensitive).
        let f = h.connect();
        assert_eq!(h.join(f, "C", 2, 3), 0);
        assert_eq!(h.inst.status().connected_clusters, 2);
    }

    #[test]
    fn second_init_is_refused_with_17_and_changes_nothing() {
        let mut h = H::plain();
        let c = h.connect();
        assert_eq!(h.join(c, "c", 1, 1), 0);
        let mut m = init_msg(9, 1, 1);
        m.heartbeat_interval = Some(2000);
        let r = h.send(c, &m);
        assert_eq!((r[0].seq, r[0].reply_error_code), (Some(9), Some(17)));
        assert_eq!(h.inst.cluster_list()[0].clients[0].heartbeat_interval, 8000);
    }

    #[test]
    fn failed_init_leaves_connection_open_and_retry_works() {
        let mut h = H::plain();
        let c = h.connect();
        h.preinit(c, "c");
        let mut m = init_msg(2, 1, 1);
        m.algorithm = Some(7);
        assert_eq!(h.send(c, &m)[0].reply_error_code, Some(12));
        assert_eq!(h.send(c, &init_msg(3, 1, 1))[0].reply_error_code, Some(0));
        assert!(h.closed().is_empty());
    }

    #[test]
    fn tls_required_refuses_gated_messages_before_tls() {
        let mut h = H::new(CoreSettings { tls: TlsMode::Required, ..Default::default() });
        let c = h.connect();
        h.preinit(c, "c");
        for t in [MsgType::Init, MsgType::SetOption, MsgType::EchoRequest, MsgType::NodeList, MsgType::AskForVote] {
            let mut m = Message::new(t);
            m.seq = Some(2);
            let r = h.send(c, &m);
            assert_eq!(err_of(&r[0]), (MsgType::ServerError, Some(2), Some(3)), "{t:?}");
        }
        // Unexpected-message handlers do not apply the gate.
        let mut m = Message::new(MsgType::VoteInfo);
        m.seq = Some(3);
        assert_eq!(err_of(&h.send(c, &m)[0]), (MsgType::ServerError, Some(3), Some(8)));
        assert!(h.closed().is_empty());
    }

    #[test]
    fn tls_on_accepts_plaintext_clients_quirk_q6() {
        let mut h = H::new(CoreSettings::default());
        let c = h.connect();
        assert_eq!(h.join(c, "c", 1, 1), 0);
        assert!(!h.inst.cluster_list()[0].clients[0].tls_active);
    }

    fn tls_client(h: &mut H, cluster: &str, names: Option<CertNames>) -> ConnId {
        let c = h.connect();
        h.preinit(c, cluster);
        let mut st = Message::new(MsgType::StartTls);
        st.seq = Some(2);
        h.raw(c, &st.encode());
        assert!(h.events().contains(&Event::StartTls(c)));
        h.inst.tls_established(h.now, c, names);
        c
    }

    fn cn(name: &str) -> CertNames {
        CertNames { dns_names: vec![], common_names: vec![name.to_string()] }
    }

    #[test]
    fn certificate_name_is_checked_on_the_first_gated_message() {
        let mut h = H::new(CoreSettings::default());
        // Case-insensitive match passes and marks the client verified.
        let c = tls_client(&mut h, "MYCLUSTER", Some(cn("mycluster")));
        assert_eq!(h.send(c, &init_msg(2, 1, 1))[0].reply_error_code, Some(0));
        assert!(h.inst.cluster_list()[0].clients[0].cert_verified);
        // Near misses are dropped without a reply.
        for bad in ["mycluster.", "mycluster ", "myclust"] {
            let c = tls_client(&mut h, "mycluster", Some(cn(bad)));
            assert!(h.send(c, &init_msg(2, 2, 1)).is_empty(), "{bad:?}");
            assert_eq!(h.closed(), vec![(c, CloseReason::CertificateNameMismatch)]);
        }
        // No certificate at all.
        let c = tls_client(&mut h, "mycluster", None);
        h.send(c, &init_msg(2, 3, 1));
        assert_eq!(h.closed(), vec![(c, CloseReason::NoClientCertificate)]);
    }

    #[test]
    fn san_dns_names_take_precedence_over_cn() {
        let n = CertNames { dns_names: vec!["other".into()], common_names: vec!["c1".into()] };
        assert!(!n.matches(b"c1"));
        assert!(n.matches(b"OTHER"));
    }

    #[test]
    fn renaming_after_verification_forces_a_new_check() {
        let mut h = H::new(CoreSettings::default());
        let c = tls_client(&mut h, "a", Some(cn("a")));
        // An echo before INIT verifies the certificate (then fails with 11).
        let mut e = Message::new(MsgType::EchoRequest);
        e.seq = Some(3);
        assert_eq!(h.send(c, &e)[0].reply_error_code, Some(11));
        h.preinit(c, "b");
        assert!(h.send(c, &init_msg(4, 1, 1)).is_empty());
        assert_eq!(h.closed(), vec![(c, CloseReason::CertificateNameMismatch)]);
    }

    #[test]
    fn cert_not_required_skips_the_name_check() {
        let mut h = H::new(CoreSettings { client_cert_required: false, ..Default::default() });
        let c = tls_client(&mut h, "c", None);
        assert_eq!(h.send(c, &init_msg(2, 1, 1))[0].reply_error_code, Some(0));
    }

    #[test]
    fn messages_before_init_get_error_11() {
        let mut h = H::plain();
        let c = h.connect();
        h.preinit(c, "c");
        for t in [
            MsgType::SetOption,
            MsgType::EchoRequest,
            MsgType::NodeList,
            MsgType::AskForVote,
            MsgType::VoteInfoReply,
            MsgType::HeuristicsChange,
        ] {
            let mut m = Message::new(t);
            m.seq = Some(7);
            assert_eq!(err_of(&h.send(c, &m)[0]), (MsgType::ServerError, Some(7), Some(11)), "{t:?}");
        }
    }

    #[test]
    fn set_option_reply_is_byte_exact_and_bounds_checked() {
        let mut h = H::plain();
        let c = h.connect();
        h.join(c, "c", 1, 1);
        let mut m = Message::new(MsgType::SetOption);
        m.seq = Some(10);
        m.heartbeat_interval = Some(5000);
        m.kap = Some(true);
        h.raw(c, &m.encode());
        assert_eq!(h.drain_raw(c), vec![hex("0007 00000015 0000 0004 0000000a 000c 0004 00001388 0017 0001 01")]);
        m.heartbeat_interval = Some(500);
        m.kap = Some(false);
        assert_eq!(err_of(&h.send(c, &m)[0]), (MsgType::ServerError, Some(10), Some(13)));
        // KAP was not applied by the refused request.
        let l = h.inst.cluster_list();
        assert!(l[0].clients[0].kap);
        assert_eq!(l[0].clients[0].heartbeat_interval, 5000);
        // KAP only: the reply carries only KAP.
        let mut k = Message::new(MsgType::SetOption);
        k.seq = Some(11);
        k.kap = Some(false);
        let r = h.send(c, &k);
        assert_eq!((r[0].heartbeat_interval, r[0].kap), (None, Some(false)));
        // Nothing but an unknown option: C would send an undecodable empty-bodied
        // reply; we send SERVER_ERROR 7 (found by the `session` fuzz target).
        h.raw(c, &hex("0006 00000006 00c8 0002 abcd"));
        let out = h.drain_raw(c);
        assert_eq!(out, vec![hex("0005 00000006 0006 0002 0007")]);
    }

    #[test]
    fn echo_reply_is_a_byte_copy_with_unknown_options() {
        let mut h = H::plain();
        let c = h.connect();
        h.join(c, "c", 1, 1);
        let req = hex("0008 0000000e 0000 0004 00000003 00c8 0002 abcd");
        h.raw(c, &req);
        let mut want = req.clone();
        want[1] = 9;
        assert_eq!(h.drain_raw(c), vec![want]);
    }

    #[test]
    fn skipped_and_undecodable_frames_get_the_c_error_codes() {
        let mut h = H::plain();
        let c = h.connect();
        // Unknown type with a body: 4, no seq.
        h.raw(c, &hex("0012 00000008 0000 0004 00000001"));
        assert_eq!(err_of(&h.drain(c)[0]), (MsgType::ServerError, None, Some(4)));
        // Unknown type with an empty body: the C quirk answers 0.
        h.raw(c, &hex("00ff 00000000"));
        assert_eq!(err_of(&h.drain(c)[0]), (MsgType::ServerError, None, Some(0)));
        // Too long: 5, and the connection continues with the next frame.
        let mut big = hex("0008 00008000");
        big.extend(vec![0u8; 0x8000]);
        h.raw(c, &big);
        assert_eq!(err_of(&h.drain(c)[0]), (MsgType::ServerError, None, Some(5)));
        // Empty body: 9 without seq.
        h.raw(c, &hex("0008 00000000"));
        assert_eq!(err_of(&h.drain(c)[0]), (MsgType::ServerError, None, Some(9)));
        // Fault after a valid seq: seq echoed.
        h.raw(c, &hex("0000 0000000d 0000 0004 00000009 0002 0001 07"));
        assert_eq!(err_of(&h.drain(c)[0]), (MsgType::ServerError, Some(9), Some(9)));
        // Server-to-client type: 8 with seq.
        h.raw(c, &hex("0001 00000008 0000 0004 0000000b"));
        assert_eq!(err_of(&h.drain(c)[0]), (MsgType::ServerError, Some(11), Some(8)));
        assert!(h.closed().is_empty());
    }

    #[test]
    fn node_list_required_options() {
        let mut h = H::plain();
        let c = h.connect();
        h.join(c, "c", 1, 1);
        let mut m = Message::new(MsgType::NodeList);
        m.seq = Some(3);
        assert_eq!(err_of(&h.send(c, &m)[0]), (MsgType::ServerError, Some(3), Some(7)));
        let mut m = Message::new(MsgType::NodeList);
        m.node_list_type = Some(NodeListType::Membership);
        assert_eq!(err_of(&h.send(c, &m)[0]), (MsgType::ServerError, None, Some(7)));
        m.seq = Some(4);
        assert_eq!(err_of(&h.send(c, &m)[0]), (MsgType::ServerError, Some(4), Some(7)));
        m.node_list_type = Some(NodeListType::Quorum);
        assert_eq!(err_of(&h.send(c, &m)[0]), (MsgType::ServerError, Some(4), Some(7)));
        let mut v = Message::new(MsgType::VoteInfoReply);
        v.node_id = Some(1);
        assert_eq!(err_of(&h.send(c, &v)[0]), (MsgType::ServerError, None, Some(7)));
        let mut hc = Message::new(MsgType::HeuristicsChange);
        hc.seq = Some(5);
        assert_eq!(err_of(&h.send(c, &hc)[0]), (MsgType::ServerError, Some(5), Some(7)));
    }

    #[test]
    fn dead_peer_detection_uses_initial_then_negotiated_heartbeat() {
        let mut h = H::plain();
        let a = h.connect();
        // 120000 × 1.5 before INIT.
        h.advance(179_999);
        assert!(h.closed().is_empty());
        h.advance(1);
        assert_eq!(h.closed(), vec![(a, CloseReason::DeadPeer)]);
        let mut h = H::new(CoreSettings { tls: TlsMode::Off, handshake_timeout: 0, ..Default::default() });
        let b = h.connect();
        h.join(b, "c", 1, 1); // heartbeat 8000 → 12000
        h.advance(11_999);
        // A skipped frame does not count as life.
        h.raw(b, &hex("00ff 00000000"));
        h.drain(b);
        h.advance(1);
        assert_eq!(h.closed(), vec![(b, CloseReason::DeadPeer)]);
        assert_eq!(h.inst.status().connected_clusters, 0);
    }

    #[test]
    fn any_complete_frame_restarts_the_dead_peer_timer() {
        let mut h = H::new(CoreSettings { tls: TlsMode::Off, handshake_timeout: 0, ..Default::default() });
        let c = h.connect();
        h.join(c, "c", 1, 1);
        for _ in 0..5 {
            h.advance(11_000);
            h.raw(c, &hex("0008 00000000")); // undecodable, but complete
            h.drain(c);
        }
        assert!(h.closed().is_empty());
        assert_eq!(h.inst.poll_timeout(), Some(h.now + 12_000));
    }

    #[test]
    fn dpd_disabled_never_times_out() {
        let mut h =
            H::new(CoreSettings { tls: TlsMode::Off, dpd_enabled: false, handshake_timeout: 0, ..Default::default() });
        h.connect();
        assert_eq!(h.inst.poll_timeout(), None);
        h.advance(10_000_000);
        assert!(h.closed().is_empty());
    }

    #[test]
    fn handshake_deadline_drops_stalled_clients_only() {
        let mut h = H::new(CoreSettings { tls: TlsMode::Off, handshake_timeout: 5000, ..Default::default() });
        let stalled = h.connect();
        let good = h.connect();
        h.join(good, "c", 1, 1);
        h.advance(5000);
        assert_eq!(h.closed(), vec![(stalled, CloseReason::HandshakeTimeout)]);
        assert_eq!(h.inst.connection_count(), 1);
    }

    #[test]
    fn max_clients_refuses_extra_connections() {
        let mut h = H::new(CoreSettings { max_clients: 2, ..Default::default() });
        let a = h.connect();
        h.connect();
        assert_eq!(h.inst.accept(h.now, "x:1".into()), None);
        h.inst.handle_close(h.now, a);
        assert!(h.inst.accept(h.now, "x:1".into()).is_some());
    }

    #[test]
    fn dpd_coefficient_out_of_timer_range_refuses_connections() {
        let mut h = H::new(CoreSettings { dpd_interval_coefficient: 151.0, ..Default::default() });
        assert_eq!(h.inst.accept(h.now, "x:1".into()), None);
    }

    #[test]
    fn full_send_queue_drops_the_client() {
        let mut h = H::new(CoreSettings { tls: TlsMode::Off, max_client_send_buffers: 3, ..Default::default() });
        let c = h.connect();
        h.join(c, "c", 1, 1);
        h.drain(c);
        let mut e = Message::new(MsgType::EchoRequest);
        e.seq = Some(1);
        let mut bytes = Vec::new();
        for _ in 0..4 {
            bytes.extend(e.encode());
        }
        h.raw(c, &bytes);
        assert_eq!(h.closed(), vec![(c, CloseReason::SendQueueFull)]);
        assert_eq!(h.inst.poll_transmit(c), None, "queued frames are discarded");
    }

    #[test]
    fn oversized_reply_drops_the_client() {
        let mut h = H::new(CoreSettings { tls: TlsMode::Off, max_client_send_size: 64, ..Default::default() });
        let c = h.connect();
        h.join(c, "c", 1, 1);
        h.drain(c);
        let mut e = Message::new(MsgType::EchoRequest);
        e.seq = Some(1);
        e.cluster_name = Some(vec![b'a'; 100]);
        h.raw(c, &e.encode());
        assert_eq!(h.closed(), vec![(c, CloseReason::SendQueueFull)]);
    }

    #[test]
    fn list_keeps_cluster_creation_and_node_order() {
        let mut h = H::plain();
        for (cl, node) in [("b", 3), ("a", 2), ("b", 1), ("a", 9), ("b", 2)] {
            let c = h.connect();
            assert_eq!(h.join(c, cl, node, 1), 0);
        }
        let l = h.inst.cluster_list();
        let got: Vec<(String, Vec<u32>)> = l
            .iter()
            .map(|c| (String::from_utf8_lossy(&c.name).into_owned(), c.clients.iter().map(|m| m.node_id).collect()))
            .collect();
        assert_eq!(got, vec![("b".into(), vec![1, 2, 3]), ("a".into(), vec![2, 9])]);
        let s = h.inst.status();
        assert_eq!((s.connected_clients, s.connected_clusters), (5, 2));
    }

    #[test]
    fn no_clients_since_tracks_the_last_disconnect() {
        let mut h = H::plain();
        assert_eq!(h.inst.status().no_clients_since, Some(0));
        let c = h.connect();
        assert_eq!(h.inst.status().no_clients_since, None);
        h.now = 5000;
        h.inst.handle_close(h.now, c);
        assert_eq!(h.inst.status().no_clients_since, Some(5000));
    }

    #[test]
    fn byte_at_a_time_input_works() {
        let mut h = H::plain();
        let c = h.connect();
        let mut m = Message::new(MsgType::Preinit);
        m.seq = Some(1);
        m.cluster_name = Some(b"c".to_vec());
        for b in m.encode() {
            assert_eq!(h.raw(c, &[b]), 1);
        }
        assert_eq!(h.drain(c)[0].msg_type, MsgType::PreinitReply);
    }

    /// The two-node split of algorithms.md §9.1, end to end through the session
    /// layer with the real ffsplit: exactly one side ends with ACK, and the NACK is
    /// sent (and acknowledged) before the ACK.
    #[test]
    fn ffsplit_two_node_split_through_sessions() {
        let mut h = H::plain();
        let n1 = h.connect();
        let n2 = h.connect();
        assert_eq!(h.join(n1, "c", 1, 1), 0);
        assert_eq!(h.join(n2, "c", 2, 1), 0);
        let both = vec![NodeInfo::new(1), NodeInfo::new(2)];
        let nl = |seq: u32, t: NodeListType, nodes: &[NodeInfo], ring: Option<RingId>| {
            let mut m = Message::new(MsgType::NodeList);
            m.seq = Some(seq);
            m.node_list_type = Some(t);
            m.nodes = nodes.to_vec();
            m.ring_id = ring;
            if t == NodeListType::Quorum {
                m.quorate = Some(true);
            }
            m
        };
        let r16 = Some(RingId { node_id: 1, seq: 6 });
        for c in [n1, n2] {
            let r = h.send(c, &nl(3, NodeListType::InitialConfig, &both, None));
            assert_eq!(r.last().unwrap().vote, Some(Vote::AskLater));
        }
        h.send(n1, &nl(4, NodeListType::Membership, &both, r16));
        h.drain(n2);
        let r = h.send(n2, &nl(4, NodeListType::Membership, &both, r16));
        // Both ACKed (majority), node2's VOTE_INFO before its reply.
        assert_eq!(
            r.iter().map(|m| (m.msg_type, m.vote)).collect::<Vec<_>>(),
            vec![(MsgType::VoteInfo, Some(Vote::Ack)), (MsgType::NodeListReply, Some(Vote::NoChange)),]
        );
        let r1 = h.drain(n1);
        assert_eq!(r1[0].vote, Some(Vote::Ack));
        for c in [n1, n2] {
            let mut a = Message::new(MsgType::VoteInfoReply);
            a.seq = Some(1);
            assert!(h.send(c, &a).is_empty());
        }
        // Split: node1 {1} ring 1.7, node2 {2} ring 2.7.
        let r = h.send(n1, &nl(5, NodeListType::Membership, &[NodeInfo::new(1)], Some(RingId { node_id: 1, seq: 7 })));
        assert_eq!(r[0].vote, Some(Vote::WaitForReply));
        let r = h.send(n2, &nl(5, NodeListType::Membership, &[NodeInfo::new(2)], Some(RingId { node_id: 2, seq: 7 })));
        assert_eq!(
            r.iter().map(|m| (m.msg_type, m.seq, m.vote)).collect::<Vec<_>>(),
            vec![
                (MsgType::VoteInfo, Some(2), Some(Vote::Nack)),
                (MsgType::NodeListReply, Some(5), Some(Vote::NoChange)),
            ]
        );
        assert!(h.drain(n1).is_empty(), "no ACK before the NACK is acknowledged");
        let mut a = Message::new(MsgType::VoteInfoReply);
        a.seq = Some(2);
        h.send(n2, &a);
        let r = h.drain(n1);
        assert_eq!(
            r.iter().map(|m| (m.msg_type, m.seq, m.vote)).collect::<Vec<_>>(),
            vec![(MsgType::VoteInfo, Some(2), Some(Vote::Ack))]
        );
        assert_eq!(r[0].ring_id, Some(RingId { node_id: 1, seq: 7 }));
        let l = h.inst.cluster_list();
        assert_eq!(l[0].clients[0].last_sent_ack_nack_vote, Some(Vote::Ack));
        assert_eq!(l[0].clients[1].last_sent_ack_nack_vote, Some(Vote::Nack));
    }

    #[test]
    fn shutdown_closes_everyone_without_votes() {
        let mut h = H::plain();
        let a = h.connect();
        let b = h.connect();
        h.join(a, "c", 1, 1);
        h.join(b, "c", 2, 1);
        h.drain(a);
        h.drain(b);
        h.events();
        h.inst.shutdown(h.now);
        let closed = h.closed();
        assert_eq!(closed, vec![(a, CloseReason::Shutdown), (b, CloseReason::Shutdown)]);
        assert_eq!(h.inst.connection_count(), 0);
        assert_eq!(h.inst.status().connected_clusters, 0);
    }
}
