//! The daemon's I/O shell: one thread, one `smol::LocalExecutor`, one task per
//! TCP client, one per IPC client, plus accept loops, a timer task and the
//! shutdown watcher.
//!
//! All protocol decisions live in the sans-IO [`Instance`]; this module only moves
//! bytes, TLS records, timer ticks and signals into it and carries its output
//! back to sockets. State is shared through `Rc<RefCell<Shared>>` (single thread,
//! no locks); no borrow is ever held across an `.await`.
//!
//! Every call into the core goes through [`Shared::core`], which afterwards turns
//! the core's events into per-connection flags and wakes the affected tasks and
//! the timer task (a core call may have moved the next deadline).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::future;
use log::{debug, error, info, warn};

use crate::cluster::{ConnId, Millis};
use crate::ipc::{self, ServerStatus};
use crate::session::{CertNames, CloseReason, Event, Instance};
use crate::settings::CoreSettings;

/// Bytes read from a socket per read call.
const READ_CHUNK: usize = 16 * 1024;

/// Outbound buffer capacity kept while idle; a burst may grow it, then it shrinks.
const OUT_KEEP: usize = 16 * 1024;

thread_local! {
    /// The one read buffer of the thread. Reads and their processing happen
    /// between two awaits, so connections never need one each (an idle client
    /// then costs no buffer at all).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; READ_CHUNK]);
}

/// What the shell needs besides the listeners.
pub struct Runtime {
    pub core: CoreSettings,
    /// `None` when TLS is off (`-s off`): a STARTTLS then drops the connection.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// For IPC `status`: the `-l` value, or `*`.
    pub listen_addr: String,
    /// For IPC `status`: the port actually bound.
    pub port: u16,
    pub ipc_path: PathBuf,
    /// 0 = unlimited.
    pub ipc_max_clients: usize,
    pub ipc_max_receive_size: usize,
    pub ipc_max_send_size: usize,
}

/// Per-connection flags set by the event pump, consumed by the connection task.
#[derive(Default)]
struct Slot {
    /// The core queued frames for this connection.
    transmit: bool,
    /// The core accepted STARTTLS; the following bytes are TLS.
    starttls: bool,
    /// The core dropped the connection.
    close: Option<CloseReason>,
    waker: Option<Waker>,
}

struct Shared {
    inst: Instance,
    start: Instant,
    slots: HashMap<ConnId, Slot>,
    /// Set whenever the core was called (the next deadline may have moved).
    timer_dirty: bool,
    timer_waker: Option<Waker>,
    ipc_clients: usize,
    shutdown: bool,
    shutdown_waker: Option<Waker>,
}

impl Shared {
    fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }

    /// Call into the core, then dispatch its events.
    fn core<R>(&mut self, f: impl FnOnce(&mut Instance, Millis) -> R) -> R {
        let now = self.now();
        let r = f(&mut self.inst, now);
        while let Some(ev) = self.inst.poll_event() {
            let id = match &ev {
                Event::Transmit(id) | Event::StartTls(id) | Event::Close(id, _) => *id,
            };
            // Events for connections the shell already forgot are moot.
            if let Some(slot) = self.slots.get_mut(&id) {
                match ev {
                    Event::Transmit(_) => slot.transmit = true,
                    Event::StartTls(_) => slot.starttls = true,
                    Event::Close(_, reason) => slot.close = Some(reason),
                }
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
        }
        self.timer_dirty = true;
        if let Some(w) = self.timer_waker.take() {
            w.wake();
        }
        r
    }

    fn request_shutdown(&mut self) {
        self.shutdown = true;
        if let Some(w) = self.shutdown_waker.take() {
            w.wake();
        }
    }
}

type SharedRef = Rc<RefCell<Shared>>;

