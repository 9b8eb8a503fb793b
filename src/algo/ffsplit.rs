//! `Fifty-Fifty split` (ffsplit) decision algorithm (algorithms.md §4).
//!
//! Every event that may change who should hold the vote runs `run`: wait
//! until all connected clients report a consistent view (`stable`), choose
//! the winning partition (`select`), then deliver in two phases: NACK to
//! every loser first and, only once every NACK has been acknowledged by a
//! VOTE_INFO_REPLY, ACK to the winners. That ordering is what keeps two
//! partitions from holding the vote at the same time.
//!
//! Quirk decisions (algorithms.md §4.8); each is also noted where it lives:
//! * F1 kept: T's stored heuristics count in other candidates' scores — only
//!   the winner's identity changes (never two ACK holders) and clients observe it.
//! * F2 kept: a leaving client still counts as connected in STATS and KAP — same
//!   reason; observed behaviour (§9.2, §9.4).
//! * F3 kept: each candidate is judged against its own config list — STABLE
//!   already forces equal config sets, so only duplicate entries make it differ.
//! * F4 kept: duplicate node ids count twice — harmless, one winner per run.
//! * F5 not here: queueing failures are the session's business.
//! * F6 fixed: a reply to a VOTE_INFO of an earlier round no longer cancels a
//!   pending ACK of the current round (the C race can leave the whole cluster
//!   without a vote); timing-dependent, so no client can rely on it.
//! * F7 kept: an unstable run stops the ACK phase until the next stable run —
//!   the conservative direction, never an extra ACK.
//! * F8 kept: a config change is stable only once every client reported it —
//!   also conservative.

use super::{Ctx, DecisionAlgorithm};
use crate::cluster::{Member, ALGO_FFSPLIT};
use crate::wire::{ErrorCode, Heuristics, NodeInfo, RingId, TieBreakerMode, Vote};

/// Cluster-wide delivery phase (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterState {
    #[default]
    WaitingForChange,
    WaitingForStableMembership,
    SendingNacks,
    SendingAcks,
}

/// Per-cluster state: delivery phase and the last selected winning partition
/// (used by the keep-active-partition tie-breaker).
#[derive(Debug, Default)]
pub struct FfsplitCluster {
    pub state: ClusterState,
    /// Node ids of the membership list selected by the last stable run (empty if none won).
    pub previous_quorate: Vec<u32>,
}

/// What the current round still owes a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientState {
    #[default]
    WaitingForChange,
    SendingNack,
    SendingAck,
}

#[derive(Debug, Default)]
pub struct FfsplitClient {
    pub state: ClientState,
    /// Seq of the last VOTE_INFO sent to this client; a VOTE_INFO_REPLY must echo it.
    pub vote_seq: u32,
    /// Whether this round's VOTE_INFO has actually been sent (F6 fix: a reply
    /// matching `vote_seq` before that answers an earlier round).
    sent_this_round: bool,
}

pub struct Ffsplit;

fn client_state(m: &Member) -> ClientState {
    m.algo_ref::<FfsplitClient>().map(|d| d.state).unwrap_or_default()
}

fn contains(list: &[NodeInfo], node_id: u32) -> bool {
    Member::list_contains(list, node_id)
}

/// The trigger of a run and the values that stand in for its (not yet
/// updated) record.
struct Trigger<'a> {
    t: usize,
    leaving: bool,
    ring: RingId,
    config: &'a [NodeInfo],
    membership: &'a [NodeInfo],
    heuristics: Heuristics,
}

/// One client's view: (config, membership, ring); the trigger's comes from
/// the run's arguments, everybody else's from their records.
struct View<'a> {
    config: &'a [NodeInfo],
    membership: &'a [NodeInfo],
    ring: RingId,
}

impl<'a> Trigger<'a> {
    fn view(&self, members: &'a [Member], i: usize) -> View<'a> {
        if i == self.t {
            View { config: self.config, membership: self.membership, ring: self.ring }
        } else {
            let m = &members[i];
            View { config: &m.config, membership: &m.membership, ring: m.ring_id }
        }
    }

    /// Whether client `i` takes part in this run (a leaving trigger does not).
    fn participates(&self, i: usize) -> bool {
        !(self.leaving && i == self.t)
    }
}

/// §4.4: every participant has the same configured node set, and everyone
/// inside a connected client's membership agrees on ring id and members.
/// Clients not connected to qnetd are ignored; an empty config (not sent yet)
/// makes the cluster unstable.
fn stable(members: &[Member], tr: &Trigger) -> bool {
    let n = members.len();
    for x in (0..n).filter(|&x| tr.participates(x)) {
        let cx = tr.view(members, x).config;
        for y in (0..n).filter(|&y| y != x && tr.participates(y)) {
            let cy = tr.view(members, y).config;
            if cx.iter().any(|node| !contains(cy, node.node_id)) {
                return false;
            }
        }
    }
    for x in (0..n).filter(|&x| tr.participates(x)) {
        let vx = tr.view(members, x);
        for node in vx.membership {
            let Some(y) = members.iter().position(|m| m.node_id == node.node_id) else { continue };
            if !tr.participates(y) {
                continue;
            }
            let vy = tr.view(members, y);
            if vx.ring != vy.ring {
                return false;
            }
            if vx.membership.iter().any(|k| !contains(vy.membership, k.node_id)) {
                return false;
            }
        }
    }
    true
}

/// A candidate partition: a client and the lists it reports.
struct Candidate<'a> {
    idx: usize,
    config: &'a [NodeInfo],
    membership: &'a [NodeInfo],
    heuristics: Heuristics,
}

/// §4.5 STATS: (connected nodes, heuristics pass, heuristics fail) of a partition.
/// F1 kept: a node other than the candidate itself counts with its *stored*
/// heuristics, even when it is the trigger carrying a new value — this only
/// changes which single partition wins, and clients observe exactly that.
/// F2 kept: a leaving trigger is still a member here and counts as connected.
/// F4 kept: a node listed twice counts twice.
fn stats(members: &[Member], cand: usize, membership: &[NodeInfo], h: Heuristics) -> (i64, i64, i64) {
    let (mut act, mut pass, mut fail) = (0, 0, 0);
    for node in membership {
        let Some(k) = members.iter().position(|m| m.node_id == node.node_id) else { continue };
        act += 1;
        let hk = if k == cand { h } else { members[k].heuristics };
        match hk {
            Heuristics::Pass => pass += 1,
            Heuristics::Fail => fail += 1,
            Heuristics::Undefined => {}
        }
    }
    (act, pass, fail)
}

