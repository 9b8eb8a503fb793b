//! Clusters and their members: the state the decision algorithms read and write.
//!
//! A cluster is identified by the exact bytes of the PREINIT cluster name. It exists
//! while it has at least one member (a client that passed INIT). Members are kept
//! sorted by node id ascending, because every algorithm iteration, VOTE_INFO fan-out
//! and tool listing of the C qnetd walks them in that order.

use std::any::Any;
use std::fmt;

use crate::wire::{Heuristics, NodeInfo, RingId, TieBreaker, Vote};

/// Monotonic time in milliseconds, passed in by the shell (the core never reads a clock).
pub type Millis = u64;

/// Identifies one TCP connection for its whole life; never reused.
pub type ConnId = u64;

/// Decision algorithm numbers (option 11).
pub const ALGO_TEST: u16 = 0;
pub const ALGO_FFSPLIT: u16 = 1;
pub const ALGO_2NODELMS: u16 = 2;
pub const ALGO_LMS: u16 = 3;

/// The algorithm-private value in `slot` as a `T`, replaced by `T::default()` when
/// absent or of another type (a member's algorithm never changes, so in practice
/// that is only the first use).
fn algo_slot<T: Default + 'static>(slot: &mut Option<Box<dyn Any>>) -> &mut T {
    if !matches!(slot, Some(b) if b.is::<T>()) {
        *slot = Some(Box::new(T::default()));
    }
    match slot.as_mut().and_then(|b| b.downcast_mut::<T>()) {
        Some(t) => t,
        None => unreachable!("the slot was just set to a T"),
    }
}

/// One initialised client of a cluster, as the algorithms see it.
pub struct Member {
    pub conn: ConnId,
    pub node_id: u32,
    pub algorithm: u16,
    pub tie_breaker: TieBreaker,
    /// Milliseconds; lms arms its timer at a quarter of it.
    pub heartbeat_interval: u32,
    /// Keep-active-partition tie-breaker (ffsplit).
    pub kap: bool,
    pub config: Vec<NodeInfo>,
    pub config_version: Option<u64>,
    pub membership: Vec<NodeInfo>,
    pub quorum: Vec<NodeInfo>,
    pub ring_id: RingId,
    pub membership_heuristics: Heuristics,
    pub regular_heuristics: Heuristics,
    pub heuristics: Heuristics,
    pub last_sent_vote: Option<Vote>,
    pub last_sent_ack_nack_vote: Option<Vote>,
    /// The generic per-client algorithm timer (only lms arms it): deadline and interval.
    pub algo_timer: Option<(Millis, Millis)>,
    /// Seq counter for VOTE_INFO sent from the timer (pre-incremented, first = 1).
    pub timer_vote_seq: u32,
    /// Algorithm-private per-client state; see [`Member::algo_data`].
    algo: Option<Box<dyn Any>>,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("conn", &self.conn)
            .field("node_id", &self.node_id)
            .field("algorithm", &self.algorithm)
            .field("ring_id", &self.ring_id)
            .field("config", &self.config)
            .field("membership", &self.membership)
            .field("heuristics", &self.heuristics)
            .field("last_sent_vote", &self.last_sent_vote)
            .finish_non_exhaustive()
    }
}

impl Member {
    pub fn new(conn: ConnId, node_id: u32, algorithm: u16, tie_breaker: TieBreaker) -> Self {
        Member {
            conn,
            node_id,
            algorithm,
            tie_breaker,
            heartbeat_interval: 120_000,
            kap: false,
            config: Vec::new(),
            config_version: None,
            membership: Vec::new(),
            quorum: Vec::new(),
            ring_id: RingId::default(),
            membership_heuristics: Heuristics::Undefined,
            regular_heuristics: Heuristics::Undefined,
            heuristics: Heuristics::Undefined,
            last_sent_vote: None,
            last_sent_ack_nack_vote: None,
            algo_timer: None,
            timer_vote_seq: 0,
            algo: None,
        }
    }

    /// The algorithm's private state for this client, created with `Default` on first use.
    /// Each algorithm file defines its own state type, so adding an algorithm touches
    /// no shared struct.
    pub fn algo_data<T: Default + 'static>(&mut self) -> &mut T {
        algo_slot(&mut self.algo)
    }

    /// Read-only view of the algorithm's private state (None if never created).
    pub fn algo_ref<T: 'static>(&self) -> Option<&T> {
        self.algo.as_deref().and_then(|b| b.downcast_ref::<T>())
    }

    /// Record a vote the server sent to this client (reply or VOTE_INFO).
    pub fn record_vote(&mut self, vote: Vote) {
        self.last_sent_vote = Some(vote);
        if matches!(vote, Vote::Ack | Vote::Nack) {
            self.last_sent_ack_nack_vote = Some(vote);
        }
    }

    /// Whether `node_id` is in `list`.
    pub fn list_contains(list: &[NodeInfo], node_id: u32) -> bool {
        list.iter().any(|n| n.node_id == node_id)
    }
}

/// A cluster: its name, its members in node-id order, and algorithm-private state.
pub struct Cluster {
    pub name: Vec<u8>,
    pub members: Vec<Member>,
    algo: Option<Box<dyn Any>>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub fn new(name: Vec<u8>) -> Self {
        Cluster { name, members: Vec::new(), algo: None }
    }

    /// Cluster-wide algorithm state (ffsplit's cluster state and previous winner).
    pub fn algo_data<T: Default + 'static>(&mut self) -> &mut T {
        algo_slot(&mut self.algo)
    }

    pub fn algo_ref<T: 'static>(&self) -> Option<&T> {
        self.algo.as_deref().and_then(|b| b.downcast_ref::<T>())
    }

    /// Insert keeping node-id order: before the first member with a larger id
    /// (so equal ids — impossible after the admission check — go after).
    /// Returns the index of the new member.
    pub fn insert(&mut self, member: Member) -> usize {
        let pos = self.members.iter().position(|m| m.node_id > member.node_id).unwrap_or(self.members.len());
        self.members.insert(pos, member);
        pos
    }

    pub fn index_of_conn(&self, conn: ConnId) -> Option<usize> {
        self.members.iter().position(|m| m.conn == conn)
    }

    pub fn index_of_node(&self, node_id: u32) -> Option<usize> {
        self.members.iter().position(|m| m.node_id == node_id)
    }
}
