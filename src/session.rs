//! The qnetd instance as a sans-IO state machine: every client connection's
//! session (session.md) plus the clusters they form.
//!
//! The shell (server.rs) owns sockets and TLS; it calls in with bytes, TLS results,
//! EOFs and the current time, and drains frames to send, events and the next
//! deadline. Nothing here reads a clock or touches a socket.

use std::collections::VecDeque;

use crate::cluster::{ConnId, Millis};
use crate::ipc::{ClusterStatus, ServerStatus};
use crate::settings::CoreSettings;

/// Names carried by a verified client certificate, extracted by the shell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    /// subjectAltName dNSName entries.
    pub dns_names: Vec<String>,
    /// Subject common names.
    pub common_names: Vec<String>,
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

/// The whole server state.
pub struct Instance {
    settings: CoreSettings,
    events: VecDeque<Event>,
}

impl Instance {
    pub fn new(settings: CoreSettings) -> Self {
        Instance { settings, events: VecDeque::new() }
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// A TCP connection was accepted from `peer` (`ip:port` as printed by the tool).
    /// Returns `None` when `max_clients` is reached: close the socket, send nothing.
    pub fn accept(&mut self, now: Millis, peer: String) -> Option<ConnId> {
        let _ = (now, peer);
        todo!()
    }

    /// Inbound application bytes (plaintext before STARTTLS, decrypted after).
    /// Returns how many bytes were consumed. Fewer than `data.len()` only when a
    /// STARTTLS was accepted (the rest belongs to TLS) or the connection was closed.
    pub fn handle_input(&mut self, now: Millis, conn: ConnId, data: &[u8]) -> usize {
        let _ = (now, conn, data);
        todo!()
    }

    /// The TLS handshake after STARTTLS completed. `peer` is `Some` when the client
    /// presented a certificate that chains to our CA (the shell verified it).
    pub fn tls_established(&mut self, now: Millis, conn: ConnId, peer: Option<CertNames>) {
        let _ = (now, conn, peer);
        todo!()
    }

    /// EOF, socket or TLS error seen by the shell. Tears the client down.
    pub fn handle_close(&mut self, now: Millis, conn: ConnId) {
        let _ = (now, conn);
        todo!()
    }

    /// Next queued outbound frame for `conn`.
    pub fn poll_transmit(&mut self, conn: ConnId) -> Option<Vec<u8>> {
        let _ = conn;
        todo!()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Earliest deadline (dead-peer, handshake, algorithm timers), if any.
    pub fn poll_timeout(&self) -> Option<Millis> {
        todo!()
    }

    /// Fire every deadline that is due at `now`.
    pub fn handle_timeout(&mut self, now: Millis) {
        let _ = now;
        todo!()
    }

    /// Server going down: tear every client down with `server_going_down = true`
    /// (no VOTE_INFO is produced). Emits `Close(_, Shutdown)` for each.
    pub fn shutdown(&mut self, now: Millis) {
        let _ = now;
        todo!()
    }

    /// Figures for IPC `status` (listen address and port are the shell's to fill).
    pub fn status(&self) -> ServerStatus {
        todo!()
    }

    /// Clusters in creation order for IPC `list`.
    pub fn cluster_list(&self) -> Vec<ClusterStatus> {
        todo!()
    }

    /// Number of TCP connections in any phase.
    pub fn connection_count(&self) -> usize {
        todo!()
    }
}
