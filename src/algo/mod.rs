//! Decision algorithms: who in a cluster gets the qdevice vote.
//!
//! One file per algorithm behind [`DecisionAlgorithm`]; [`lookup`] is the registry.
//! A fifth algorithm is one new file plus one line in [`REGISTRY`].
//!
//! Algorithms are called by the session layer (`session.rs`) with a [`Ctx`] that
//! holds the trigger's cluster. As in the C qnetd, the callback runs *before* the
//! session stores the message's new list / ring id / heuristics in the trigger's
//! [`Member`] record: the arguments carry the new values, the record the old ones
//! (algorithms.md §2).

use crate::cluster::{Cluster, ConnId, Member, Millis};
use crate::wire::{ErrorCode, Heuristics, NodeInfo, RingId, Vote};

pub mod ffsplit;
pub mod grant;
pub mod lms;
pub mod test;
pub mod twonodelms;

#[cfg(test)]
mod testutil;

/// A VOTE_INFO an algorithm wants sent. The session queues them in the order
/// produced, before the trigger's own reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteInfoOut {
    pub conn: ConnId,
    pub seq: u32,
    pub vote: Vote,
    pub ring_id: RingId,
}

/// What an algorithm callback may touch: the trigger's cluster, the time, and an
/// outbox of VOTE_INFO messages.
pub struct Ctx<'a> {
    pub now: Millis,
    pub cluster: &'a mut Cluster,
    pub out: &'a mut Vec<VoteInfoOut>,
}

impl Ctx<'_> {
    /// Arm (or re-arm) member `idx`'s algorithm timer to fire after `interval` ms.
    /// An interval of 0 cannot be armed (the C timer list refuses it): the timer
    /// then silently never fires.
    pub fn arm_timer(&mut self, idx: usize, interval: Millis) {
        let now = self.now;
        let m = &mut self.cluster.members[idx];
        m.algo_timer = if interval == 0 { None } else { Some((now + interval, interval)) };
    }

    pub fn cancel_timer(&mut self, idx: usize) {
        self.cluster.members[idx].algo_timer = None;
    }

    /// Queue a VOTE_INFO to member `idx` and record it as that member's last sent vote.
    pub fn send_vote_info(&mut self, idx: usize, seq: u32, vote: Vote, ring_id: RingId) {
        let m = &mut self.cluster.members[idx];
        m.record_vote(vote);
        self.out.push(VoteInfoOut { conn: m.conn, seq, vote, ring_id });
    }
}

/// Result of an algorithm timer expiry (algorithms.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimerOutcome {
    /// Send SERVER_ERROR(code) without seq; the timer is not re-armed.
    pub error: Option<ErrorCode>,
    /// Fire again after the same interval.
    pub reschedule: bool,
    /// Send VOTE_INFO(++timer_vote_seq, vote, member.ring_id).
    pub send_vote: Option<Vote>,
}

/// The callbacks of one decision algorithm (algorithms.md §1.1). `t` is the index
/// of the trigger in `ctx.cluster.members`. An `Err` is answered with
/// SERVER_ERROR(code), seq echoed, and nothing is stored.
pub trait DecisionAlgorithm: Sync {
    /// Number on the wire (option 11).
    fn number(&self) -> u16;
    /// Name as the tools print it ("Fifty-Fifty split", ...).
    fn name(&self) -> &'static str;

    /// After a successful INIT, once the client is in its cluster.
    fn client_init(&self, _ctx: &mut Ctx, _t: usize) -> Result<(), ErrorCode> {
        Ok(())
    }

    fn config_node_list_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        seq: u32,
        config_version: Option<u64>,
        nodes: &[NodeInfo],
        initial: bool,
    ) -> Result<Vote, ErrorCode>;

    fn membership_node_list_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        seq: u32,
        ring_id: RingId,
        nodes: &[NodeInfo],
        heuristics: Heuristics,
    ) -> Result<Vote, ErrorCode>;

    fn quorum_node_list_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        seq: u32,
        quorate: bool,
        nodes: &[NodeInfo],
    ) -> Result<Vote, ErrorCode>;

    fn ask_for_vote_received(&self, ctx: &mut Ctx, t: usize, seq: u32) -> Result<Vote, ErrorCode>;

    fn vote_info_reply_received(&self, _ctx: &mut Ctx, _t: usize, _seq: u32) -> Result<(), ErrorCode> {
        Ok(())
    }

    fn heuristics_change_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        seq: u32,
        heuristics: Heuristics,
    ) -> Result<Vote, ErrorCode>;

    /// Teardown of an initialised client. It is still in `ctx.cluster.members[t]`
    /// during this call and is removed right after.
    fn client_disconnect(&self, _ctx: &mut Ctx, _t: usize, _server_going_down: bool) {}

    /// The member's algorithm timer expired (it has already been disarmed).
    fn timer_callback(&self, _ctx: &mut Ctx, _t: usize) -> TimerOutcome {
        TimerOutcome::default()
    }
}

/// Every algorithm the server supports, by wire number.
pub static REGISTRY: &[&dyn DecisionAlgorithm] = &[&test::Test, &ffsplit::Ffsplit, &twonodelms::TwoNodeLms, &lms::Lms];

/// The algorithm with wire number `number`, if supported.
pub fn lookup(number: u16) -> Option<&'static dyn DecisionAlgorithm> {
    REGISTRY.iter().copied().find(|a| a.number() == number)
}

/// Wire numbers of all supported algorithms (advertised in INIT_REPLY option 10).
pub fn supported() -> Vec<u16> {
    REGISTRY.iter().map(|a| a.number()).collect()
}

/// Convenience for algorithms: index of the cluster member with `node_id`.
pub fn member_by_node(members: &[Member], node_id: u32) -> Option<usize> {
    members.iter().position(|m| m.node_id == node_id)
}
