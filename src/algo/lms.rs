//! `LMS` ("Last Man Standing") decision algorithm (algorithms.md §6).
//!
//! Every membership list, quorum list, ASK_FOR_VOTE and timer expiry runs
//! `decide`: wait (with the per-client timer at heartbeat/4) until every
//! client of "our partition" reports our ring id, group the connected clients
//! into partitions by stored ring id, and give the vote to the partition with
//! the best heuristics score, then the most nodes, then the tie-breaker node.
//!
//! `decide` reads client *records*, so on a membership event it sees the
//! trigger's old membership, ring and heuristics (§2, §6.4). Quirk decisions:
//! * §6.4 stale data kept: observed answers (e.g. the NACK to node2 when three
//!   nodes move to a new ring) are reproduced; the old lists make step 1 wait
//!   for the whole old membership, so stale data only ever withholds an ACK
//!   (fixed by the next quorum list), it never creates a second holder.
//! * §6.3 node-id tie-breaker kept: only the nominated node itself gets ACK,
//!   not the rest of its partition — fewer ACKs, never two partitions.
//! * §6.3 lowest tie-breaker start value kept: ids ≥ 2147483647 are never
//!   "lowest" — at most the node numbered exactly 2147483647 gets the tie, so
//!   still a single partition.
//!
//! Fixed, not copied: the C lms never takes an ACK back. A timer ACK decided
//! on stale data and a later ACK to the other side (or a heuristics change
//! moving the vote) leave two partitions holding it — with lms's N-1 qdevice
//! votes both are quorate: split brain. Every ACK here goes through the
//! exclusive grant step (`grant.rs`): a client whose membership is disjoint
//! from a current holder's is answered WAIT_FOR_REPLY, the holder gets
//! VOTE_INFO NACK, and the ACK follows by VOTE_INFO once the holder has
//! acknowledged it. Whenever no other partition holds an ACK (every observed
//! trace in algorithms.md §6 and §9), the answers are exactly C's.

use super::grant::{self, GrantClient, GrantState};
use super::{Ctx, DecisionAlgorithm, TimerOutcome};
use crate::cluster::{Member, Millis, ALGO_LMS};
use crate::wire::{ErrorCode, Heuristics, NodeInfo, RingId, TieBreakerMode, Vote};

/// Per-client state.
#[derive(Debug, Default)]
pub struct LmsClient {
    /// Last stored decision (ACK, NACK or WAIT_FOR_REPLY); None for a
    /// newcomer (never decided, or only got the unstored newcomer NACK).
    pub last_result: Option<Vote>,
    /// Entries of the last config list (recorded for diagnostics only).
    pub config_nodes: usize,
    /// Exclusive-grant bookkeeping (the split-brain fix, see module doc).
    pub grant: GrantState,
}