/// §4.5 PREFERRED: the tie-breaker node id for candidate `m` with config `config`.
/// The C code dereferences the first entry of an empty config list here; an
/// empty config (only possible for a client that never sent one) has no
/// preferred node instead.
fn preferred(m: &Member, config: &[NodeInfo]) -> Option<u32> {
    match m.tie_breaker.mode {
        TieBreakerMode::Lowest => config.iter().map(|n| n.node_id).min(),
        TieBreakerMode::Highest => config.iter().map(|n| n.node_id).max(),
        TieBreakerMode::NodeId => Some(m.tie_breaker.node_id),
    }
}

/// §4.5 BETTER: is candidate `a` better than the best so far `b`?
/// F3 kept: majority is judged against `a`'s own config list; STABLE already
/// requires equal config *sets*, so only duplicated entries can make it differ.
fn better(members: &[Member], a: &Candidate, b: Option<&Candidate>, kap: bool, previous_quorate: &[u32]) -> bool {
    let n = a.config.len();
    let half = n / 2;
    let m = a.membership.len();
    if n % 2 == 1 {
        return m > half;
    }
    if m != half {
        return m > half;
    }
    let (act_a, pass_a, fail_a) = stats(members, a.idx, a.membership, a.heuristics);
    let (act_b, pass_b, fail_b) = b.map_or((0, 0, 0), |b| stats(members, b.idx, b.membership, b.heuristics));
    let score_a = act_a + pass_a - fail_a;
    let score_b = act_b + pass_b - fail_b;
    if score_a != score_b {
        return score_a > score_b;
    }
    if act_a != act_b {
        return act_a > act_b;
    }
    if let (true, Some(b)) = (kap, b) {
        let in_a = previous_quorate.contains(&members[a.idx].node_id);
        let in_b = previous_quorate.contains(&members[b.idx].node_id);
        if in_a != in_b {
            return in_a;
        }
    }
    preferred(&members[a.idx], a.config).is_some_and(|p| contains(a.membership, p))
}

/// §4.5 SELECT: node ids of the winning membership list, or None if no
/// partition may become quorate.
fn select(members: &[Member], tr: &Trigger, previous_quorate: &[u32]) -> Option<Vec<u32>> {
    // F2 kept: KAP requires every client, the leaving trigger included.
    let kap = members.iter().all(|m| m.kap);
    let mut best: Option<Candidate> = None;
    for (i, m) in members.iter().enumerate() {
        let cand = if i == tr.t {
            if tr.leaving {
                continue;
            }
            Candidate { idx: i, config: tr.config, membership: tr.membership, heuristics: tr.heuristics }
        } else {
            Candidate { idx: i, config: &m.config, membership: &m.membership, heuristics: m.heuristics }
        };
        if better(members, &cand, best.as_ref(), kap, previous_quorate) {
            best = Some(cand);
        }
    }
    best.map(|b| b.membership.iter().map(|n| n.node_id).collect())
}

/// §4.3 SEND: queue `kind` to every participant whose state asks for it.
/// Returns how many were queued.
fn send(ctx: &mut Ctx, t: usize, leaving: bool, ring: RingId, kind: Vote) -> usize {
    let want = if kind == Vote::Nack { ClientState::SendingNack } else { ClientState::SendingAck };
    let mut sent = 0;
    for i in 0..ctx.cluster.members.len() {
        if leaving && i == t {
            continue;
        }
        let m = &mut ctx.cluster.members[i];
        let ring_to_send = if i == t { ring } else { m.ring_id };
        let d = m.algo_data::<FfsplitClient>();
        if d.state != want {
            continue;
        }
        d.vote_seq = d.vote_seq.wrapping_add(1);
        d.sent_this_round = true;
        let seq = d.vote_seq;
        sent += 1;
        ctx.send_vote_info(i, seq, kind, ring_to_send);
    }
    sent
}

fn any_in_state(ctx: &Ctx, state: ClientState) -> bool {
    ctx.cluster.members.iter().any(|m| client_state(m) == state)
}

/// §4.3 RUN. Returns the trigger's reply vote (ignored for a leaving trigger).
fn run(
    ctx: &mut Ctx,
    t: usize,
    leaving: bool,
    ring: RingId,
    config: &[NodeInfo],
    membership: &[NodeInfo],
    heuristics: Heuristics,
) -> Vote {
    ctx.cluster.algo_data::<FfsplitCluster>().state = ClusterState::WaitingForStableMembership;
    let tr = Trigger { t, leaving, ring, config, membership, heuristics };
    if !stable(&ctx.cluster.members, &tr) {
        // F7 kept: client states stay as they were; late replies reset them
        // but cannot start an ACK phase until the next stable run.
        return Vote::WaitForReply;
    }
    let previous = ctx.cluster.algo_ref::<FfsplitCluster>().map(|c| c.previous_quorate.as_slice()).unwrap_or(&[]);
    let quorate = select(&ctx.cluster.members, &tr, previous);
    ctx.cluster.algo_data::<FfsplitCluster>().previous_quorate = quorate.clone().unwrap_or_default();

    for (i, m) in ctx.cluster.members.iter_mut().enumerate() {
        let state = if leaving && i == t {
            ClientState::WaitingForChange
        } else if quorate.as_ref().is_some_and(|q| q.contains(&m.node_id)) {
            ClientState::SendingAck
        } else {
            ClientState::SendingNack
        };
        let d = m.algo_data::<FfsplitClient>();
        d.state = state;
        d.sent_this_round = false;
    }

    ctx.cluster.algo_data::<FfsplitCluster>().state = ClusterState::SendingNacks;
    if send(ctx, t, leaving, ring, Vote::Nack) == 0 {
        ctx.cluster.algo_data::<FfsplitCluster>().state = ClusterState::SendingAcks;
        if send(ctx, t, leaving, ring, Vote::Ack) == 0 {
            ctx.cluster.algo_data::<FfsplitCluster>().state = ClusterState::WaitingForChange;
        }
    }
    Vote::NoChange
}