/// Run the server until SIGINT/SIGTERM (bytes on `signals`) or IPC `shutdown`.
///
/// On return the listeners and every client socket are closed (clients see EOF)
/// and the IPC socket file is removed.
pub fn run(rt: Runtime, tcp: TcpListener, ipc: UnixListener, signals: UnixStream) -> io::Result<()> {
    let tcp = Async::new(tcp)?;
    let ipc = Async::new(ipc)?;
    let signals = Async::new(signals)?;
    let rt = Rc::new(rt);
    let shared: SharedRef = Rc::new(RefCell::new(Shared {
        inst: Instance::new(rt.core.clone()),
        start: Instant::now(),
        slots: HashMap::new(),
        timer_dirty: true,
        timer_waker: None,
        ipc_clients: 0,
        shutdown: false,
        shutdown_waker: None,
    }));
    let ex = Rc::new(smol::LocalExecutor::new());

    ex.spawn(accept_loop(ex.clone(), shared.clone(), rt.clone(), tcp)).detach();
    ex.spawn(ipc_accept_loop(ex.clone(), shared.clone(), rt.clone(), ipc)).detach();
    ex.spawn(timer_task(shared.clone())).detach();
    ex.spawn(signal_task(shared.clone(), signals)).detach();

    let main = async {
        future::poll_fn(|cx| {
            let mut sh = shared.borrow_mut();
            if sh.shutdown {
                Poll::Ready(())
            } else {
                sh.shutdown_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        info!("QNetd shutting down");
        if let Err(e) = std::fs::remove_file(&rt.ipc_path) {
            warn!("Can't remove IPC socket {}: {e}", rt.ipc_path.display());
        }
        shared.borrow_mut().core(|inst, now| inst.shutdown(now));
    };
    // async_io's block_on waits in epoll on this thread while the executor is
    // idle. futures_lite's would leave the reactor to async-io's own thread, and
    // every socket event would then cost a cross-thread wake-up (futex) and two
    // context switches: a third of the CPU time of a heartbeat, measured.
    async_io::block_on(ex.run(main));
    // Dropping the executor drops every task, and with them the listeners and
    // all client sockets.
    drop(ex);
    Ok(())
}

/// Ends the run loop on SIGINT/SIGTERM (signal-hook writes a byte per signal).
async fn signal_task(shared: SharedRef, signals: Async<UnixStream>) {
    let mut buf = [0u8; 16];
    match signals.read_with(|s| (&*s).read(&mut buf)).await {
        Ok(_) => info!("Signal received, terminating"),
        Err(e) => error!("Signal pipe failed ({e}), terminating"),
    }
    shared.borrow_mut().request_shutdown();
}

/// Fires the core's deadlines. Re-reads the next deadline whenever any core call
/// happened, since that may have armed an earlier one.
async fn timer_task(shared: SharedRef) {
    loop {
        let deadline = {
            let mut sh = shared.borrow_mut();
            sh.timer_dirty = false;
            // A deadline too far to represent is as good as none.
            sh.inst.poll_timeout().and_then(|ms| sh.start.checked_add(Duration::from_millis(ms)))
        };
        let sleep = async {
            match deadline {
                Some(at) => {
                    Timer::at(at).await;
                    true
                }
                None => future::pending().await,
            }
        };
        let poked = future::poll_fn(|cx| {
            let mut sh = shared.borrow_mut();
            if sh.timer_dirty {
                Poll::Ready(false)
            } else {
                sh.timer_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        if future::or(sleep, poked).await {
            shared.borrow_mut().core(|inst, now| inst.handle_timeout(now));
        }
    }
}

/// `ip:port` the way the C qnetd prints peers (IPv6 text form, no brackets).
pub fn peer_string(addr: &SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}

async fn accept_loop(
    ex: Rc<smol::LocalExecutor<'static>>,
    shared: SharedRef,
    rt: Rc<Runtime>,
    tcp: Async<TcpListener>,
) {
    loop {
        let (stream, addr) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                error!("Can't accept TCP connection: {e}");
                // Out of descriptors and similar: back off instead of spinning.
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = peer_string(&addr);
        if let Err(e) = stream.get_ref().set_nodelay(true) {
            debug!("Can't set TCP_NODELAY for {peer}: {e}");
        }
        let id = {
            let mut sh = shared.borrow_mut();
            let now = sh.now();
            let id = sh.inst.accept(now, peer.clone());
            if let Some(id) = id {
                sh.slots.insert(id, Slot::default());
            }
            // Dispatch whatever accept produced (the slot now exists).
            sh.core(|_, _| ());
            id
        };
        match id {
            Some(id) => {
                info!("New client connected from {peer}");
                ex.spawn(client_task(shared.clone(), rt.clone(), id, peer, stream)).detach();
            }
            // The core logged why (max clients, timer range).
            None => debug!("Client from {peer} closed right after accept"),
        }
    }
}

/// Why a client task ended.
enum End {
    /// The core closed it (already torn down there).
    Core(CloseReason),
    /// The peer closed the TCP connection.
    Eof,
    Io(io::Error),
    Tls(rustls::Error),
    /// The core asked for TLS but it cannot be set up.
    TlsSetup(String),
    /// The core broke its own API contract; drop rather than loop.
    Internal(&'static str),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Core(r) => write!(f, "closed by server: {r:?}"),
            End::Eof => write!(f, "connection closed by client"),
            End::Io(e) => write!(f, "socket error: {e}"),
            End::Tls(e) => write!(f, "TLS error: {e}"),
            End::TlsSetup(e) => write!(f, "TLS setup failed: {e}"),
            End::Internal(e) => write!(f, "internal error: {e}"),
        }
    }
}

/// One TCP client: plaintext until STARTTLS, then rustls driven by hand.
struct ClientConn {
    id: ConnId,
    peer: String,
    stream: Async<TcpStream>,
    tls: Option<rustls::ServerConnection>,
    tls_reported: bool,
    /// Bytes for the socket (plaintext frames before TLS, TLS records after).
    out: Vec<u8>,
}

async fn client_task(shared: SharedRef, rt: Rc<Runtime>, id: ConnId, peer: String, stream: Async<TcpStream>) {
    let mut conn = ClientConn { id, peer, stream, tls: None, tls_reported: false, out: Vec::new() };
    let end = conn.run(&shared, &rt).await;
    let mut sh = shared.borrow_mut();
    sh.slots.remove(&id);
    match &end {
        End::Core(reason) => debug!("Client {} dropped: {reason:?}", conn.peer),
        End::Eof => {
            debug!("Client {} closed the connection", conn.peer);
        }
        End::Tls(e) if !conn.tls_reported => warn!("TLS handshake with {} failed: {e}", conn.peer),
        End::Tls(_) | End::TlsSetup(_) => warn!("Client {}: {end}", conn.peer),
        End::Io(_) | End::Internal(_) => warn!("Client {}: {end}", conn.peer),
    }
    if !matches!(end, End::Core(_)) {
        sh.core(|inst, now| inst.handle_close(now, id));
    }
    // `conn` (and its socket) is dropped here: the peer sees EOF.
}

/// Which of the awaited conditions fired.
enum Wake {
    Readable,
    Writable,
    Flags,
}

impl ClientConn {
    async fn run(&mut self, shared: &SharedRef, rt: &Runtime) -> End {
        loop {
            if let Err(end) = self.pump_flags(shared, rt) {
                return end;
            }
            if let Err(e) = self.flush() {
                return End::Io(e);
            }
            let want_write = !self.out.is_empty();
            let id = self.id;
            let flags = future::poll_fn(|cx| {
                let mut sh = shared.borrow_mut();
                match sh.slots.get_mut(&id) {
                    Some(s) if s.transmit || s.starttls || s.close.is_some() => Poll::Ready(Wake::Flags),
                    Some(s) => {
                        s.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                    None => Poll::Ready(Wake::Flags),
                }
            });
            let readable = async {
                match self.stream.readable().await {
                    Ok(()) => Wake::Readable,
                    Err(_) => Wake::Readable, // the read below reports the error
                }
            };
            let writable = async {
                if want_write {
                    let _ = self.stream.writable().await;
                    Wake::Writable
                } else {
                    future::pending().await
                }
            };
            match future::or(flags, future::or(readable, writable)).await {
                Wake::Flags | Wake::Writable => continue,
                Wake::Readable => {}
            }
            let res = SCRATCH.with(|scratch| {
                let mut buf = scratch.borrow_mut();
                let n = match self.stream.get_ref().read(&mut buf) {
                    Ok(0) => return Err(End::Eof),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                        return Ok(())
                    }
                    Err(e) => return Err(End::Io(e)),
                };
                if self.tls.is_some() {
                    self.on_tls_bytes(shared, rt, &buf[..n])
                } else {
                    self.on_plain_bytes(shared, rt, &buf[..n])
                }
            });
            if let Err(end) = res {
                // Best effort: let a TLS alert out before closing.
                let _ = self.flush();
                return end;
            }
            // Fairness: a client that floods us must not starve the others.
            future::yield_now().await;
        }
    }

    /// Act on the flags the event pump set: close, STARTTLS (without bytes), or
    /// pull queued frames when the socket has taken everything we had.
    fn pump_flags(&mut self, shared: &SharedRef, rt: &Runtime) -> Result<(), End> {
        let mut sh = shared.borrow_mut();
        let Some(slot) = sh.slots.get_mut(&self.id) else {
            return Err(End::Internal("connection slot vanished"));
        };
        if let Some(reason) = slot.close.take() {
            return Err(End::Core(reason));
        }
        let starttls = std::mem::take(&mut slot.starttls);
        slot.transmit = false;
        drop(sh);
        if starttls {
            self.start_tls(shared, rt)?;
        }
        // Only pull from the core when our buffer is drained, so the core's
        // bounded per-client queue (max_client_send_buffers) is what fills up
        // when a client stops reading, exactly as in C.
        if self.out.is_empty() {
            self.pull_frames(shared)?;
        }
        Ok(())
    }

    fn pull_frames(&mut self, shared: &SharedRef) -> Result<(), End> {
        loop {
            let frame = shared.borrow_mut().inst.poll_transmit(self.id);
            let Some(frame) = frame else { return Ok(()) };
            match self.tls.as_mut() {
                Some(tls) => {
                    tls.writer().write_all(&frame).map_err(End::Io)?;
                    Self::drain_tls(tls, &mut self.out)?;
                }
                None => self.out.extend_from_slice(&frame),
            }
        }
    }

    fn drain_tls(tls: &mut rustls::ServerConnection, out: &mut Vec<u8>) -> Result<(), End> {
        while tls.wants_write() {
            tls.write_tls(out).map_err(End::Io)?;
        }
        Ok(())
    }

    /// Write as much of `out` as the socket takes without blocking.
    fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match self.stream.get_ref().write(&self.out) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes")),
                Ok(n) => {
                    self.out.drain(..n);
                    if self.out.is_empty() && self.out.capacity() > OUT_KEEP {
                        self.out.shrink_to(OUT_KEEP);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Switch to TLS. Frames the core queued before STARTTLS (e.g. a pipelined
    /// PREINIT_REPLY) still go out in plaintext, ahead of any TLS record.
    fn start_tls(&mut self, shared: &SharedRef, rt: &Runtime) -> Result<(), End> {
        if self.tls.is_some() {
            return Err(End::TlsSetup("STARTTLS inside TLS".into()));
        }
        let Some(config) = rt.tls.clone() else {
            return Err(End::TlsSetup("TLS is disabled (-s off)".into()));
        };
        self.pull_frames(shared)?;
        let conn = rustls::ServerConnection::new(config).map_err(|e| End::TlsSetup(e.to_string()))?;
        self.tls = Some(conn);
        Ok(())
    }

    /// Plaintext bytes: to the core, until it accepts STARTTLS (then the rest is
    /// the start of the ClientHello) or closes the connection.
    fn on_plain_bytes(&mut self, shared: &SharedRef, rt: &Runtime, data: &[u8]) -> Result<(), End> {
        let mut off = 0;
        while off < data.len() {
            let mut sh = shared.borrow_mut();
            let id = self.id;
            let n = sh.core(|inst, now| inst.handle_input(now, id, &data[off..]));
            // Never trust a count beyond what was given (slicing must not panic).
            off = (off + n).min(data.len());
            let slot = sh.slots.get_mut(&id).ok_or(End::Internal("connection slot vanished"))?;
            if let Some(reason) = slot.close.take() {
                return Err(End::Core(reason));
            }
            if std::mem::take(&mut slot.starttls) {
                drop(sh);
                self.start_tls(shared, rt)?;
                return self.on_tls_bytes(shared, rt, &data[off..]);
            }
            if off < data.len() && n == 0 {
                return Err(End::Internal("core consumed no input without STARTTLS or close"));
            }
        }
        Ok(())
    }

    /// Bytes from the socket while TLS is on: through rustls; report the
    /// handshake result once; decrypted bytes to the core.
    fn on_tls_bytes(&mut self, shared: &SharedRef, rt: &Runtime, data: &[u8]) -> Result<(), End> {
        let mut rd = data;
        let mut plain = Vec::new();
        while !rd.is_empty() {
            let Some(tls) = self.tls.as_mut() else { return Err(End::Internal("TLS state missing")) };
            tls.read_tls(&mut rd).map_err(End::Io)?;
            let state = match tls.process_new_packets() {
                Ok(s) => s,
                Err(e) => {
                    // Queue the alert rustls prepared; the caller flushes it.
                    let _ = Self::drain_tls(tls, &mut self.out);
                    return Err(End::Tls(e));
                }
            };
            let pending = state.plaintext_bytes_to_read();
            Self::drain_tls(tls, &mut self.out)?;
            if !self.tls_reported && !tls.is_handshaking() {
                self.tls_reported = true;
                let names = self.peer_names()?;
                let id = self.id;
                shared.borrow_mut().core(|inst, now| inst.tls_established(now, id, names));
                self.check_close(shared)?;
            }
            if pending > 0 {
                let Some(tls) = self.tls.as_mut() else { return Err(End::Internal("TLS state missing")) };
                let start = plain.len();
                plain.resize(start + pending, 0);
                tls.reader().read_exact(&mut plain[start..]).map_err(End::Io)?;
            }
            if !plain.is_empty() {
                self.feed_decrypted(shared, rt, &plain)?;
                plain.clear();
            }
        }
        Ok(())
    }

    fn check_close(&mut self, shared: &SharedRef) -> Result<(), End> {
        let mut sh = shared.borrow_mut();
        let slot = sh.slots.get_mut(&self.id).ok_or(End::Internal("connection slot vanished"))?;
        match slot.close.take() {
            Some(reason) => Err(End::Core(reason)),
            None => Ok(()),
        }
    }

    /// Decrypted application bytes to the core. A STARTTLS inside TLS is refused.
    fn feed_decrypted(&mut self, shared: &SharedRef, rt: &Runtime, data: &[u8]) -> Result<(), End> {
        let _ = rt;
        let mut off = 0;
        while off < data.len() {
            let mut sh = shared.borrow_mut();
            let id = self.id;
            let n = sh.core(|inst, now| inst.handle_input(now, id, &data[off..]));
            // Never trust a count beyond what was given (slicing must not panic).
            off = (off + n).min(data.len());
            let slot = sh.slots.get_mut(&id).ok_or(End::Internal("connection slot vanished"))?;
            if let Some(reason) = slot.close.take() {
                return Err(End::Core(reason));
            }
            if std::mem::take(&mut slot.starttls) {
                return Err(End::TlsSetup("second STARTTLS on a TLS connection".into()));
            }
            if off < data.len() && n == 0 {
                return Err(End::Internal("core consumed no input without STARTTLS or close"));
            }
        }
        Ok(())
    }

    /// Log the handshake result and extract the client certificate's names.
    fn peer_names(&self) -> Result<Option<CertNames>, End> {
        let Some(tls) = self.tls.as_ref() else { return Err(End::Internal("TLS state missing")) };
        let version = tls.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
        let suite = tls.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
        let Some(leaf) = tls.peer_certificates().and_then(|c| c.first()) else {
            info!("TLS established with {} ({version}, {suite}), no client certificate", self.peer);
            return Ok(None);
        };
        match crate::pki::cert_names(leaf.as_ref()) {
            Ok(names) => {
                info!(
                    "TLS established with {} ({version}, {suite}), client certificate CN={:?} SAN={:?}",
                    self.peer, names.common_names, names.dns_names
                );
                Ok(Some(names))
            }
            Err(e) => Err(End::TlsSetup(format!("unreadable client certificate: {e}"))),
        }
    }
}

// ---------------------------------------------------------------- IPC

async fn ipc_accept_loop(
    ex: Rc<smol::LocalExecutor<'static>>,
    shared: SharedRef,
    rt: Rc<Runtime>,
    ipc: Async<UnixListener>,
) {
    loop {
        let (stream, _) = match ipc.accept().await {
            Ok(x) => x,
            Err(e) => {
                error!("Can't accept IPC connection: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        {
            let mut sh = shared.borrow_mut();
            if rt.ipc_max_clients != 0 && sh.ipc_clients >= rt.ipc_max_clients {
                debug!("IPC client refused: {} connections already", sh.ipc_clients);
                continue; // dropping the stream closes it
            }
            sh.ipc_clients += 1;
        }
        let shared2 = shared.clone();
        let rt2 = rt.clone();
        ex.spawn(async move {
            if let Err(e) = ipc_client(&shared2, &rt2, stream).await {
                debug!("IPC client: {e}");
            }
            shared2.borrow_mut().ipc_clients -= 1;
        })
        .detach();
    }
}

/// One request per connection: read until a newline has arrived (closing
/// without a reply once more than `ipc_max_receive_size` bytes came first, even
/// if they hold the newline, as C does), answer with [`ipc::respond`], close.
async fn ipc_client(shared: &SharedRef, rt: &Runtime, mut stream: Async<UnixStream>) -> io::Result<()> {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let max = rt.ipc_max_receive_size;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !ipc::request_complete(&req) {
        // Never read more than one byte past the limit.
        let room = (max + 1 - req.len()).min(buf.len());
        let n = stream.read(&mut buf[..room]).await?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
        if req.len() > max {
            debug!("IPC request longer than {max} bytes, closing without reply");
            return Ok(());
        }
    }
    let resp = {
        let sh = shared.borrow();
        let now = sh.now();
        let core = sh.inst.status();
        let settings = &rt.core;
        let status = ServerStatus {
            listen_addr: rt.listen_addr.clone(),
            port: rt.port,
            tls: settings.tls,
            client_cert_required: settings.client_cert_required,
            connected_clients: core.connected_clients,
            connected_clusters: core.connected_clusters,
            max_clients: settings.max_clients,
            max_client_send_size: settings.max_client_send_size,
            max_client_receive_size: settings.max_client_receive_size,
            seconds_without_clients: core.no_clients_since.map(|t| now.saturating_sub(t) / 1000),
            version: env!("QNETD_BUILD_INFO").to_string(),
            uptime_seconds: now / 1000,
        };
        let clusters = sh.inst.cluster_list();
        ipc::respond(&req, &status, &clusters, rt.ipc_max_send_size)
    };
    if !resp.reply.is_empty() {
        stream.write_all(&resp.reply).await?;
        stream.flush().await?;
    }
    // Only after the whole reply went out (a vanished tool does not stop us).
    if resp.shutdown {
        info!("Shutdown requested over IPC");
        shared.borrow_mut().request_shutdown();
    }
    Ok(())
}