impl GrantClient for LmsClient {
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

pub struct Lms;

/// The C code starts its "lowest node id" search at the signed-int maximum.
const LOWEST_START: u32 = i32::MAX as u32;

fn last_result(m: &Member) -> Option<Vote> {
    m.algo_ref::<LmsClient>().and_then(|d| d.last_result)
}

fn store(ctx: &mut Ctx, t: usize, vote: Vote) -> Vote {
    ctx.cluster.members[t].algo_data::<LmsClient>().last_result = Some(vote);
    vote
}

/// Not enough known yet: retry from the timer at a quarter of the heartbeat
/// (a heartbeat below 4 ms gives interval 0, which cannot be armed).
fn wait(ctx: &mut Ctx, t: usize) -> Vote {
    let interval = Millis::from(ctx.cluster.members[t].heartbeat_interval / 4);
    ctx.arm_timer(t, interval);
    store(ctx, t, Vote::WaitForReply)
}

struct Partition {
    ring: RingId,
    nodes: u32,
    score: i64,
}

/// Index of the first partition with the maximal `key`, if no other
/// partition shares that value.
fn unique_best(parts: &[Partition], key: impl Fn(&Partition) -> i64) -> Option<usize> {
    let mut best = 0;
    for (i, p) in parts.iter().enumerate() {
        if key(p) > key(&parts[best]) {
            best = i;
        }
    }
    let top = key(&parts[best]);
    let ties = parts.iter().filter(|p| key(p) == top).count();
    (ties == 1).then_some(best)
}

/// §6.2 DECIDE for trigger `t` whose ring is taken to be `r`, as if client
/// `gone` (leaving, still listed) were not connected.
fn decide(ctx: &mut Ctx, t: usize, r: RingId, gone: Option<usize>) -> Vote {
    ctx.cancel_timer(t);
    let all = &ctx.cluster.members;
    let me = &all[t];
    // The connected clients in node-id order, the trigger included.
    let members: Vec<&Member> = all.iter().enumerate().filter(|&(i, _)| Some(i) != gone).map(|(_, m)| m).collect();

    // 1. everybody in our partition (by stored lists, either direction) must report r
    let behind = all.iter().enumerate().any(|(i, x)| {
        i != t
            && Some(i) != gone
            && (Member::list_contains(&me.membership, x.node_id) || Member::list_contains(&x.membership, me.node_id))
            && x.ring_id != r
    });
    if behind {
        return wait(ctx, t);
    }

    // 2. partitions by stored ring id, in order of first appearance
    let mut parts: Vec<Partition> = Vec::new();
    for x in members.iter().filter(|x| x.ring_id.seq != 0) {
        let i = match parts.iter().position(|p| p.ring == x.ring_id) {
            Some(i) => i,
            None => {
                parts.push(Partition { ring: x.ring_id, nodes: 0, score: 0 });
                parts.len() - 1
            }
        };
        let p = &mut parts[i];
        p.nodes += 1;
        p.score += match x.heuristics {
            Heuristics::Pass => 2,
            Heuristics::Undefined => 1,
            Heuristics::Fail => 0,
        };
    }
    if parts.is_empty() {
        return wait(ctx, t);
    }
    if parts.len() == 1 {
        // one partition: votequorum decides the rest, even if our own ring differs
        return store(ctx, t, Vote::Ack);
    }

    // 3. newcomer protection: never pull the vote away from a ring that holds it;
    //    the NACK is not stored so this keeps applying until the rings agree
    if last_result(me).is_none() && members.iter().any(|x| x.ring_id != r && last_result(x) == Some(Vote::Ack)) {
        return Vote::Nack;
    }

    let verdict = |ring: RingId| if ring == r { Vote::Ack } else { Vote::Nack };
    // 4. best score, 5. most nodes
    if let Some(b) = unique_best(&parts, |p| p.score) {
        return store(ctx, t, verdict(parts[b].ring));
    }
    if let Some(b) = unique_best(&parts, |p| i64::from(p.nodes)) {
        return store(ctx, t, verdict(parts[b].ring));
    }

    // 6. tie-breaker
    let (tb, tb_ring) = match me.tie_breaker.mode {
        TieBreakerMode::Lowest => {
            let mut found = (LOWEST_START, RingId::default());
            for x in &members {
                if x.node_id < found.0 {
                    found = (x.node_id, x.ring_id);
                }
            }
            found
        }
        TieBreakerMode::Highest => {
            let mut found = (0, RingId::default());
            for x in &members {
                if x.node_id > found.0 {
                    found = (x.node_id, x.ring_id);
                }
            }
            found
        }
        TieBreakerMode::NodeId => {
            // Kept from C (§6.3): the ring is only looked up when T is the
            // nominated node, so other members of its partition get NACK.
            let tb = me.tie_breaker.node_id;
            let ring = match members.last() {
                Some(last) if me.node_id == tb => last.ring_id,
                _ => RingId::default(),
            };
            (tb, ring)
        }
    };
    let vote = if me.node_id == tb || tb_ring == r { Vote::Ack } else { Vote::Nack };
    store(ctx, t, vote)
}

impl DecisionAlgorithm for Lms {
    fn number(&self) -> u16 {
        ALGO_LMS
    }

    fn name(&self) -> &'static str {
        "LMS"
    }

    fn client_init(&self, ctx: &mut Ctx, t: usize) -> Result<(), ErrorCode> {
        *ctx.cluster.members[t].algo_data::<LmsClient>() = LmsClient::default();
        Ok(())
    }

