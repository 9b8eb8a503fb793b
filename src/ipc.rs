//! The local status socket (`corosync-qnetd-tool`'s protocol, tool-and-files.md §4):
//! request tokenising, command parsing and the exact text of `status` / `list`
//! replies. Sans-IO: the daemon hands in snapshots, this module returns bytes.

use crate::settings::TlsMode;
use crate::wire::{Heuristics, NodeInfo, RingId, TieBreaker, Vote};

/// Server-wide figures for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStatus {
    /// `-l` address as given, or `*` when listening on the wildcard.
    pub listen_addr: String,
    pub port: u16,
    pub tls: TlsMode,
    pub client_cert_required: bool,
    /// TCP clients in any phase.
    pub connected_clients: usize,
    pub connected_clusters: usize,
    /// 0 = unlimited (then the verbose line is omitted).
    pub max_clients: u64,
    pub max_client_send_size: u32,
    pub max_client_receive_size: u32,
}

/// One cluster for `list`, members in node-id order.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterStatus {
    pub name: Vec<u8>,
    pub clients: Vec<ClientStatus>,
}

/// One initialised client for `list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientStatus {
    pub node_id: u32,
    /// `ip:port` as the C qnetd prints it (IPv6 text form, no brackets).
    pub addr: String,
    pub algorithm: u16,
    pub tie_breaker: TieBreaker,
    pub kap: bool,
    pub heartbeat_interval: u32,
    pub config_version: Option<u64>,
    pub config_nodes: Vec<NodeInfo>,
    pub ring_id: RingId,
    pub membership_nodes: Vec<NodeInfo>,
    pub heuristics: Heuristics,
    pub membership_heuristics: Heuristics,
    pub regular_heuristics: Heuristics,
    pub tls_active: bool,
    pub cert_verified: bool,
    pub last_sent_vote: Option<Vote>,
    pub last_sent_ack_nack_vote: Option<Vote>,
}
