//! `2 Node LMS` decision algorithm (algorithms.md §5): for two-node clusters
//! only. A node that still sees its peer gets ACK; after a split the better
//! heuristics, then the tie-breaker decide; a lone connected node keeps the
//! vote ("last man standing"). Each node's answer is the reply to its own
//! membership list.
//!
//! Fixed, not copied: T's new heuristics are compared with the peer's
//! *stored* value (§2 data visibility) and the C code never takes an ACK back,
//! so if the peer's heuristics flip between its last report and the split,
//! both nodes are answered ACK — split brain. The decisions are still C's, but
//! every ACK goes through the exclusive grant step (`grant.rs`): while the
//! peer holds an ACK for a disjoint membership, T is answered WAIT_FOR_REPLY,
//! the peer gets VOTE_INFO NACK, and once the peer has acknowledged it T's
//! decision is re-run (on the now current data) and sent by VOTE_INFO. The
//! real client processes VOTE_INFO for this algorithm like any other
//! (qdevice-net-msg-received.c, qdevice-net-algo-2nodelms.c). When the peer
//! holds no such ACK — every observed trace in algorithms.md §5 and §9 — the
//! answers are exactly C's. A pending grant arms the (otherwise unused)
//! algorithm timer at heartbeat/4 as a retry.

use super::grant::{self, GrantClient, GrantState};
use super::{Ctx, DecisionAlgorithm, TimerOutcome};
use crate::cluster::ALGO_2NODELMS;
use crate::wire::{ErrorCode, Heuristics, NodeInfo, RingId, TieBreakerMode, Vote};

/// Per-client state.
#[derive(Debug, Default)]
pub struct TwoNodeLmsClient {
    /// Last stored decision (ACK or NACK; WAIT_FOR_REPLY while an ACK waits in
    /// the grant step); None for a newcomer.
    pub last_result: Option<Vote>,
    /// Entries of the last config list (recorded for diagnostics only).
    pub config_nodes: usize,
    /// Exclusive-grant bookkeeping (the split-brain fix, see module doc).
    pub grant: GrantState,
}

impl GrantClient for TwoNodeLmsClient {
    fn grant(&mut self) -> &mut GrantState {
        &mut self.grant
    }
    fn grant_ref(&self) -> &GrantState {
        &self.grant
    }
    fn store_result(&mut self, vote: Vote) {
        self.last_result = Some(vote);
    }
}

pub struct TwoNodeLms;

fn last_result(ctx: &Ctx, i: usize) -> Option<Vote> {
    ctx.cluster.members[i].algo_ref::<TwoNodeLmsClient>().and_then(|d| d.last_result)
}

fn store(ctx: &mut Ctx, t: usize, vote: Vote) -> Vote {
    ctx.cluster.members[t].algo_data::<TwoNodeLmsClient>().last_result = Some(vote);
    vote
}

/// §5 membership decision for `t` reporting `ring_id` with `n_nodes` entries
/// and heuristics `heuristics`, as if client `gone` (leaving) were not connected.
fn decide(
    ctx: &mut Ctx,
    t: usize,
    ring_id: RingId,
    n_nodes: usize,
    heuristics: Heuristics,
    gone: Option<usize>,
) -> Vote {
    let live = |i: usize| Some(i) != gone;
    // Newcomer rule: while another ring holds the vote, a node that never
    // had a stored result must not take it; the NACK is not stored so the
    // rule keeps applying until the rings agree.
    if last_result(ctx, t).is_none() {
        let other_ack = (0..ctx.cluster.members.len())
            .filter(|&i| live(i))
            .any(|i| ctx.cluster.members[i].ring_id != ring_id && last_result(ctx, i) == Some(Vote::Ack));
        if other_ack {
            return Vote::Nack;
        }
    }
    if n_nodes == 2 {
        return store(ctx, t, Vote::Ack);
    }
    let members = &ctx.cluster.members;
    let me = &members[t];
    let connected = || members.iter().enumerate().filter(|&(i, _)| live(i)).map(|(_, m)| m);
    let low = connected().map(|m| m.node_id).min().unwrap_or(me.node_id);
    let high = connected().map(|m| m.node_id).max().unwrap_or(me.node_id);
    // The peer's heuristics: the last other client in node-id order, as stored.
    let other_h = members
        .iter()
        .enumerate()
        .rev()
        .find(|&(i, _)| i != t && live(i))
        .map_or(Heuristics::Undefined, |(_, m)| m.heuristics);
    if connected().count() == 1 {
        return store(ctx, t, Vote::Ack);
    }
    if heuristics.rank() != other_h.rank() {
        let vote = if heuristics.rank() > other_h.rank() { Vote::Ack } else { Vote::Nack };
        return store(ctx, t, vote);
    }
    let wins = match me.tie_breaker.mode {
        TieBreakerMode::Lowest => me.node_id == low,
        TieBreakerMode::Highest => me.node_id == high,
        TieBreakerMode::NodeId => me.node_id == me.tie_breaker.node_id,
    };
    store(ctx, t, if wins { Vote::Ack } else { Vote::Nack })
}