    /// Nothing to decide yet; the size is only recorded.
    fn config_node_list_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        _seq: u32,
        _config_version: Option<u64>,
        nodes: &[NodeInfo],
        _initial: bool,
    ) -> Result<Vote, ErrorCode> {
        ctx.cluster.members[t].algo_data::<LmsClient>().config_nodes = nodes.len();
        grant::settle::<LmsClient>(ctx, Some(t), None, redecide);
        Ok(Vote::NoChange)
    }

    /// Decides with the message's ring but T's *stored* lists/heuristics (§6.4).
    /// An ACK is for the new ring and membership, so that is what the grant
    /// step checks.
    fn membership_node_list_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        _seq: u32,
        ring_id: RingId,
        nodes: &[NodeInfo],
        _heuristics: Heuristics,
    ) -> Result<Vote, ErrorCode> {
        grant::observe_ring::<LmsClient>(ctx, t, ring_id);
        let vote = decide(ctx, t, ring_id, None);
        Ok(grant::reply::<LmsClient>(ctx, t, ring_id, nodes, vote, redecide))
    }

    fn quorum_node_list_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        _seq: u32,
        _quorate: bool,
        _nodes: &[NodeInfo],
    ) -> Result<Vote, ErrorCode> {
        Ok(decide_stored(ctx, t))
    }

    fn ask_for_vote_received(&self, ctx: &mut Ctx, t: usize, _seq: u32) -> Result<Vote, ErrorCode> {
        Ok(decide_stored(ctx, t))
    }

    /// Not supported by lms (the session still stores the value, which later
    /// decisions read as the client's heuristics).
    fn heuristics_change_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        _seq: u32,
        _heuristics: Heuristics,
    ) -> Result<Vote, ErrorCode> {
        grant::settle::<LmsClient>(ctx, Some(t), None, redecide);
        Ok(Vote::NoChange)
    }

    /// Nothing in C; here it is how a revoked holder releases a pending grant.
    fn vote_info_reply_received(&self, ctx: &mut Ctx, t: usize, seq: u32) -> Result<(), ErrorCode> {
        grant::vote_info_reply::<LmsClient>(ctx, t, seq, redecide);
        Ok(())
    }

    /// Free in C; here a leaving holder releases the grants waiting for it.
    fn client_disconnect(&self, ctx: &mut Ctx, t: usize, server_going_down: bool) {
        grant::disconnect::<LmsClient>(ctx, t, server_going_down, redecide);
    }

    /// §6.5: a decision is sent as VOTE_INFO(++timer_vote_seq, vote, ring) — by
    /// the grant layer here, so that an ACK can wait for other partitions'
    /// holders; while still waiting, `decide` has already re-armed the timer
    /// at heartbeat/4 and `reschedule` says so too (the session must keep that
    /// one timer, not add a second). A pending grant re-decides here as well.
    fn timer_callback(&self, ctx: &mut Ctx, t: usize) -> TimerOutcome {
        let ring = ctx.cluster.members[t].ring_id;
        let vote = decide(ctx, t, ring, None);
        grant::timer::<LmsClient>(ctx, t, vote, redecide);
        TimerOutcome { reschedule: vote == Vote::WaitForReply, ..TimerOutcome::default() }
    }
}

/// DECIDE with T's stored ring (quorum list, ASK_FOR_VOTE), through the grant step.
fn decide_stored(ctx: &mut Ctx, t: usize) -> Vote {
    let m = &ctx.cluster.members[t];
    let (ring, nodes) = (m.ring_id, m.membership.clone());
    let vote = decide(ctx, t, ring, None);
    grant::reply::<LmsClient>(ctx, t, ring, &nodes, vote, redecide)
}

