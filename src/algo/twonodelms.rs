//! `2 Node LMS` decision algorithm (algorithms.md §5): for two-node clusters
//! only. A node that still sees its peer gets ACK; after a split the better
//! heuristics, then the tie-breaker decide; a lone connected node keeps the
//! vote ("last man standing"). It never sends VOTE_INFO: each node's answer is
//! the reply to its own membership list.
//!
//! Kept as in C, and worth knowing: T's new heuristics are compared with the
//! peer's *stored* value (§2 data visibility), and an earlier ACK is never
//! revoked. If the peer's heuristics flip between its last report and the
//! split, both nodes can be answered ACK. Fixing that needs a protocol this
//! algorithm does not have (no VOTE_INFO, no second phase); use ffsplit where
//! that matters. Clients depend on the exact answers, so they are reproduced.

use super::{Ctx, DecisionAlgorithm};
use crate::cluster::ALGO_2NODELMS;
use crate::wire::{ErrorCode, Heuristics, NodeInfo, RingId, TieBreakerMode, Vote};

/// Per-client state.
#[derive(Debug, Default)]
pub struct TwoNodeLmsClient {
    /// Last stored decision (ACK or NACK); None for a newcomer.
    pub last_result: Option<Vote>,
    /// Entries of the last config list (recorded for diagnostics only).
    pub config_nodes: usize,
}

pub struct TwoNodeLms;

fn last_result(ctx: &Ctx, i: usize) -> Option<Vote> {
    ctx.cluster.members[i].algo_ref::<TwoNodeLmsClient>().and_then(|d| d.last_result)
}

fn store(ctx: &mut Ctx, t: usize, vote: Vote) -> Vote {
    ctx.cluster.members[t].algo_data::<TwoNodeLmsClient>().last_result = Some(vote);
    vote
}

impl DecisionAlgorithm for TwoNodeLms {
    fn number(&self) -> u16 {
        ALGO_2NODELMS
    }

