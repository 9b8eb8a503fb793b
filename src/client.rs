//! A small qdevice-like protocol client over smol, for integration tests and the
//! load generator.
//!
//! It speaks what a real `corosync-qdevice` (model net) sends: PREINIT, STARTTLS
//! on the same socket, the TLS handshake (rustls, trusting only the qnetd CA,
//! checking the server name `Qnetd Server` the NSS way, presenting a cluster
//! certificate if given), INIT, SET_OPTION, node lists, echo requests, heuristics
//! changes and vote-info replies. It also sends raw bytes, so tests can misbehave
//! on purpose. Messages are built and parsed with [`crate::wire`].
//!
//! Every receive takes a timeout. Works on any executor that drives async-io
//! (e.g. `smol::block_on`).
//!
//! Note: rustls cannot send the SNI "Qnetd Server" (not a DNS name), so this
//! client sends no SNI; the server ignores SNI either way.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use rustls::pki_types::ServerName;

use crate::cluster::ALGO_FFSPLIT;
use crate::wire::{
    self, opt, Heuristics, Message, MsgType, NodeInfo, NodeListType, RingId, TieBreaker, TieBreakerMode, HEADER_LEN,
};

/// What went wrong on the client side.
#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    /// TLS failure, including alerts sent by the server.
    Tls(rustls::Error),
    /// Nothing (complete) arrived in time.
    Timeout,
    /// The server closed the connection.
    Eof,
    /// A frame that `wire::decode` refused, or of an unknown type.
    Decode(String),
    /// A message other than the one the helper expected.
    Unexpected(Box<Message>),
}

impl ClientError {
    /// True when the server dropped us (EOF, reset, or a TLS alert/failure).
    pub fn is_disconnect(&self) -> bool {
        match self {
            ClientError::Eof | ClientError::Tls(_) => true,
            ClientError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
            ClientError::Tls(e) => write!(f, "TLS error: {e}"),
            ClientError::Timeout => write!(f, "timed out"),
            ClientError::Eof => write!(f, "server closed the connection"),
            ClientError::Decode(e) => write!(f, "undecodable message: {e}"),
            ClientError::Unexpected(m) => write!(f, "unexpected message {:?}", m.msg_type),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// INIT parameters; [`InitParams::new`] gives what a default qdevice sends.
#[derive(Debug, Clone)]
pub struct InitParams {
    pub node_id: u32,
    pub algorithm: u16,
    pub tie_breaker: TieBreaker,
    pub heartbeat_interval: u32,
    pub ring_id: RingId,
    /// Send the supported-messages/options lists (real clients always do; the
    /// server echoes its lists only if asked).
    pub send_supported_lists: bool,
}

impl InitParams {
    /// ffsplit, lowest-id tie-breaker, heartbeat 8000 ms (qdevice's default), ring 1.1.
    pub fn new(node_id: u32) -> Self {
        InitParams {
            node_id,
            algorithm: ALGO_FFSPLIT,
            tie_breaker: TieBreaker { mode: TieBreakerMode::Lowest, node_id: 0 },
            heartbeat_interval: 8000,
            ring_id: RingId { node_id: 1, seq: 1 },
            send_supported_lists: true,
        }
    }
}

/// One connection to a qnetd.
pub struct Client {
    stream: Async<TcpStream>,
    tls: Option<rustls::ClientConnection>,
    /// Plaintext (or decrypted) bytes not yet cut into frames.
    inbuf: Vec<u8>,
    seq: u32,
    peer: SocketAddr,
}

impl Client {
    /// TCP connect. Seq numbers start at 1, as a freshly started qdevice's.
    pub async fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = Async::<TcpStream>::connect(addr).await?;
        stream.get_ref().set_nodelay(true)?;
        Ok(Client { stream, tls: None, inbuf: Vec::new(), seq: 0, peer: addr })
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.get_ref().local_addr()
    }

    pub fn tls_active(&self) -> bool {
        self.tls.is_some()
    }

    /// The next seq number (pre-incremented, like the client's counter).
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Send an encoded message (through TLS once started).
    pub async fn send(&mut self, msg: &Message) -> Result<()> {
        let bytes = msg.encode();
        self.send_raw(&bytes).await
    }

    /// Send arbitrary bytes (through TLS once started).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        match self.tls.as_mut() {
            Some(tls) => {
                tls.writer().write_all(bytes)?;
                self.flush_tls().await
            }
            None => {
                self.stream.write_all(bytes).await?;
                Ok(())
            }
        }
    }