/// A pending grant's re-run: DECIDE from `q`'s stored record, `gone` leaving.
fn redecide(ctx: &mut Ctx, q: usize, gone: Option<usize>) -> Vote {
    let ring = ctx.cluster.members[q].ring_id;
    decide(ctx, q, ring, gone)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::LmsClient;
    use crate::cluster::ALGO_LMS;
    use crate::wire::{RingId, TieBreaker, Vote};

    fn stored(h: &Harness, node: u32) -> Option<Vote> {
        h.member(node).algo_ref::<LmsClient>().and_then(|d| d.last_result)
    }

    /// Clients `ids` connected with INIT ring (ids[0], 5), config sent,
    /// membership `ids` at ring (ids[0], 6), quorum lists → ACK everywhere.
    fn together(ids: &[u32], tb: TieBreaker) -> Harness {
        let mut h = Harness::new(ALGO_LMS);
        h.tie_breaker = tb;
        let r0 = ring(ids[0], 5);
        let r1 = ring(ids[0], 6);
        for &id in ids {
            h.add(id, r0);
        }
        for &id in ids {
            assert_eq!(h.config(id, ids, true), reply(vec![], NoChange));
        }
        for &id in ids {
            h.membership(id, r1, ids, Undefined);
        }
        for &id in ids {
            assert_eq!(h.quorum(id, ids), reply(vec![], Ack));
        }
        h
    }

    /// Every node of `parts` sends its new membership list; all must wait.
    fn split(h: &mut Harness, parts: &[(&[u32], RingId)]) {
        for &(ids, r) in parts {
            for &id in ids {
                assert_eq!(h.membership(id, r, ids, Undefined), reply(vec![], WaitForReply), "node {id}");
            }
        }
    }

    /// §3 column lms.
    #[test]
    fn table_entries() {
        let mut h = Harness::new(ALGO_LMS);
        h.add(1, ring(1, 5));
        assert_eq!(h.config(1, &[1, 2, 3], true), reply(vec![], NoChange));
        assert_eq!(h.config(1, &[1, 2], false), reply(vec![], NoChange));
        assert_eq!(h.heuristics_change(1, Pass), reply(vec![], NoChange));
        assert_eq!(h.vote_info_reply(1, 1), vec![]);
        // alone: one partition → ACK on every deciding event
        assert_eq!(h.membership(1, ring(1, 6), &[1], Undefined), reply(vec![], Ack));
        assert_eq!(h.quorum(1, &[1]), reply(vec![], Ack));
        assert_eq!(h.ask(1), reply(vec![], Ack));
        assert_eq!(h.member(1).algo_timer, None);
        assert_eq!(h.disconnect(1, false), vec![]);
    }

    /// §6.4 [observed]: 3 nodes move from INIT ring 1.5 to ring 1.6.
    #[test]
    fn stale_data_on_first_membership() {
        let mut h = Harness::new(ALGO_LMS);
        for id in [1, 2, 3] {
            h.add(id, ring(1, 5));
        }
        let all = [1, 2, 3];
        // node1: everybody stored at 1.5 → one partition → ACK
        assert_eq!(h.membership(1, ring(1, 6), &all, Undefined), reply(vec![], Ack));
        // node2: 1.6 = {node1} score 1, 1.5 = {node2 (stale), node3} score 2 → NACK
        assert_eq!(h.membership(2, ring(1, 6), &all, Undefined), reply(vec![], Nack));
        assert_eq!(stored(&h, 2), Some(Nack));
        // node3: 1.6 = {1,2} score 2 > 1.5 = {3} → ACK
        assert_eq!(h.membership(3, ring(1, 6), &all, Undefined), reply(vec![], Ack));
        for id in all {
            assert_eq!(h.quorum(id, &all), reply(vec![], Ack));
        }
    }

    /// §6.5 / §9.3 [observed]: 3 nodes, 2|1 split; memberships wait, node3's
    /// quorum list gets NACK directly, the timers of 1 and 2 send VI(1, ACK).
    #[test]
    fn two_one_split_with_timers() {
        let mut h = together(&[1, 2, 3], lowest());
        let t0 = h.now;
        split(&mut h, &[(&[1, 2], ring(1, 7)), (&[3], ring(3, 7))]);
        for id in [1, 2, 3] {
            assert_eq!(h.member(id).algo_timer, Some((t0 + 2_000, 2_000)), "node {id}");
            assert_eq!(stored(&h, id), Some(WaitForReply));
        }
        assert_eq!(h.quorum(3, &[3]), reply(vec![], Nack));
        assert_eq!(h.member(3).algo_timer, None, "a message-driven decision cancels the timer");

        let (out, sent) = h.fire_timer(1);
        assert_eq!(h.now, t0 + 2_000);
        assert_eq!((out.error, out.reschedule, out.send_vote), (None, false, None), "sent by the grant layer");
        assert_eq!(sent, vec![vi(1, 1, Ack, ring(1, 7))]);
        assert_eq!(h.member(1).algo_timer, None, "timer stops after a decision");
        let (_, sent) = h.fire_timer(2);
        assert_eq!(sent, vec![vi(2, 1, Ack, ring(1, 7))]);
        assert_eq!(h.member(2).last_sent_vote, Some(Ack));

        assert_eq!(h.quorum(1, &[1, 2]), reply(vec![], Ack));
        assert_eq!(h.quorum(2, &[1, 2]), reply(vec![], Ack));
        assert_eq!(h.ask(3), reply(vec![], Nack));
    }

    /// A timer firing while the partition is still inconsistent re-arms, sends nothing.
    #[test]
    fn timer_keeps_waiting() {
        let mut h = together(&[1, 2, 3], lowest());
        assert_eq!(h.membership(1, ring(1, 7), &[1, 2], Undefined), reply(vec![], WaitForReply));
        let (out, sent) = h.fire_timer(1);
        assert_eq!((out.reschedule, out.send_vote, sent), (true, None, vec![]));
        assert_eq!(h.member(1).algo_timer, Some((h.now + 2_000, 2_000)));
        assert_eq!(h.member(1).timer_vote_seq, 0);
        // a message-driven decision supersedes it
        assert_eq!(h.membership(2, ring(1, 7), &[1, 2], Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(3, ring(3, 7), &[3], Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.quorum(1, &[1, 2]), reply(vec![], Ack));
        assert_eq!(h.member(1).algo_timer, None);
    }

    /// §9.3 lms: 4 nodes, 3|1 → nodes 1–3 ACK, node 4 NACK at their own decisions.
    #[test]
    fn example_9_3_three_one_split() {
        let mut h = together(&[1, 2, 3, 4], lowest());
        split(&mut h, &[(&[1, 2, 3], ring(1, 9)), (&[4], ring(4, 9))]);
        assert_eq!(h.quorum(4, &[4]), reply(vec![], Nack));
        assert_eq!(h.quorum(1, &[1, 2, 3]), reply(vec![], Ack));
        assert_eq!(h.quorum(2, &[1, 2, 3]), reply(vec![], Ack));
        // node3 decides from its timer instead
        let (_, sent) = h.fire_timer(3);
        assert_eq!(sent, vec![vi(3, 1, Ack, ring(1, 9))]);
    }

    /// Step 4 (score) beats size: {1,2} both FAIL (0) < {3} undefined (1).
    /// Step 5 (size) breaks a score tie: {1 FAIL, 2 PASS} = 2 = {3 PASS}, 2 nodes > 1.
    #[test]
    fn score_then_size() {
        let mut h = together(&[1, 2, 3], highest());
        for id in [1, 2] {
            h.membership(id, ring(1, 7), &[1, 2], Fail);
        }
        h.membership(3, ring(3, 7), &[3], Undefined);
        assert_eq!(h.quorum(1, &[1, 2]), reply(vec![], Nack));
        assert_eq!(h.quorum(3, &[3]), reply(vec![], Ack));

        let mut h = together(&[1, 2, 3], highest());
        h.membership(1, ring(1, 7), &[1, 2], Fail);
        h.membership(2, ring(1, 7), &[1, 2], Pass);
        h.membership(3, ring(3, 7), &[3], Pass);
        assert_eq!(h.quorum(3, &[3]), reply(vec![], Nack));
        assert_eq!(h.quorum(1, &[1, 2]), reply(vec![], Ack));
        assert_eq!(h.quorum(2, &[1, 2]), reply(vec![], Ack));
    }

    fn two_two(tb: TieBreaker) -> Vec<Vote> {
        let mut h = together(&[1, 2, 3, 4], tb);
        split(&mut h, &[(&[1, 2], ring(1, 7)), (&[3, 4], ring(3, 7))]);
        [(1, [1, 2]), (2, [1, 2]), (3, [3, 4]), (4, [3, 4])]
            .iter()
            .map(|(id, q)| h.quorum(*id, q).vote.expect("no error"))
            .collect()
    }

    /// §6.3: lowest/highest → everyone in the tie-breaker node's ring gets ACK.
    #[test]
    fn tie_breaker_lowest_and_highest() {
        assert_eq!(two_two(lowest()), vec![Ack, Ack, Nack, Nack]);
        assert_eq!(two_two(highest()), vec![Nack, Nack, Ack, Ack]);
    }

    /// §6.3 kept: node-id mode gives ACK only to the nominated node itself.
    #[test]
    fn tie_breaker_node_id_only_nominated_node() {
        assert_eq!(two_two(nominated(2)), vec![Nack, Ack, Nack, Nack]);
        assert_eq!(two_two(nominated(9)), vec![Nack, Nack, Nack, Nack]);
    }

    /// 2|2 split decided for {1,2}; node1 holds ACK for 1.7.
    fn two_two_node1_holds() -> Harness {
        let mut h = together(&[1, 2, 3, 4], lowest());
        split(&mut h, &[(&[1, 2], ring(1, 7)), (&[3, 4], ring(3, 7))]);
        assert_eq!(h.quorum(1, &[1, 2]), reply(vec![], Ack));
        assert_eq!(h.quorum(3, &[3, 4]), reply(vec![], Nack));
        h
    }

    /// Changed from C (module doc; was `ack_is_never_revoked`): after a 2|2
    /// split decided for {1,2}, node3's heuristics turn PASS and its next
    /// decision moves the vote to {3,4}. C answered node3 ACK while node1
    /// kept its ACK — two disjoint partitions voting. Now node1 is sent
    /// VOTE_INFO NACK first, node3 waits, and gets its ACK by VOTE_INFO only
    /// once node1 has acknowledged the NACK.
    #[test]
    fn moving_ack_is_revoked_first() {
        let mut h = two_two_node1_holds();
        assert_eq!(h.heuristics_change(3, Pass), reply(vec![], NoChange));
        assert_eq!(h.ask(3), reply(vec![vi(1, 1, Nack, ring(1, 7))], WaitForReply));
        assert_eq!(stored(&h, 1), Some(Nack));
        assert_eq!(stored(&h, 3), Some(WaitForReply));
        assert_eq!(h.member(3).algo_timer, Some((h.now + 2_000, 2_000)), "retry timer");
        // node2 decides meanwhile: NACK, as in C (its reply is not an ACK)
        assert_eq!(h.quorum(2, &[1, 2]), reply(vec![], Nack));
        // asking again while pending: no second NACK to node1
        assert_eq!(h.ask(3), reply(vec![], WaitForReply));
        // node1 acknowledges → node3's decision is re-run and sent
        assert_eq!(h.vote_info_reply(1, 1), vec![vi(3, 1, Ack, ring(3, 7))]);
        assert_eq!(h.member(3).last_sent_vote, Some(Ack));
        assert_eq!(stored(&h, 3), Some(Ack));
        assert_eq!(h.ask(3), reply(vec![], Ack));
        // node1 asking now is NACK (the vote is with {3,4}), nothing revoked
        assert_eq!(h.ask(1), reply(vec![], Nack));
    }

    /// A reply to another VOTE_INFO of the holder (older seq) does not count
    /// as acknowledging the revoking NACK.
    #[test]
    fn stale_reply_does_not_release() {
        let mut h = two_two_node1_holds();
        h.heuristics_change(3, Pass);
        assert_eq!(h.ask(3), reply(vec![vi(1, 1, Nack, ring(1, 7))], WaitForReply));
        assert_eq!(h.vote_info_reply(1, 0), vec![]);
        assert_eq!(h.vote_info_reply(3, 1), vec![], "the pending client's own replies release nothing");
        assert_eq!(h.member(3).last_sent_vote, Some(WaitForReply));
        assert_eq!(h.vote_info_reply(1, 1), vec![vi(3, 1, Ack, ring(3, 7))]);
    }

    /// A holder that disconnects releases the grant waiting for it; the
    /// re-run decision no longer counts the leaving client.
    #[test]
    fn holder_disconnect_releases_grant() {
        let mut h = two_two_node1_holds();
        h.heuristics_change(3, Pass);
        assert_eq!(h.ask(3), reply(vec![vi(1, 1, Nack, ring(1, 7))], WaitForReply));
        assert_eq!(h.disconnect(1, false), vec![vi(3, 1, Ack, ring(3, 7))]);
    }

    /// Server shutdown sends nothing.
    #[test]
    fn shutdown_sends_nothing() {
        let mut h = two_two_node1_holds();
        h.heuristics_change(3, Pass);
        h.ask(3);
        assert_eq!(h.disconnect(1, true), vec![]);
    }

    /// The data changes while the grant waits: node3's heuristics go back to
    /// FAIL, so the re-run says NACK. node1 was revoked for nothing and gets
    /// its decision re-run too (→ ACK): the cluster is not left without a vote.
    #[test]
    fn rerun_may_decide_nack_and_revoked_holder_gets_vote_back() {
        let mut h = two_two_node1_holds();
        h.heuristics_change(3, Pass);
        assert_eq!(h.ask(3), reply(vec![vi(1, 1, Nack, ring(1, 7))], WaitForReply));
        assert_eq!(h.heuristics_change(3, Fail), reply(vec![], NoChange));
        assert_eq!(h.vote_info_reply(1, 1), vec![vi(3, 1, Nack, ring(3, 7)), vi(1, 2, Ack, ring(1, 7))]);
        assert_eq!((stored(&h, 1), stored(&h, 3)), (Some(Ack), Some(Nack)));
    }

    /// A new decision of the pending client supersedes its grant: node3
    /// reports ring 3.8 before node1 answers and waits for node4 (C's step 1).
    /// node1's acknowledgement then releases nothing for node3; instead node1,
    /// revoked for a grant that no longer exists, has its decision re-run:
    /// 1.7 {1,2} score 2 = 3.8 {3 PASS} score 2 > 3.7 {4}; size 2 wins → ACK.
    #[test]
    fn new_decision_supersedes_pending_grant() {
        let mut h = two_two_node1_holds();
        h.heuristics_change(3, Pass);
        h.ask(3);
        assert_eq!(h.membership(3, ring(3, 8), &[3, 4], Pass), reply(vec![], WaitForReply));
        assert_eq!(stored(&h, 3), Some(WaitForReply));
        assert_eq!(h.member(3).algo_timer, Some((h.now + 2_000, 2_000)), "C's step-1 wait timer");
        assert_eq!(h.vote_info_reply(1, 1), vec![vi(1, 2, Ack, ring(1, 7))]);
        assert_eq!(h.member(3).last_sent_vote, Some(WaitForReply));
    }

    /// Pending grant retried by its timer while the holder has not answered:
    /// no second NACK, still pending, timer re-armed; the answer then releases.
    #[test]
    fn pending_grant_timer_retry() {
        let mut h = two_two_node1_holds();
        h.heuristics_change(3, Pass);
        h.ask(3);
        let (out, vis) = h.fire_timer(3);
        assert_eq!((out.reschedule, out.send_vote, vis), (false, None, vec![]));
        assert_eq!(h.member(3).algo_timer, Some((h.now + 2_000, 2_000)));
        assert_eq!(h.vote_info_reply(1, 1), vec![vi(3, 1, Ack, ring(3, 7))]);
    }

    /// The seed of the issue (tests/safety.rs, 6840126707580535042), reduced:
    /// 3 nodes, node3 isolated with PASS gets a timer ACK on stale data; then
    /// {1,2} converge and node2's decision is ACK. C kept node3's ACK (N-1
    /// votes: both sides quorate). Now node3 is revoked before node2's ACK.
    #[test]
    fn stale_timer_ack_is_revoked_before_other_side_gets_ack() {
        let mut h = together(&[1, 2, 3], lowest());
        // Everybody waits at first: 1 and 2 still list node3 with ring 1.6.
        assert_eq!(h.membership(3, ring(3, 8), &[3], Pass), reply(vec![], WaitForReply));
        assert_eq!(h.membership(1, ring(1, 8), &[1, 2], Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(2, ring(1, 8), &[1, 2], Undefined), reply(vec![], WaitForReply));
        // node1's heuristics FAIL: 3.8 {3 PASS} score 2 > 1.8 {1 FAIL, 2} score 1,
        // so node3's timer sends ACK.
        h.heuristics_change(1, Fail);
        let (_, vis) = h.fire_timer(3);
        assert_eq!(vis, vec![vi(3, 1, Ack, ring(3, 8))]);
        // node1 back to PASS: {1,2} = 3 > 2 → node2's quorum list decides ACK
        h.heuristics_change(1, Pass);
        assert_eq!(h.quorum(2, &[1, 2]), reply(vec![vi(3, 2, Nack, ring(3, 8))], WaitForReply));
        assert_eq!(h.vote_info_reply(3, 2), vec![vi(2, 1, Ack, ring(1, 8))]);
    }

    /// §6.3 kept: the lowest search starts at 2147483647, so larger ids are
    /// never "lowest"; the node numbered exactly 2147483647 wins by identity.
    #[test]
    fn tie_breaker_lowest_ignores_ids_from_int_max() {
        let (a, b) = (2_147_483_647, 2_147_483_648);
        let mut h = together(&[a, b], lowest());
        split(&mut h, &[(&[a], ring(a, 7)), (&[b], ring(b, 7))]);
        assert_eq!(h.quorum(a, &[a]), reply(vec![], Ack));
        assert_eq!(h.quorum(b, &[b]), reply(vec![], Nack));

        let (a, b) = (2_147_483_648, 2_147_483_649);
        let mut h = together(&[a, b], lowest());
        split(&mut h, &[(&[a], ring(a, 7)), (&[b], ring(b, 7))]);
        assert_eq!(h.quorum(a, &[a]), reply(vec![], Nack));
        assert_eq!(h.quorum(b, &[b]), reply(vec![], Nack));
    }

    /// No client has an initialised ring (seq 0) → wait with the timer; the
    /// timer's decision then uses the stored ring.
    #[test]
    fn no_partition_waits() {
        let mut h = Harness::new(ALGO_LMS);
        h.add(1, ring(1, 0));
        assert_eq!(h.membership(1, ring(1, 1), &[1], Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.member(1).algo_timer, Some((h.now + 2_000, 2_000)));
        let (out, sent) = h.fire_timer(1);
        assert!(!out.reschedule);
        assert_eq!(sent, vec![vi(1, 1, Ack, ring(1, 1))]);
    }

    /// A heartbeat below 4 ms gives interval 0: the timer is never armed.
    #[test]
    fn tiny_heartbeat_never_arms_timer() {
        let mut h = Harness::new(ALGO_LMS);
        h.heartbeat = 3;
        h.add(1, ring(1, 0));
        assert_eq!(h.membership(1, ring(1, 1), &[1], Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.member(1).algo_timer, None);
    }

    /// §9.4 newcomer rule, merge reported by node1 first.
    #[test]
    fn example_9_4_newcomer_rule() {
        let mut h = Harness::new(ALGO_LMS);
        h.add(1, ring(1, 7));
        assert_eq!(h.membership(1, ring(1, 7), &[1], Undefined), reply(vec![], Ack));
        h.add(2, ring(2, 7));
        assert_eq!(h.config(2, &[1, 2], true), reply(vec![], NoChange));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![], Nack));
        assert_eq!(stored(&h, 2), None, "newcomer NACK is not stored");
        assert_eq!(h.quorum(2, &[2]), reply(vec![], Nack));
        assert_eq!(h.ask(2), reply(vec![], Nack));
        assert_eq!(stored(&h, 2), None);
        // merge: node1 first. Stale rings 1.7 / 2.7 tie → lowest = node1 itself
        assert_eq!(h.membership(1, ring(1, 8), &[1, 2], Undefined), reply(vec![], Ack));
        // node2: node1 already at 1.8 → no newcomer NACK; tie → lowest's ring 1.8 = R
        assert_eq!(h.membership(2, ring(1, 8), &[1, 2], Undefined), reply(vec![], Ack));
        assert_eq!(h.quorum(1, &[1, 2]), reply(vec![], Ack));
        assert_eq!(h.quorum(2, &[1, 2]), reply(vec![], Ack));
    }

    /// §9.4 newcomer rule, merge reported by node2 first: still NACK until
    /// node1 reports the common ring.
    #[test]
    fn example_9_4_newcomer_rule_newcomer_reports_merge_first() {
        let mut h = Harness::new(ALGO_LMS);
        h.add(1, ring(1, 7));
        h.membership(1, ring(1, 7), &[1], Undefined);
        h.add(2, ring(2, 7));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![], Nack));
        assert_eq!(h.membership(2, ring(1, 8), &[1, 2], Undefined), reply(vec![], Nack));
        assert_eq!(h.membership(1, ring(1, 8), &[1, 2], Undefined), reply(vec![], Ack));
        assert_eq!(h.quorum(2, &[1, 2]), reply(vec![], Ack));
        assert_eq!(stored(&h, 2), Some(Ack));
    }
}