    fn name(&self) -> &'static str {
        "2 Node LMS"
    }

    fn client_init(&self, ctx: &mut Ctx, t: usize) -> Result<(), ErrorCode> {
        *ctx.cluster.members[t].algo_data::<TwoNodeLmsClient>() = TwoNodeLmsClient::default();
        Ok(())
    }

    /// Anything but exactly two entries is answered with error 12 (the real
    /// client then disconnects): the algorithm is meaningless otherwise.
    fn config_node_list_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        _seq: u32,
        _config_version: Option<u64>,
        nodes: &[NodeInfo],
        _initial: bool,
    ) -> Result<Vote, ErrorCode> {
        let m = &mut ctx.cluster.members[t];
        log::debug!("algo-2nodelms: node {} config list has {} nodes", m.node_id, nodes.len());
        m.algo_data::<TwoNodeLmsClient>().config_nodes = nodes.len();
        if nodes.len() != 2 {
            log::info!(
                "algo-2nodelms: node {} sent a config list with {} nodes, this algorithm needs exactly 2",
                m.node_id,
                nodes.len()
            );
            return Err(ErrorCode::UnsupportedDecisionAlgorithm);
        }
        Ok(Vote::NoChange)
    }

    fn membership_node_list_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        _seq: u32,
        ring_id: RingId,
        nodes: &[NodeInfo],
        heuristics: Heuristics,
    ) -> Result<Vote, ErrorCode> {
        // Newcomer rule: while another ring holds the vote, a node that never
        // had a stored result must not take it; the NACK is not stored so the
        // rule keeps applying until the rings agree.
        if last_result(ctx, t).is_none() {
            let other_ack = (0..ctx.cluster.members.len())
                .any(|i| ctx.cluster.members[i].ring_id != ring_id && last_result(ctx, i) == Some(Vote::Ack));
            if other_ack {
                return Ok(Vote::Nack);
            }
        }
        if nodes.len() == 2 {
            return Ok(store(ctx, t, Vote::Ack));
        }
        let members = &ctx.cluster.members;
        let me = &members[t];
        let low = members.iter().map(|m| m.node_id).min().unwrap_or(me.node_id);
        let high = members.iter().map(|m| m.node_id).max().unwrap_or(me.node_id);
        // The peer's heuristics: the last other client in node-id order, as stored.
        let other_h = members
            .iter()
            .enumerate()
            .rev()
            .find(|&(i, _)| i != t)
            .map_or(Heuristics::Undefined, |(_, m)| m.heuristics);
        if members.len() == 1 {
            return Ok(store(ctx, t, Vote::Ack));
        }
        if heuristics.rank() != other_h.rank() {
            let vote = if heuristics.rank() > other_h.rank() { Vote::Ack } else { Vote::Nack };
            return Ok(store(ctx, t, vote));
        }
        let wins = match me.tie_breaker.mode {
            TieBreakerMode::Lowest => me.node_id == low,
            TieBreakerMode::Highest => me.node_id == high,
            TieBreakerMode::NodeId => me.node_id == me.tie_breaker.node_id,
        };
        Ok(store(ctx, t, if wins { Vote::Ack } else { Vote::Nack }))
    }

    fn quorum_node_list_received(
        &self,
        _ctx: &mut Ctx,
        _t: usize,
        _seq: u32,
        _quorate: bool,
        _nodes: &[NodeInfo],
    ) -> Result<Vote, ErrorCode> {
        Ok(Vote::NoChange)
    }

    /// The stored decision, or ASK_LATER before the first one.
    fn ask_for_vote_received(&self, ctx: &mut Ctx, t: usize, _seq: u32) -> Result<Vote, ErrorCode> {
        Ok(last_result(ctx, t).unwrap_or(Vote::AskLater))
    }

    /// Not acted upon; the session still stores the new value, which the peer's
    /// next decision will read.
    fn heuristics_change_received(
        &self,
        _ctx: &mut Ctx,
        _t: usize,
        _seq: u32,
        _heuristics: Heuristics,
    ) -> Result<Vote, ErrorCode> {
        Ok(Vote::NoChange)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::TwoNodeLmsClient;
    use crate::cluster::ALGO_2NODELMS;
    use crate::wire::ErrorCode;

    fn stored(h: &Harness, node: u32) -> Option<crate::wire::Vote> {
        h.member(node).algo_ref::<TwoNodeLmsClient>().and_then(|d| d.last_result)
    }

    /// Two connected nodes, config {1,2}, both in membership {1,2} at ring 1.6 → ACK.
    fn pair(tie_breaker: crate::wire::TieBreaker) -> Harness {
        let mut h = Harness::new(ALGO_2NODELMS);
        h.tie_breaker = tie_breaker;
        h.add(1, ring(1, 5));
        h.add(2, ring(1, 5));
        for n in [1, 2] {
            assert_eq!(h.config(n, &[1, 2], true), reply(vec![], NoChange));
        }
        for n in [1, 2] {
            assert_eq!(h.membership(n, ring(1, 6), &[1, 2], Undefined), reply(vec![], Ack));
        }
        h
    }

    /// §3 column 2nodelms and §5 [observed]: 3-node config → error 12;
    /// ASK_FOR_VOTE before any membership → ASK_LATER.
    #[test]
    fn table_entries() {
        let mut h = Harness::new(ALGO_2NODELMS);
        h.add(1, ring(1, 5));
        assert_eq!(h.config(1, &[1, 2, 3], true), error(ErrorCode::UnsupportedDecisionAlgorithm));
        assert_eq!(h.config(1, &[1, 2, 3, 4], false), error(ErrorCode::UnsupportedDecisionAlgorithm));
        assert_eq!(h.config(1, &[1], true), error(ErrorCode::UnsupportedDecisionAlgorithm));
        // entries are counted, not distinct ids
        assert_eq!(h.config(1, &[1, 1], true), reply(vec![], NoChange));
        assert_eq!(h.config(1, &[1, 2], false), reply(vec![], NoChange));
        assert_eq!(h.ask(1), reply(vec![], AskLater));
        assert_eq!(h.quorum(1, &[1]), reply(vec![], NoChange));
        assert_eq!(h.heuristics_change(1, Fail), reply(vec![], NoChange));
        assert_eq!(h.member(1).heuristics, Fail, "the session still stores it");
        assert_eq!(h.vote_info_reply(1, 1), vec![]);
        // alone → last man standing
        assert_eq!(h.membership(1, ring(1, 6), &[1], Undefined), reply(vec![], Ack));
        assert_eq!(h.ask(1), reply(vec![], Ack));
        assert_eq!(h.member(1).algo_timer, None);
    }

    /// §5 [observed]: split with node1 FAIL vs node2 undefined → node1 NACK, node2 ACK.
    #[test]
    fn split_decided_by_heuristics() {
        let mut h = pair(lowest());
        assert_eq!(h.membership(1, ring(1, 7), &[1], Fail), reply(vec![], Nack));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![], Ack));
        assert_eq!(h.ask(1), reply(vec![], Nack));
        assert_eq!(h.ask(2), reply(vec![], Ack));
    }

    /// `other_h` is the peer's stored value: node2's PASS beats node1's new undefined.
    #[test]
    fn split_compares_with_peer_stored_heuristics() {
        let mut h = pair(lowest());
        assert_eq!(h.heuristics_change(2, Pass), reply(vec![], NoChange));
        assert_eq!(h.membership(1, ring(1, 7), &[1], Undefined), reply(vec![], Nack));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![], Nack));
    }

    #[test]
    fn split_with_equal_heuristics_uses_tie_breaker() {
        let mut h = pair(lowest());
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![], Nack));
        assert_eq!(h.membership(1, ring(1, 7), &[1], Undefined), reply(vec![], Ack));

        let mut h = pair(highest());
        assert_eq!(h.membership(1, ring(1, 7), &[1], Undefined), reply(vec![], Nack));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![], Ack));

        let mut h = pair(nominated(2));
        assert_eq!(h.membership(1, ring(1, 7), &[1], Undefined), reply(vec![], Nack));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![], Ack));

        // nominated node not connected: nobody gets the tie
        let mut h = pair(nominated(7));
        assert_eq!(h.membership(1, ring(1, 7), &[1], Undefined), reply(vec![], Nack));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![], Nack));
    }

    /// Kept C behaviour (module doc): node2's stored FAIL flips to PASS at the
    /// split. node1 decides first against the stale FAIL (tie → lowest → ACK),
    /// node2 then beats node1's FAIL → ACK as well. Pinned so that a change
    /// here is deliberate.
    #[test]
    fn peer_heuristics_flip_can_give_both_ack() {
        let mut h = pair(lowest());
        assert_eq!(h.heuristics_change(2, Fail), reply(vec![], NoChange));
        assert_eq!(h.membership(1, ring(1, 7), &[1], Fail), reply(vec![], Ack));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Pass), reply(vec![], Ack));
    }

    /// §9.4 newcomer rule: node2 restarts isolated (ring 2.7) while node1
    /// (ring 1.7) holds ACK → unstored NACK on every event until the rings agree.
    #[test]
    fn example_9_4_newcomer_rule() {
        let mut h = Harness::new(ALGO_2NODELMS);
        h.add(1, ring(1, 7));
        assert_eq!(h.config(1, &[1, 2], true), reply(vec![], NoChange));
        assert_eq!(h.membership(1, ring(1, 7), &[1], Undefined), reply(vec![], Ack));
        h.add(2, ring(2, 7));
        assert_eq!(h.config(2, &[1, 2], true), reply(vec![], NoChange));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Pass), reply(vec![], Nack));
        assert_eq!(stored(&h, 2), None, "the newcomer NACK is not stored");
        assert_eq!(h.ask(2), reply(vec![], AskLater));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Pass), reply(vec![], Nack));
        // corosync merge, node1 first
        assert_eq!(h.membership(1, ring(1, 8), &[1, 2], Undefined), reply(vec![], Ack));
        assert_eq!(h.membership(2, ring(1, 8), &[1, 2], Undefined), reply(vec![], Ack));
        assert_eq!(stored(&h, 2), Some(Ack));
    }

    /// Newcomer rule while the ACK holder has already moved to the newcomer's ring: no NACK.
    #[test]
    fn newcomer_in_ack_holders_ring_is_not_blocked() {
        let mut h = Harness::new(ALGO_2NODELMS);
        h.add(1, ring(1, 7));
        h.membership(1, ring(1, 8), &[1], Undefined);
        h.add(2, ring(1, 8));
        // merge list arrives from node2 first; node1's stored ring equals R → normal path
        assert_eq!(h.membership(2, ring(1, 8), &[1, 2], Undefined), reply(vec![], Ack));
    }
}