    async fn flush_tls(&mut self) -> Result<()> {
        let Some(tls) = self.tls.as_mut() else { return Ok(()) };
        let mut out = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut out)?;
        }
        if !out.is_empty() {
            self.stream.write_all(&out).await?;
        }
        Ok(())
    }

    /// Read more application bytes into `inbuf`.
    async fn fill(&mut self) -> Result<()> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(tls) = self.tls.as_mut() {
                match tls.reader().read(&mut buf) {
                    Ok(0) => return Err(ClientError::Eof),
                    Ok(n) => {
                        self.inbuf.extend_from_slice(&buf[..n]);
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(ClientError::Io(e)),
                }
            }
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                return Err(ClientError::Eof);
            }
            match self.tls.as_mut() {
                None => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    return Ok(());
                }
                Some(tls) => {
                    let mut rd = &buf[..n];
                    while !rd.is_empty() {
                        tls.read_tls(&mut rd)?;
                        tls.process_new_packets().map_err(ClientError::Tls)?;
                    }
                    self.flush_tls().await?;
                }
            }
        }
    }

    /// Cut one complete frame off `inbuf`.
    fn take_frame(&mut self) -> Option<Vec<u8>> {
        if self.inbuf.len() < HEADER_LEN {
            return None;
        }
        let len = u32::from_be_bytes([self.inbuf[2], self.inbuf[3], self.inbuf[4], self.inbuf[5]]) as usize;
        let total = HEADER_LEN.checked_add(len)?;
        if self.inbuf.len() < total {
            return None;
        }
        Some(self.inbuf.drain(..total).collect())
    }

    /// The next whole frame (header included), raw.
    pub async fn recv_raw(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        with_timeout(timeout, async {
            loop {
                if let Some(f) = self.take_frame() {
                    return Ok(f);
                }
                self.fill().await?;
            }
        })
        .await
    }

    /// The next message, decoded.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Message> {
        let frame = self.recv_raw(timeout).await?;
        let ty = u16::from_be_bytes([frame[0], frame[1]]);
        let msg_type = MsgType::from_u16(ty).ok_or_else(|| ClientError::Decode(format!("unknown type {ty}")))?;
        wire::decode(msg_type, &frame[HEADER_LEN..]).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// The next message, which must be of type `want`.
    pub async fn expect(&mut self, want: MsgType, timeout: Duration) -> Result<Message> {
        let m = self.recv(timeout).await?;
        if m.msg_type == want {
            Ok(m)
        } else {
            Err(ClientError::Unexpected(Box::new(m)))
        }
    }

    /// Wait until the server drops us. `Err(Timeout)` if it does not; a message
    /// arriving first is `Err(Unexpected)`.
    pub async fn expect_disconnect(&mut self, timeout: Duration) -> Result<()> {
        match self.recv(timeout).await {
            Ok(m) => Err(ClientError::Unexpected(Box::new(m))),
            Err(e) if e.is_disconnect() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// PREINIT(cluster) → PREINIT_REPLY.
    pub async fn preinit(&mut self, cluster: &[u8], timeout: Duration) -> Result<Message> {
        let mut m = Message::new(MsgType::Preinit);
        m.seq = Some(self.next_seq());
        m.cluster_name = Some(cluster.to_vec());
        self.send(&m).await?;
        self.expect(MsgType::PreinitReply, timeout).await
    }

    /// STARTTLS, then the TLS handshake on the same socket. With TLS 1.3 the
    /// server judges our certificate after we consider the handshake done, so a
    /// rejection shows up on the next receive.
    pub async fn starttls(&mut self, config: Arc<rustls::ClientConfig>, timeout: Duration) -> Result<()> {
        let mut m = Message::new(MsgType::StartTls);
        m.seq = Some(self.next_seq());
        self.send(&m).await?;
        // The real client sends no SNI we could reproduce; an IP name sends none.
        let name = ServerName::IpAddress(self.peer.ip().into());
        let conn = rustls::ClientConnection::new(config, name).map_err(ClientError::Tls)?;
        self.tls = Some(conn);
        with_timeout(timeout, async {
            let mut buf = [0u8; 16 * 1024];
            loop {
                self.flush_tls().await?;
                let Some(tls) = self.tls.as_mut() else { return Ok(()) };
                if !tls.is_handshaking() {
                    return Ok(());
                }
                let n = self.stream.read(&mut buf).await?;
                if n == 0 {
                    return Err(ClientError::Eof);
                }
                let Some(tls) = self.tls.as_mut() else { return Ok(()) };
                let mut rd = &buf[..n];
                while !rd.is_empty() {
                    tls.read_tls(&mut rd)?;
                    if let Err(e) = tls.process_new_packets() {
                        let _ = self.flush_tls().await;
                        return Err(ClientError::Tls(e));
                    }
                }
            }
        })
        .await
    }

    /// INIT → INIT_REPLY (any error code; the caller checks it).
    pub async fn init(&mut self, p: &InitParams, timeout: Duration) -> Result<Message> {
        let mut m = Message::new(MsgType::Init);
        m.seq = Some(self.next_seq());
        if p.send_supported_lists {
            m.supported_messages = Some(MsgType::ALL.iter().map(|t| *t as u16).collect());
            m.supported_options = Some((0..opt::COUNT).collect());
        }
        m.node_id = Some(p.node_id);
        m.algorithm = Some(p.algorithm);
        m.heartbeat_interval = Some(p.heartbeat_interval);
        m.tie_breaker = Some(p.tie_breaker);
        m.ring_id = Some(p.ring_id);
        self.send(&m).await?;
        self.expect(MsgType::InitReply, timeout).await
    }

    /// SET_OPTION(KAP). Returns the seq used.
    pub async fn send_set_option_kap(&mut self, kap: bool) -> Result<u32> {
        let seq = self.next_seq();
        let mut m = Message::new(MsgType::SetOption);
        m.seq = Some(seq);
        m.kap = Some(kap);
        self.send(&m).await?;
        Ok(seq)
    }

    /// NODE_LIST (initial or changed config). Returns the seq used.
    pub async fn send_config_list(&mut self, nodes: &[NodeInfo], version: Option<u64>, initial: bool) -> Result<u32> {
        let seq = self.next_seq();
        let mut m = Message::new(MsgType::NodeList);
        m.seq = Some(seq);
        m.node_list_type = Some(if initial { NodeListType::InitialConfig } else { NodeListType::ChangedConfig });
        m.config_version = version;
        m.nodes = nodes.to_vec();
        self.send(&m).await?;
        Ok(seq)
    }

    /// NODE_LIST (membership). `Heuristics::Undefined` omits the option.
    pub async fn send_membership_list(&mut self, ring_id: RingId, nodes: &[NodeInfo], h: Heuristics) -> Result<u32> {
        let seq = self.next_seq();
        let mut m = Message::new(MsgType::NodeList);
        m.seq = Some(seq);
        m.node_list_type = Some(NodeListType::Membership);
        m.ring_id = Some(ring_id);
        m.nodes = nodes.to_vec();
        m.heuristics = (h != Heuristics::Undefined).then_some(h);
        self.send(&m).await?;
        Ok(seq)
    }

    /// NODE_LIST (quorum).
    pub async fn send_quorum_list(&mut self, quorate: bool, nodes: &[NodeInfo]) -> Result<u32> {
        let seq = self.next_seq();
        let mut m = Message::new(MsgType::NodeList);
        m.seq = Some(seq);
        m.node_list_type = Some(NodeListType::Quorum);
        m.quorate = Some(quorate);
        m.nodes = nodes.to_vec();
        self.send(&m).await?;
        Ok(seq)
    }

    /// ECHO_REQUEST with the given seq (qdevice keeps a separate echo counter).
    pub async fn send_echo_request(&mut self, seq: u32) -> Result<()> {
        let mut m = Message::new(MsgType::EchoRequest);
        m.seq = Some(seq);
        self.send(&m).await
    }

    /// HEURISTICS_CHANGE. Returns the seq used.
    pub async fn send_heuristics_change(&mut self, h: Heuristics) -> Result<u32> {
        let seq = self.next_seq();
        let mut m = Message::new(MsgType::HeuristicsChange);
        m.seq = Some(seq);
        m.heuristics = Some(h);
        self.send(&m).await?;
        Ok(seq)
    }

    /// VOTE_INFO_REPLY echoing a VOTE_INFO's seq (no answer comes back).
    pub async fn send_vote_info_reply(&mut self, vote_info_seq: u32) -> Result<()> {
        let mut m = Message::new(MsgType::VoteInfoReply);
        m.seq = Some(vote_info_seq);
        self.send(&m).await
    }

    /// The whole connect sequence of a real client up to a successful INIT_REPLY:
    /// connect, PREINIT, STARTTLS + handshake when `tls` is given, INIT. An INIT
    /// error code comes back as `Err(Unexpected)` with the reply.
    pub async fn connect_and_init(
        addr: SocketAddr,
        cluster: &[u8],
        tls: Option<Arc<rustls::ClientConfig>>,
        p: &InitParams,
        timeout: Duration,
    ) -> Result<Client> {
        let mut c = Client::connect(addr).await?;
        c.preinit(cluster, timeout).await?;
        if let Some(cfg) = tls {
            c.starttls(cfg, timeout).await?;
        }
        let reply = c.init(p, timeout).await?;
        if reply.reply_error_code != Some(0) {
            return Err(ClientError::Unexpected(Box::new(reply)));
        }
        Ok(c)
    }
}

async fn with_timeout<T>(d: Duration, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    future::or(f, async {
        Timer::after(d).await;
        Err(ClientError::Timeout)
    })
    .await
}