impl DecisionAlgorithm for Ffsplit {
    fn number(&self) -> u16 {
        ALGO_FFSPLIT
    }

    fn name(&self) -> &'static str {
        "Fifty-Fifty split"
    }

    /// Fresh client state; the first client of a cluster also gets fresh
    /// cluster state (as the C code allocates it then).
    fn client_init(&self, ctx: &mut Ctx, t: usize) -> Result<(), ErrorCode> {
        if ctx.cluster.members.len() == 1 {
            *ctx.cluster.algo_data::<FfsplitCluster>() = FfsplitCluster::default();
        }
        *ctx.cluster.members[t].algo_data::<FfsplitClient>() = FfsplitClient::default();
        Ok(())
    }

    /// F8 kept: T's new config is passed as an argument and compared with the
    /// others' stored lists, so a change is stable once all clients sent it.
    fn config_node_list_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        _seq: u32,
        _config_version: Option<u64>,
        nodes: &[NodeInfo],
        initial: bool,
    ) -> Result<Vote, ErrorCode> {
        let me = &ctx.cluster.members[t];
        if nodes.is_empty() || !contains(nodes, me.node_id) {
            return Err(ErrorCode::InvalidConfigNodeList);
        }
        if initial || me.membership.is_empty() {
            return Ok(Vote::AskLater);
        }
        let (ring, membership, h) = (me.ring_id, me.membership.clone(), me.heuristics);
        Ok(run(ctx, t, false, ring, nodes, &membership, h))
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
        let me = &ctx.cluster.members[t];
        if nodes.is_empty() || !contains(nodes, me.node_id) {
            return Err(ErrorCode::InvalidMembershipNodeList);
        }
        if me.config.is_empty() {
            return Ok(Vote::AskLater);
        }
        let config = me.config.clone();
        Ok(run(ctx, t, false, ring_id, &config, nodes, heuristics))
    }

    /// The quorum list is informative only.
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

    /// Votes only travel by VOTE_INFO here; asking is an error (14).
    fn ask_for_vote_received(&self, _ctx: &mut Ctx, _t: usize, _seq: u32) -> Result<Vote, ErrorCode> {
        Err(ErrorCode::UnsupportedDecisionAlgorithmMessage)
    }

    /// §4.6: the acknowledgement that advances the two-phase delivery.
    fn vote_info_reply_received(&self, ctx: &mut Ctx, t: usize, seq: u32) -> Result<(), ErrorCode> {
        let d = ctx.cluster.members[t].algo_data::<FfsplitClient>();
        if seq != d.vote_seq {
            return Ok(());
        }
        // F6 fixed: the client still owes this round's VOTE_INFO, so a reply
        // with the current seq answers the previous round; ignoring it keeps
        // the pending ACK (C would drop it and maybe leave nobody with the vote).
        if d.state != ClientState::WaitingForChange && !d.sent_this_round {
            return Ok(());
        }
        d.state = ClientState::WaitingForChange;
        match ctx.cluster.algo_data::<FfsplitCluster>().state {
            ClusterState::SendingNacks => {
                if !any_in_state(ctx, ClientState::SendingNack) {
                    ctx.cluster.algo_data::<FfsplitCluster>().state = ClusterState::SendingAcks;
                    let ring = ctx.cluster.members[t].ring_id;
                    if send(ctx, t, false, ring, Vote::Ack) == 0 {
                        ctx.cluster.algo_data::<FfsplitCluster>().state = ClusterState::WaitingForChange;
                    }
                }
            }
            ClusterState::SendingAcks => {
                if !any_in_state(ctx, ClientState::SendingAck) {
                    ctx.cluster.algo_data::<FfsplitCluster>().state = ClusterState::WaitingForChange;
                }
            }
            ClusterState::WaitingForChange | ClusterState::WaitingForStableMembership => {}
        }
        Ok(())
    }

    fn heuristics_change_received(
        &self,
        ctx: &mut Ctx,
        t: usize,
        _seq: u32,
        heuristics: Heuristics,
    ) -> Result<Vote, ErrorCode> {
        let me = &ctx.cluster.members[t];
        if me.config.is_empty() || me.membership.is_empty() {
            return Ok(Vote::AskLater);
        }
        let (ring, config, membership) = (me.ring_id, me.config.clone(), me.membership.clone());
        Ok(run(ctx, t, false, ring, &config, &membership, heuristics))
    }

    /// The remaining clients are re-decided without T (unless the whole server
    /// is going down, when nothing is sent). State is freed with the member/cluster.
    fn client_disconnect(&self, ctx: &mut Ctx, t: usize, server_going_down: bool) {
        if server_going_down {
            return;
        }
        let me = &ctx.cluster.members[t];
        let (ring, config, membership, h) = (me.ring_id, me.config.clone(), me.membership.clone(), me.heuristics);
        let _ = run(ctx, t, true, ring, &config, &membership, h);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::{ClientState, ClusterState, FfsplitClient, FfsplitCluster};
    use crate::cluster::ALGO_FFSPLIT;
    use crate::wire::ErrorCode;

    fn cluster_state(h: &Harness) -> ClusterState {
        h.cluster.algo_ref::<FfsplitCluster>().expect("cluster data").state
    }

    fn previous_quorate(h: &Harness) -> Vec<u32> {
        h.cluster.algo_ref::<FfsplitCluster>().expect("cluster data").previous_quorate.clone()
    }

    fn client_state(h: &Harness, node: u32) -> ClientState {
        h.member(node).algo_ref::<FfsplitClient>().expect("client data").state
    }

    /// Clients `ids` connected (INIT ring 1.5), each sent its initial config
    /// list `ids` (→ ASK_LATER).
    fn connected(ids: &[u32], kap: bool) -> Harness {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.kap = kap;
        for &id in ids {
            h.add(id, ring(1, 5));
        }
        for &id in ids {
            assert_eq!(h.config(id, ids, true), reply(vec![], AskLater));
        }
        h
    }

    /// §4.7 trace up to and including the replies: everybody in membership
    /// `ids`, ring 1.6, ACK (seq 1), cluster back to WAITING_FOR_CHANGE.
    fn all_ack_at_1_6(ids: &[u32], kap: bool, h_of: impl Fn(u32) -> crate::wire::Heuristics) -> Harness {
        let mut h = connected(ids, kap);
        let (last, rest) = ids.split_last().expect("nodes");
        for &id in rest {
            assert_eq!(h.membership(id, ring(1, 6), ids, h_of(id)), reply(vec![], WaitForReply));
        }
        let acks = ids.iter().map(|&id| vi(id, 1, Ack, ring(1, 6))).collect();
        assert_eq!(h.membership(*last, ring(1, 6), ids, h_of(*last)), reply(acks, NoChange));
        for &id in ids {
            assert_eq!(h.vote_info_reply(id, 1), vec![]);
        }
        assert_eq!(cluster_state(&h), ClusterState::WaitingForChange);
        assert_eq!(previous_quorate(&h), ids.to_vec());
        h
    }

    // ---- §3 summary table, ffsplit column ----

    #[test]
    fn config_list_errors_and_ask_later() {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.add(1, ring(1, 5));
        h.add(2, ring(1, 5));
        assert_eq!(h.config(1, &[], true), error(ErrorCode::InvalidConfigNodeList));
        assert_eq!(h.config(1, &[2, 3], true), error(ErrorCode::InvalidConfigNodeList));
        assert_eq!(h.config(1, &[2, 3], false), error(ErrorCode::InvalidConfigNodeList));
        assert!(h.member(1).config.is_empty(), "an error stores nothing");
        assert_eq!(h.config(1, &[1, 2], true), reply(vec![], AskLater));
        // changed list before any membership list: still ASK_LATER
        assert_eq!(h.config(1, &[1, 2], false), reply(vec![], AskLater));
    }

    #[test]
    fn membership_list_errors_and_ask_later() {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.add(1, ring(1, 5));
        assert_eq!(h.membership(1, ring(1, 6), &[], Pass), error(ErrorCode::InvalidMembershipNodeList));
        assert_eq!(h.membership(1, ring(1, 6), &[2], Pass), error(ErrorCode::InvalidMembershipNodeList));
        assert_eq!(h.member(1).ring_id, ring(1, 5), "an error stores nothing");
        // no config yet
        assert_eq!(h.membership(1, ring(1, 6), &[1, 2], Pass), reply(vec![], AskLater));
        assert_eq!(h.member(1).ring_id, ring(1, 6), "ASK_LATER is a success: the list is stored");
    }

    #[test]
    fn quorum_ask_and_heuristics_without_lists() {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.add(1, ring(1, 5));
        assert_eq!(h.quorum(1, &[1]), reply(vec![], NoChange));
        assert_eq!(h.ask(1), error(ErrorCode::UnsupportedDecisionAlgorithmMessage));
        // neither config nor membership
        assert_eq!(h.heuristics_change(1, Pass), reply(vec![], AskLater));
        // config but no membership
        assert_eq!(h.config(1, &[1, 2], true), reply(vec![], AskLater));
        assert_eq!(h.heuristics_change(1, Pass), reply(vec![], AskLater));
        // membership but no config (other client)
        h.add(2, ring(1, 5));
        assert_eq!(h.membership(2, ring(1, 6), &[1, 2], Pass), reply(vec![], AskLater));
        assert_eq!(h.heuristics_change(2, Pass), reply(vec![], AskLater));
        assert_eq!(h.quorum(2, &[1, 2]), reply(vec![], NoChange));
    }

    /// §4.4: a connected client that has not sent its config list makes the
    /// cluster unstable.
    #[test]
    fn client_without_config_blocks_everybody() {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.add(1, ring(1, 5));
        h.add(2, ring(1, 5));
        assert_eq!(h.config(1, &[1, 2], true), reply(vec![], AskLater));
        assert_eq!(h.membership(1, ring(1, 6), &[1], Undefined), reply(vec![], WaitForReply));
        assert_eq!(cluster_state(&h), ClusterState::WaitingForStableMembership);
        assert_eq!(h.config(2, &[1, 2], true), reply(vec![], AskLater));
        // node2's own membership list makes it consistent: 1|1, lowest → {1}
        assert_eq!(h.membership(2, ring(2, 6), &[2], Undefined), reply(vec![vi(2, 1, Nack, ring(2, 6))], NoChange));
        assert_eq!(h.vote_info_reply(2, 1), vec![vi(1, 1, Ack, ring(1, 6))]);
    }

    // ---- §4.7 observed trace ----

    #[test]
    fn trace_4_7_four_clients_first_membership() {
        let mut h = connected(&[1, 2, 3, 4], true);
        let all = [1, 2, 3, 4];
        assert_eq!(h.membership(1, ring(1, 6), &all, Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(2, ring(1, 6), &all, Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(3, ring(1, 6), &all, Undefined), reply(vec![], WaitForReply));
        assert_eq!(
            h.membership(4, ring(1, 6), &all, Undefined),
            reply(
                vec![
                    vi(1, 1, Ack, ring(1, 6)),
                    vi(2, 1, Ack, ring(1, 6)),
                    vi(3, 1, Ack, ring(1, 6)),
                    vi(4, 1, Ack, ring(1, 6)),
                ],
                NoChange
            )
        );
        assert_eq!(cluster_state(&h), ClusterState::SendingAcks);
        for id in 1..=3 {
            assert_eq!(h.vote_info_reply(id, 1), vec![]);
            assert_eq!(cluster_state(&h), ClusterState::SendingAcks);
        }
        assert_eq!(h.vote_info_reply(4, 1), vec![]);
        assert_eq!(cluster_state(&h), ClusterState::WaitingForChange);
        assert_eq!(previous_quorate(&h), vec![1, 2, 3, 4]);
    }

    // ---- §9.1 two-node split ----

    fn two_nodes_before() -> Harness {
        all_ack_at_1_6(&[1, 2], true, |_| Pass)
    }

    #[test]
    fn example_9_1_two_node_split() {
        let mut h = two_nodes_before();
        // 1: node2's stored view still lists node1 at ring 1.6
        assert_eq!(h.membership(1, ring(1, 7), &[1], Pass), reply(vec![], WaitForReply));
        // 2: stable; 2 vs 2 score, 1 vs 1 connected, KAP undecided, lowest = 1 → {1}
        assert_eq!(h.membership(2, ring(2, 7), &[2], Pass), reply(vec![vi(2, 2, Nack, ring(2, 7))], NoChange));
        assert_eq!(client_state(&h, 1), ClientState::SendingAck);
        assert_eq!(cluster_state(&h), ClusterState::SendingNacks);
        // 3
        assert_eq!(h.vote_info_reply(2, 2), vec![vi(1, 2, Ack, ring(1, 7))]);
        // 4
        assert_eq!(h.vote_info_reply(1, 2), vec![]);
        assert_eq!(cluster_state(&h), ClusterState::WaitingForChange);
        assert_eq!(previous_quorate(&h), vec![1]);
        // tool view: node1 "ACK (ACK)", node2 "No change (NACK)"
        assert_eq!((h.member(1).last_sent_vote, h.member(1).last_sent_ack_nack_vote), (Some(Ack), Some(Ack)));
        assert_eq!((h.member(2).last_sent_vote, h.member(2).last_sent_ack_nack_vote), (Some(NoChange), Some(Nack)));
    }

    #[test]
    fn example_9_1_node2_cannot_reach_qnetd() {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.kap = true;
        h.add(1, ring(1, 5));
        assert_eq!(h.config(1, &[1, 2], true), reply(vec![], AskLater));
        assert_eq!(h.membership(1, ring(1, 6), &[1, 2], Pass), reply(vec![vi(1, 1, Ack, ring(1, 6))], NoChange));
        assert_eq!(h.vote_info_reply(1, 1), vec![]);
        // the split: node1's view is the only one → stable → {1} wins, no NACK round
        assert_eq!(h.membership(1, ring(1, 7), &[1], Pass), reply(vec![vi(1, 2, Ack, ring(1, 7))], NoChange));
        assert_eq!(h.vote_info_reply(1, 2), vec![]);
        assert_eq!(cluster_state(&h), ClusterState::WaitingForChange);
    }

    // ---- §9.2 four-node 2|2 split ----

    fn four_nodes_before(kap: bool) -> Harness {
        all_ack_at_1_6(&[1, 2, 3, 4], kap, |_| Undefined)
    }

    #[test]
    fn example_9_2_four_node_split_no_heuristics() {
        let mut h = four_nodes_before(true);
        assert_eq!(h.membership(1, ring(1, 7), &[1, 2], Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(2, ring(1, 7), &[1, 2], Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(3, ring(3, 7), &[3, 4], Undefined), reply(vec![], WaitForReply));
        assert_eq!(
            h.membership(4, ring(3, 7), &[3, 4], Undefined),
            reply(vec![vi(3, 2, Nack, ring(3, 7)), vi(4, 2, Nack, ring(3, 7))], NoChange)
        );
        assert_eq!(previous_quorate(&h), vec![1, 2]);
        assert_eq!(h.vote_info_reply(3, 2), vec![]);
        assert_eq!(h.vote_info_reply(4, 2), vec![vi(1, 2, Ack, ring(1, 7)), vi(2, 2, Ack, ring(1, 7))]);
        assert_eq!(cluster_state(&h), ClusterState::SendingAcks);
        assert_eq!(h.vote_info_reply(1, 2), vec![]);
        assert_eq!(h.vote_info_reply(2, 2), vec![]);
        assert_eq!(cluster_state(&h), ClusterState::WaitingForChange);
    }

    /// §9.2 heuristics variant: node3's list carries PASS → {3,4} scores 3 > 2.
    fn heuristics_variant(kap: bool) -> Harness {
        let mut h = four_nodes_before(kap);
        assert_eq!(h.membership(1, ring(1, 7), &[1, 2], Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(2, ring(1, 7), &[1, 2], Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(3, ring(3, 7), &[3, 4], Pass), reply(vec![], WaitForReply));
        assert_eq!(
            h.membership(4, ring(3, 7), &[3, 4], Undefined),
            reply(vec![vi(1, 2, Nack, ring(1, 7)), vi(2, 2, Nack, ring(1, 7))], NoChange)
        );
        assert_eq!(h.vote_info_reply(1, 2), vec![]);
        assert_eq!(h.vote_info_reply(2, 2), vec![vi(3, 2, Ack, ring(3, 7)), vi(4, 2, Ack, ring(3, 7))]);
        assert_eq!(h.vote_info_reply(3, 2), vec![]);
        assert_eq!(h.vote_info_reply(4, 2), vec![]);
        assert_eq!(previous_quorate(&h), vec![3, 4]);
        h
    }

    #[test]
    fn example_9_2_heuristics_variant() {
        let h = heuristics_variant(true);
        assert_eq!(cluster_state(&h), ClusterState::WaitingForChange);
    }

    /// §9.2 KAP variant: equal scores and sizes; KAP keeps the vote in {3,4}.
    #[test]
    fn example_9_2_kap_keeps_active_partition() {
        let mut h = heuristics_variant(true);
        assert_eq!(h.membership(3, ring(3, 8), &[3, 4], Undefined), reply(vec![], WaitForReply));
        assert_eq!(
            h.membership(4, ring(3, 8), &[3, 4], Undefined),
            reply(vec![vi(1, 3, Nack, ring(1, 7)), vi(2, 3, Nack, ring(1, 7))], NoChange)
        );
        assert_eq!(h.vote_info_reply(1, 3), vec![]);
        assert_eq!(h.vote_info_reply(2, 3), vec![vi(3, 3, Ack, ring(3, 8)), vi(4, 3, Ack, ring(3, 8))]);
    }

    /// §9.2: with KAP off on any one client the lowest tie-breaker moves the vote to {1,2}.
    #[test]
    fn example_9_2_kap_off_on_one_client_uses_tie_breaker() {
        let mut h = heuristics_variant(true);
        h.member_mut(1).kap = false;
        assert_eq!(h.membership(3, ring(3, 8), &[3, 4], Undefined), reply(vec![], WaitForReply));
        assert_eq!(
            h.membership(4, ring(3, 8), &[3, 4], Undefined),
            reply(vec![vi(3, 3, Nack, ring(3, 8)), vi(4, 3, Nack, ring(3, 8))], NoChange)
        );
        assert_eq!(h.vote_info_reply(3, 3), vec![]);
        assert_eq!(h.vote_info_reply(4, 3), vec![vi(1, 3, Ack, ring(1, 7)), vi(2, 3, Ack, ring(1, 7))]);
        assert_eq!(previous_quorate(&h), vec![1, 2]);
    }

    /// §9.2 F1 variant, then node1 leaves (F2).
    #[test]
    fn example_9_2_f1_stale_heuristics_then_f2_leaving_client() {
        let mut h = heuristics_variant(true);
        // F1: candidate 4 counts node3 with its stored PASS → {3,4} = 3 > {1,2} = 2
        // (correct scoring with the new FAIL would give {1,2} = 2 > {3,4} = 1).
        assert_eq!(
            h.heuristics_change(3, Fail),
            reply(vec![vi(1, 3, Nack, ring(1, 7)), vi(2, 3, Nack, ring(1, 7))], NoChange)
        );
        assert_eq!(h.member(3).heuristics, Fail);
        assert_eq!(h.vote_info_reply(1, 3), vec![]);
        assert_eq!(h.vote_info_reply(2, 3), vec![vi(3, 3, Ack, ring(3, 7)), vi(4, 3, Ack, ring(3, 7))]);
        assert_eq!(h.vote_info_reply(3, 3), vec![]);
        assert_eq!(h.vote_info_reply(4, 3), vec![]);
        assert_eq!(previous_quorate(&h), vec![3, 4]);

        // F2: node1 disconnects; the leaving run still counts node1 as connected:
        // {1,2} = 2 > {3,4} = 1 (stored FAIL now) → NACK 3,4, then ACK node2 only.
        assert_eq!(h.disconnect(1, false), vec![vi(3, 4, Nack, ring(3, 7)), vi(4, 4, Nack, ring(3, 7))]);
        assert_eq!(previous_quorate(&h), vec![1, 2]);
        assert_eq!(h.vote_info_reply(3, 4), vec![]);
        assert_eq!(h.vote_info_reply(4, 4), vec![vi(2, 4, Ack, ring(1, 7))]);
        assert_eq!(h.vote_info_reply(2, 4), vec![]);
        assert_eq!(cluster_state(&h), ClusterState::WaitingForChange);
    }

    /// F2: the leaving client is still part of KAP's "every client" test.
    #[test]
    fn f2_leaving_client_counts_for_kap() {
        // KAP variant end state: previous_quorate {3,4}, everybody undefined, ring 3.8 on {3,4}.
        let build = || {
            let mut h = heuristics_variant(true);
            h.membership(3, ring(3, 8), &[3, 4], Undefined);
            h.membership(4, ring(3, 8), &[3, 4], Undefined);
            for (n, s) in [(1, 3), (2, 3), (3, 3), (4, 3)] {
                h.vote_info_reply(n, s);
            }
            assert_eq!(previous_quorate(&h), vec![3, 4]);
            h
        };
        // node4 (KAP on) leaves: {3,4} still 2 connected (node4 counted), KAP keeps {3,4}.
        let mut h = build();
        assert_eq!(h.disconnect(4, false), vec![vi(1, 4, Nack, ring(1, 7)), vi(2, 4, Nack, ring(1, 7))]);
        assert_eq!(h.vote_info_reply(1, 4), vec![]);
        assert_eq!(h.vote_info_reply(2, 4), vec![vi(3, 4, Ack, ring(3, 8))]);
        // the same, but the leaving node4 has KAP off → KAP unused → lowest → {1,2}
        let mut h = build();
        h.member_mut(4).kap = false;
        assert_eq!(h.disconnect(4, false), vec![vi(3, 4, Nack, ring(3, 8))]);
        assert_eq!(h.vote_info_reply(3, 4), vec![vi(1, 4, Ack, ring(1, 7)), vi(2, 4, Ack, ring(1, 7))]);
    }

    // ---- §9.3 3|1 and 3|2 ----

    #[test]
    fn example_9_3_three_one_split() {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.tie_breaker = nominated(4);
        let mut h = {
            // same as all_ack_at_1_6 but with the node-id tie-breaker
            let ids = [1, 2, 3, 4];
            for id in ids {
                h.add(id, ring(1, 5));
            }
            for id in ids {
                h.config(id, &ids, true);
            }
            for id in [1, 2, 3] {
                assert_eq!(h.membership(id, ring(1, 6), &ids, Undefined), reply(vec![], WaitForReply));
            }
            assert_eq!(h.membership(4, ring(1, 6), &ids, Undefined).vis.len(), 4);
            for id in ids {
                h.vote_info_reply(id, 1);
            }
            h
        };
        let three = [1, 2, 3];
        assert_eq!(h.membership(1, ring(1, 9), &three, Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(2, ring(1, 9), &three, Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(3, ring(1, 9), &three, Undefined), reply(vec![], WaitForReply));
        // heuristics and the tie-breaker (node 4) are irrelevant: 3 > 4 div 2
        assert_eq!(h.membership(4, ring(4, 9), &[4], Pass), reply(vec![vi(4, 2, Nack, ring(4, 9))], NoChange));
        assert_eq!(
            h.vote_info_reply(4, 2),
            vec![vi(1, 2, Ack, ring(1, 9)), vi(2, 2, Ack, ring(1, 9)), vi(3, 2, Ack, ring(1, 9))]
        );
    }

    #[test]
    fn example_9_3_five_nodes_three_two_split() {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.tie_breaker = nominated(4);
        h.kap = true;
        let ids = [1, 2, 3, 4, 5];
        for id in ids {
            h.add(id, ring(1, 5));
        }
        for id in ids {
            h.config(id, &ids, true);
        }
        for id in [1, 2, 3, 4] {
            assert_eq!(h.membership(id, ring(1, 6), &ids, Undefined), reply(vec![], WaitForReply));
        }
        assert_eq!(h.membership(5, ring(1, 6), &ids, Undefined).vis.len(), 5);
        for id in ids {
            h.vote_info_reply(id, 1);
        }
        // {4,5} has PASS everywhere and the tie-breaker node; still 2 < 3 decides
        assert_eq!(h.membership(4, ring(4, 9), &[4, 5], Pass), reply(vec![], WaitForReply));
        assert_eq!(h.membership(5, ring(4, 9), &[4, 5], Pass), reply(vec![], WaitForReply));
        assert_eq!(h.membership(1, ring(1, 9), &[1, 2, 3], Undefined), reply(vec![], WaitForReply));
        assert_eq!(h.membership(2, ring(1, 9), &[1, 2, 3], Undefined), reply(vec![], WaitForReply));
        assert_eq!(
            h.membership(3, ring(1, 9), &[1, 2, 3], Undefined),
            reply(vec![vi(4, 2, Nack, ring(4, 9)), vi(5, 2, Nack, ring(4, 9))], NoChange)
        );
        assert_eq!(h.vote_info_reply(4, 2), vec![]);
        assert_eq!(
            h.vote_info_reply(5, 2),
            vec![vi(1, 2, Ack, ring(1, 9)), vi(2, 2, Ack, ring(1, 9)), vi(3, 2, Ack, ring(1, 9))]
        );
    }

    // ---- §9.4 partitions reconnecting ----

    fn after_9_1() -> Harness {
        let mut h = two_nodes_before();
        h.membership(1, ring(1, 7), &[1], Pass);
        h.membership(2, ring(2, 7), &[2], Pass);
        h.vote_info_reply(2, 2);
        h.vote_info_reply(1, 2);
        h
    }

    #[test]
    fn example_9_4_merge_after_two_node_split() {
        let mut h = after_9_1();
        assert_eq!(h.membership(2, ring(1, 8), &[1, 2], Pass), reply(vec![], WaitForReply));
        assert_eq!(
            h.membership(1, ring(1, 8), &[1, 2], Pass),
            reply(vec![vi(1, 3, Ack, ring(1, 8)), vi(2, 3, Ack, ring(1, 8))], NoChange)
        );
        assert_eq!(h.vote_info_reply(1, 3), vec![]);
        assert_eq!(h.vote_info_reply(2, 3), vec![]);
        assert_eq!(cluster_state(&h), ClusterState::WaitingForChange);
    }

    #[test]
    fn example_9_4_qdevice_reconnect() {
        let mut h = after_9_1();
        h.membership(2, ring(1, 8), &[1, 2], Pass);
        h.membership(1, ring(1, 8), &[1, 2], Pass);
        h.vote_info_reply(1, 3);
        h.vote_info_reply(2, 3);
        // server notices node2's dead session: node1 alone, {1,2} is a majority
        assert_eq!(h.disconnect(2, false), vec![vi(1, 4, Ack, ring(1, 8))]);
        assert_eq!(h.vote_info_reply(1, 4), vec![]);
        // node2 back (fresh connection, fresh vote_seq)
        h.add(2, ring(1, 8));
        assert_eq!(h.config(2, &[1, 2], true), reply(vec![], AskLater));
        assert_eq!(
            h.membership(2, ring(1, 8), &[1, 2], Pass),
            reply(vec![vi(1, 5, Ack, ring(1, 8)), vi(2, 1, Ack, ring(1, 8))], NoChange)
        );
    }

    #[test]
    fn server_going_down_sends_nothing() {
        let mut h = two_nodes_before();
        assert_eq!(h.disconnect(1, true), vec![]);
        assert_eq!(h.disconnect(2, true), vec![]);
    }

    // ---- quirks ----

    /// F3: each candidate is judged against its own config list. node2 lists
    /// node 2 twice (same set, so stable): its 1 of 3 is no majority, while
    /// node1's 1 of 2 is an exact half and wins even against the highest
    /// tie-breaker, which would pick {2} with a cluster-wide config.
    #[test]
    fn f3_own_config_list_decides_majority() {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.tie_breaker = highest();
        h.add(1, ring(1, 5));
        h.add(2, ring(1, 5));
        assert_eq!(h.config(1, &[1, 2], true), reply(vec![], AskLater));
        assert_eq!(h.config(2, &[1, 2, 2], true), reply(vec![], AskLater));
        // node2 first: node1 has no membership yet → stable; nobody wins → NACK to both
        assert_eq!(
            h.membership(2, ring(2, 7), &[2], Undefined),
            reply(vec![vi(1, 1, Nack, ring(1, 5)), vi(2, 1, Nack, ring(2, 7))], NoChange)
        );
        assert_eq!(previous_quorate(&h), Vec::<u32>::new());
        assert_eq!(h.vote_info_reply(1, 1), vec![]);
        assert_eq!(h.vote_info_reply(2, 1), vec![]);
        assert_eq!(cluster_state(&h), ClusterState::WaitingForChange);
        assert_eq!(h.membership(1, ring(1, 7), &[1], Undefined), reply(vec![vi(2, 2, Nack, ring(2, 7))], NoChange));
        assert_eq!(h.vote_info_reply(2, 2), vec![vi(1, 2, Ack, ring(1, 7))]);
    }

    /// F4: a node id listed twice counts twice: {1,1,2} is 3 of 4 (majority)
    /// and outscores {3,4} in the 50:50 comparison.
    #[test]
    fn f4_duplicates_count_twice() {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.tie_breaker = highest();
        h.add(1, ring(1, 5));
        h.add(3, ring(1, 5));
        h.config(1, &[1, 2, 3, 4], true);
        h.config(3, &[1, 2, 3, 4], true);
        assert_eq!(
            h.membership(1, ring(1, 7), &[1, 1, 2], Undefined),
            reply(vec![vi(3, 1, Nack, ring(1, 5))], NoChange)
        );
        assert_eq!(h.vote_info_reply(3, 1), vec![vi(1, 1, Ack, ring(1, 7))]);
        assert_eq!(h.vote_info_reply(1, 1), vec![]);
        assert_eq!(h.membership(3, ring(3, 7), &[3, 4], Undefined), reply(vec![vi(3, 2, Nack, ring(3, 7))], NoChange));
        assert_eq!(previous_quorate(&h), vec![1, 1, 2]);
        assert_eq!(h.vote_info_reply(3, 2), vec![vi(1, 2, Ack, ring(1, 7))]);
    }

    /// F6 (fixed): replies to the previous round's NACKs arrive after a new
    /// round chose {3,4}. In C they would cancel the pending ACKs and leave the
    /// whole cluster without the vote; here {3,4} still gets ACK.
    #[test]
    fn f6_late_reply_does_not_cancel_pending_ack() {
        let mut h = four_nodes_before(true);
        h.membership(1, ring(1, 7), &[1, 2], Undefined);
        h.membership(2, ring(1, 7), &[1, 2], Undefined);
        h.membership(3, ring(3, 7), &[3, 4], Undefined);
        assert_eq!(
            h.membership(4, ring(3, 7), &[3, 4], Undefined),
            reply(vec![vi(3, 2, Nack, ring(3, 7)), vi(4, 2, Nack, ring(3, 7))], NoChange)
        );
        // before 3 and 4 reply, node3's heuristics turn PASS: {3,4} = 3 > 2 wins
        assert_eq!(
            h.heuristics_change(3, Pass),
            reply(vec![vi(1, 2, Nack, ring(1, 7)), vi(2, 2, Nack, ring(1, 7))], NoChange)
        );
        assert_eq!(client_state(&h, 3), ClientState::SendingAck);
        // the late replies to the round-1 NACKs (seq 2)
        assert_eq!(h.vote_info_reply(3, 2), vec![]);
        assert_eq!(h.vote_info_reply(4, 2), vec![]);
        assert_eq!(client_state(&h, 3), ClientState::SendingAck);
        assert_eq!(client_state(&h, 4), ClientState::SendingAck);
        assert_eq!(h.vote_info_reply(1, 2), vec![]);
        assert_eq!(h.vote_info_reply(2, 2), vec![vi(3, 3, Ack, ring(3, 7)), vi(4, 3, Ack, ring(3, 7))]);
    }

    /// F7: an unstable run in the middle of the NACK phase stops it; the
    /// replies reset client states but no ACK goes out until the next stable run.
    #[test]
    fn f7_unstable_run_stops_ack_phase() {
        let mut h = four_nodes_before(true);
        h.membership(1, ring(1, 7), &[1, 2], Undefined);
        h.membership(2, ring(1, 7), &[1, 2], Undefined);
        h.membership(3, ring(3, 7), &[3, 4], Undefined);
        h.membership(4, ring(3, 7), &[3, 4], Undefined);
        assert_eq!(cluster_state(&h), ClusterState::SendingNacks);
        assert_eq!(h.membership(1, ring(1, 8), &[1, 2], Undefined), reply(vec![], WaitForReply));
        assert_eq!(cluster_state(&h), ClusterState::WaitingForStableMembership);
        assert_eq!(h.vote_info_reply(3, 2), vec![]);
        assert_eq!(h.vote_info_reply(4, 2), vec![]);
        assert_eq!(client_state(&h, 3), ClientState::WaitingForChange);
        assert_eq!(client_state(&h, 1), ClientState::SendingAck, "states untouched by the unstable run");
        assert_eq!(
            h.membership(2, ring(1, 8), &[1, 2], Undefined),
            reply(vec![vi(3, 3, Nack, ring(3, 7)), vi(4, 3, Nack, ring(3, 7))], NoChange)
        );
        assert_eq!(h.vote_info_reply(3, 3), vec![]);
        assert_eq!(h.vote_info_reply(4, 3), vec![vi(1, 2, Ack, ring(1, 8)), vi(2, 2, Ack, ring(1, 8))]);
    }

    /// F8: a changed config list is stable only once every client sent it.
    #[test]
    fn f8_changed_config_waits_for_all_clients() {
        let mut h = two_nodes_before();
        assert_eq!(h.config(1, &[2, 3], false), error(ErrorCode::InvalidConfigNodeList));
        assert_eq!(h.config(1, &[1, 2, 3], false), reply(vec![], WaitForReply));
        assert_eq!(h.member(1).config.len(), 3);
        assert_eq!(
            h.config(2, &[1, 2, 3], false),
            reply(vec![vi(1, 2, Ack, ring(1, 6)), vi(2, 2, Ack, ring(1, 6))], NoChange)
        );
    }

    /// §4.6: a reply whose seq is not the client's latest is ignored.
    #[test]
    fn stale_vote_info_reply_is_ignored() {
        let mut h = four_nodes_before(true);
        h.membership(1, ring(1, 7), &[1, 2], Undefined);
        h.membership(2, ring(1, 7), &[1, 2], Undefined);
        h.membership(3, ring(3, 7), &[3, 4], Undefined);
        h.membership(4, ring(3, 7), &[3, 4], Undefined);
        assert_eq!(h.vote_info_reply(3, 1), vec![]);
        assert_eq!(h.vote_info_reply(4, 1), vec![]);
        assert_eq!(client_state(&h, 3), ClientState::SendingNack);
        assert_eq!(cluster_state(&h), ClusterState::SendingNacks);
        assert_eq!(h.vote_info_reply(3, 2), vec![]);
        assert_eq!(h.vote_info_reply(4, 2).len(), 2);
    }

    /// The scenario that crashes the C qnetd 3.0.3 (BENCHMARKS.md, "A crash in
    /// the C qnetd"): node 1 holds the vote, node 2 has only INITed (no lists
    /// yet), node 1 leaves. The leaving-node run finds node 2 alone with empty
    /// lists, an exact 0:0 "split"; the lowest-id tie-breaker must not read the
    /// empty config list, and node 2, which has told us nothing, gets no ACK.
    #[test]
    fn leaving_node_with_partner_that_only_inited_gives_no_vote() {
        let mut h = Harness::new(ALGO_FFSPLIT);
        h.add(1, ring(1, 5));
        assert_eq!(h.config(1, &[1, 2], true), reply(vec![], AskLater));
        // Alone with a 1:1 config, node 1 wins the 50:50 split on the lowest id.
        assert_eq!(h.membership(1, ring(1, 6), &[1], Undefined), reply(vec![vi(1, 1, Ack, ring(1, 6))], NoChange));
        assert_eq!(h.vote_info_reply(1, 1), vec![]);
        h.add(2, ring(1, 6));
        // Node 1 leaves: node 2 is told NACK, never ACK, and nothing panics.
        assert_eq!(h.disconnect(1, false), vec![vi(2, 1, Nack, ring(1, 6))]);
        assert_eq!(h.vote_info_reply(2, 1), vec![]);
        // Once node 2 reports its lists it wins the 50:50 split: its partition has
        // one client connected to qnetd, node 1's has none (before the tie-breaker).
        assert_eq!(h.config(2, &[1, 2], true), reply(vec![], AskLater));
        assert_eq!(h.membership(2, ring(2, 7), &[2], Undefined), reply(vec![vi(2, 2, Ack, ring(2, 7))], NoChange));
    }
}
