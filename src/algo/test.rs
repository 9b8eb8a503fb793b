//! `Test` decision algorithm (algorithms.md §8): every membership list and
//! every ASK_FOR_VOTE gets ACK, whatever the partition. Two partitions can
//! therefore both hold the vote; it exists only to exercise clients and is
//! kept because real clients may select it (algorithm 0).

use super::{Ctx, DecisionAlgorithm};
use crate::cluster::ALGO_TEST;
use crate::wire::{ErrorCode, Heuristics, NodeInfo, RingId, Vote};

pub struct Test;

impl DecisionAlgorithm for Test {
    fn number(&self) -> u16 {
        ALGO_TEST
    }

    fn name(&self) -> &'static str {
        "Test"
    }

    /// Accepts the client but warns the operator: this algorithm gives every
    /// partition the vote, so it must never guard a production cluster.
    fn client_init(&self, ctx: &mut Ctx, t: usize) -> Result<(), ErrorCode> {
        let m = &ctx.cluster.members[t];
        log::warn!(
            "algo-test: client (cluster {:?}, node id {}) uses the test algorithm; it is unsafe, do not use it in production",
            String::from_utf8_lossy(&ctx.cluster.name),
            m.node_id
        );
        Ok(())
    }

    fn config_node_list_received(
        &self,
        _ctx: &mut Ctx,
        _t: usize,
        _seq: u32,
        _config_version: Option<u64>,
        _nodes: &[NodeInfo],
        _initial: bool,
    ) -> Result<Vote, ErrorCode> {
        Ok(Vote::NoChange)
    }

    fn membership_node_list_received(
        &self,
        _ctx: &mut Ctx,
        _t: usize,
        _seq: u32,
        _ring_id: RingId,
        _nodes: &[NodeInfo],
        _heuristics: Heuristics,
    ) -> Result<Vote, ErrorCode> {
        Ok(Vote::Ack)
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

    fn ask_for_vote_received(&self, _ctx: &mut Ctx, _t: usize, _seq: u32) -> Result<Vote, ErrorCode> {
        Ok(Vote::Ack)
    }

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
    use crate::cluster::ALGO_TEST;

    /// §3 column "test" and §8: fixed answers, never a VOTE_INFO, never a timer.
    #[test]
    fn every_event_gets_its_fixed_answer() {
        let mut h = Harness::new(ALGO_TEST);
        h.add(1, ring(1, 5));
        assert_eq!(h.config(1, &[1, 2], true), reply(vec![], NoChange));
        assert_eq!(h.config(1, &[1, 2, 3], false), reply(vec![], NoChange));
        assert_eq!(h.membership(1, ring(1, 6), &[1, 2], Pass), reply(vec![], Ack));
        assert_eq!(h.quorum(1, &[1, 2]), reply(vec![], NoChange));
        assert_eq!(h.ask(1), reply(vec![], Ack));
        assert_eq!(h.heuristics_change(1, Fail), reply(vec![], NoChange));
        assert_eq!(h.vote_info_reply(1, 1), vec![]);
        assert_eq!(h.member(1).algo_timer, None);
        assert_eq!(h.disconnect(1, false), vec![]);
    }

    /// §8 "Every partition gets ACK": a 1|1 split leaves both sides with the vote.
    #[test]
    fn every_partition_gets_ack() {
        let mut h = Harness::new(ALGO_TEST);
        h.add(1, ring(1, 6));
        h.add(2, ring(1, 6));
        assert_eq!(h.membership(1, ring(1, 7), &[1], Undefined), reply(vec![], Ack));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![], Ack));
        assert_eq!(h.member(1).last_sent_ack_nack_vote, Some(Ack));
        assert_eq!(h.member(2).last_sent_ack_nack_vote, Some(Ack));
    }
}