/// A pending grant's re-run: the membership decision from `q`'s stored
/// record (ring, list, heuristics), `gone` leaving.
fn redecide(ctx: &mut Ctx, q: usize, gone: Option<usize>) -> Vote {
    let m = &ctx.cluster.members[q];
    let (ring, n, h) = (m.ring_id, m.membership.len(), m.heuristics);
    decide(ctx, q, ring, n, h, gone)
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
        grant::settle::<TwoNodeLmsClient>(ctx, Some(t), None, redecide);
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
        // A new decision supersedes a pending grant and its retry timer.
        ctx.cancel_timer(t);
        grant::observe_ring::<TwoNodeLmsClient>(ctx, t, ring_id);
        let vote = decide(ctx, t, ring_id, nodes.len(), heuristics, None);
        Ok(grant::reply::<TwoNodeLmsClient>(ctx, t, ring_id, nodes, vote, redecide))
    }

    fn quorum_node_list_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        _seq: u32,
        _quorate: bool,
        _nodes: &[NodeInfo],
    ) -> Result<Vote, ErrorCode> {
        grant::settle::<TwoNodeLmsClient>(ctx, Some(t), None, redecide);
        Ok(Vote::NoChange)
    }

    /// The stored decision, or ASK_LATER before the first one. A stored ACK
    /// is handed out again only through the grant step; a pending grant
    /// answers WAIT_FOR_REPLY (its stored value) and keeps waiting.
    fn ask_for_vote_received(&self, ctx: &mut Ctx, t: usize, _seq: u32) -> Result<Vote, ErrorCode> {
        match last_result(ctx, t) {
            Some(Vote::Ack) => {
                let m = &ctx.cluster.members[t];
                let (ring, nodes) = (m.ring_id, m.membership.clone());
                Ok(grant::reply::<TwoNodeLmsClient>(ctx, t, ring, &nodes, Vote::Ack, redecide))
            }
            stored => {
                grant::settle::<TwoNodeLmsClient>(ctx, Some(t), None, redecide);
                Ok(stored.unwrap_or(Vote::AskLater))
            }
        }
    }

    /// Not acted upon; the session still stores the new value, which the peer's
    /// next decision will read.
    fn heuristics_change_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        _seq: u32,
        _heuristics: Heuristics,
    ) -> Result<Vote, ErrorCode> {
        grant::settle::<TwoNodeLmsClient>(ctx, Some(t), None, redecide);
        Ok(Vote::NoChange)
    }

    /// Nothing in C; here it is how a revoked holder releases a pending grant.
    fn vote_info_reply_received(&self, ctx: &mut Ctx, t: usize, seq: u32) -> Result<(), ErrorCode> {
        grant::vote_info_reply::<TwoNodeLmsClient>(ctx, t, seq, redecide);
        Ok(())
    }

    /// Free in C; here a leaving holder releases the grants waiting for it.
    fn client_disconnect(&self, ctx: &mut Ctx, t: usize, server_going_down: bool) {
        grant::disconnect::<TwoNodeLmsClient>(ctx, t, server_going_down, redecide);
    }

    /// Only armed by a pending grant: re-decide and deliver by VOTE_INFO.
    fn timer_callback(&self, ctx: &mut Ctx, t: usize) -> TimerOutcome {
        if grant::is_pending::<TwoNodeLmsClient>(&ctx.cluster.members[t]) {
            let vote = redecide(ctx, t, None);
            grant::timer::<TwoNodeLmsClient>(ctx, t, vote, redecide);
        }
        TimerOutcome::default()
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

    /// node2's stored FAIL flips to PASS at the split. node1 decides first
    /// against the stale FAIL (tie → lowest → ACK); node2 then beats node1's
    /// FAIL. The seed 6840125608068907422, reduced.
    fn flip_until_node2_decides() -> Harness {
        let mut h = pair(lowest());
        assert_eq!(h.heuristics_change(2, Fail), reply(vec![], NoChange));
        assert_eq!(h.membership(1, ring(1, 7), &[1], Fail), reply(vec![], Ack));
        h
    }

    /// Changed from C (module doc; was `peer_heuristics_flip_can_give_both_ack`):
    /// C answered node2 ACK too, so both halves voted. Now node1 is sent
    /// VOTE_INFO NACK first and node2 waits; its ACK follows by VOTE_INFO
    /// only after node1 has acknowledged the NACK.
    #[test]
    fn peer_heuristics_flip_revokes_before_second_ack() {
        let mut h = flip_until_node2_decides();
        assert_eq!(h.membership(2, ring(2, 7), &[2], Pass), reply(vec![vi(1, 1, Nack, ring(1, 7))], WaitForReply));
        assert_eq!(stored(&h, 1), Some(Nack));
        assert_eq!(stored(&h, 2), Some(WaitForReply));
        assert_eq!(h.member(2).algo_timer, Some((h.now + 2_000, 2_000)), "retry timer");
        // while pending: asking gives the stored WAIT, and no second NACK
        assert_eq!(h.ask(2), reply(vec![], WaitForReply));
        assert_eq!(h.ask(1), reply(vec![], Nack));
        // stale replies (another seq, or from the waiting node) release nothing
        assert_eq!(h.vote_info_reply(1, 7), vec![]);
        assert_eq!(h.vote_info_reply(2, 1), vec![]);
        // node1 acknowledges → node2's decision re-run (PASS vs node1's FAIL) → ACK
        assert_eq!(h.vote_info_reply(1, 1), vec![vi(2, 1, Ack, ring(2, 7))]);
        assert_eq!(h.ask(2), reply(vec![], Ack));
        assert_eq!(h.ask(1), reply(vec![], Nack));
        // the retry timer is still armed but finds nothing pending
        assert_eq!(h.fire_timer(2).1, vec![]);
    }

    /// The holder disconnects instead of answering: node2 is alone → ACK.
    #[test]
    fn holder_disconnect_releases_grant() {
        let mut h = flip_until_node2_decides();
        h.membership(2, ring(2, 7), &[2], Pass);
        assert_eq!(h.disconnect(1, false), vec![vi(2, 1, Ack, ring(2, 7))]);
        assert_eq!(h.ask(2), reply(vec![], Ack));
    }

    /// The waiting node disconnects: nothing is sent, the holder stays revoked
    /// (it acknowledges later; its re-run then gives it the vote back as the
    /// last node standing).
    #[test]
    fn pending_node_disconnects() {
        let mut h = flip_until_node2_decides();
        h.membership(2, ring(2, 7), &[2], Pass);
        assert_eq!(h.disconnect(2, false), vec![]);
        assert_eq!(h.vote_info_reply(1, 1), vec![vi(1, 2, Ack, ring(1, 7))]);
    }

    /// The pending grant's timer fires before the holder answers: nothing
    /// new is sent, the grant stays pending with the timer re-armed.
    #[test]
    fn pending_grant_timer_retry() {
        let mut h = flip_until_node2_decides();
        h.membership(2, ring(2, 7), &[2], Pass);
        assert_eq!(h.fire_timer(2).1, vec![]);
        assert_eq!(h.member(2).algo_timer, Some((h.now + 2_000, 2_000)));
        assert_eq!(h.vote_info_reply(1, 1), vec![vi(2, 1, Ack, ring(2, 7))]);
    }

    /// The winner reports its split first while the peer still holds the ACK
    /// of their common ring: the lists overlap ({1} ⊂ {1,2}), so this is not
    /// two partitions and C's immediate ACK is kept (no VOTE_INFO).
    #[test]
    fn overlapping_holder_is_not_revoked() {
        let mut h = pair(lowest());
        assert_eq!(h.membership(1, ring(1, 7), &[1], Undefined), reply(vec![], Ack));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![], Nack));
    }

    /// A holder that reports a new ring gives its ACK up (the real client
    /// stops casting before it sends the list): no revocation needed.
    #[test]
    fn new_ring_ends_hold() {
        let mut h = flip_until_node2_decides();
        // node2's PASS arrives as a heuristics change; node1 then moves on to
        // a new ring and now loses against it
        assert_eq!(h.heuristics_change(2, Pass), reply(vec![], NoChange));
        assert_eq!(h.membership(1, ring(1, 8), &[1], Fail), reply(vec![], Nack));
        assert_eq!(h.membership(2, ring(2, 8), &[2], Pass), reply(vec![], Ack));
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
