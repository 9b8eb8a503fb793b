//! Exclusive grant: the safety layer lms and 2nodelms put between their C
//! decisions and the votes actually sent.
//!
//! Why it exists: the C lms and 2nodelms decide each client on its own, from
//! stored data that may be stale, and never take an ACK back. Two partitions
//! can therefore both be answered ACK (e.g. 2nodelms judging each node against
//! the peer's *old* heuristics, or an lms timer ACK on stale data followed by
//! the other side's ACK) — with lms's N-1 qdevice votes that is a real split
//! brain. The issue requires: no two clients whose membership lists are
//! disjoint may both hold an ACK. This module enforces it; the algorithms keep
//! computing exactly the C decisions, and every answer is identical to C's
//! unless handing it out would create a second holder.
//!
//! The server's view of who holds the vote ([`GrantState::held`]) is
//! conservative. A hold starts when an ACK is queued and ends only when we
//! *know* the client stopped counting it:
//! * it answered (VOTE_INFO_REPLY) a VOTE_INFO NACK sent after the ACK —
//!   TCP order proves it processed the NACK (a NACK in a *reply* is not
//!   acknowledged, so it does not end the hold);
//! * it reported a different ring id: the real client stops casting its vote
//!   before it sends a new membership list (qdevice-model-net.c sets
//!   WAIT_FOR_REPLY) and votequorum rejects a vote for an old ring;
//! * it disconnected.
//!
//! The grant step: when an algorithm decides ACK for client T (ring R,
//! membership M), the holders whose held membership is disjoint from M must go
//! first. If there are none, T gets its ACK as in C. Otherwise each such holder
//! still at ACK is sent VOTE_INFO NACK (its ring, seq from its
//! `timer_vote_seq` counter, pre-incremented like lms timer VOTE_INFOs, so
//! seqs stay unique per client), T is answered WAIT_FOR_REPLY and its grant is
//! *pending* (its algorithm timer armed at heartbeat/4 as a retry). When the
//! last conflicting holder acknowledges its NACK or disconnects, T's decision
//! is re-run on the then-current data and delivered by VOTE_INFO (ACK only
//! through the same grant step). A new decision for T supersedes its pending
//! grant. Invariant: no two holds have disjoint memberships, so no two
//! disjoint partitions can hold an ACK at once.
//!
//! Liveness: if the re-run decision is not ACK after all (the data changed
//! while waiting), the clients revoked for it would be left without the vote.
//! So a client whose revocation completed has its decision re-run once, when
//! no other client holds or waits for a conflicting ACK (that re-run can only
//! ever be granted at once, so it never starts a revocation of its own).
//!
//! The trigger of a message is never revoked inside its own callback: its
//! reply is queued after our VOTE_INFOs, so a NACK queued now would precede —
//! and be undone by — that reply. A pending grant blocked only by such a
//! holder waits for the next event or its timer.

use super::Ctx;
use crate::cluster::{Member, Millis};
use crate::wire::{NodeInfo, RingId, Vote};

/// An ACK as the server sent it: the ring it was for and the membership
/// (node ids) the client reported with that ring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hold {
    pub ring: RingId,
    pub nodes: Vec<u32>,
}

impl Hold {
    fn new(ring: RingId, nodes: &[NodeInfo]) -> Self {
        Hold { ring, nodes: nodes.iter().map(|n| n.node_id).collect() }
    }

    fn disjoint(&self, other: &Hold) -> bool {
        !self.nodes.iter().any(|n| other.nodes.contains(n))
    }
}

/// Per-client grant bookkeeping, embedded in each algorithm's client state.
#[derive(Debug, Clone, Default)]
pub struct GrantState {
    /// An ACK that may still count (see module doc for when it ends).
    pub held: Option<Hold>,
    /// Seq of the VOTE_INFO NACK that takes `held` back, until answered.
    pub revoking: Option<u32>,
    /// An ACK decided for this ring/membership, waiting for the conflicting
    /// holders to be revoked.
    pub pending: Option<Hold>,
    /// We took this client's ACK back and have not re-decided it since. If
    /// the grant it made way for does not happen after all, the client gets
    /// its decision re-run instead of staying without the vote.
    pub revoked: bool,
}

/// Client state of an algorithm that uses the grant step.
pub trait GrantClient: Default + 'static {
    fn grant(&mut self) -> &mut GrantState;
    fn grant_ref(&self) -> &GrantState;
    /// Store `vote` as the client's decision (what it was last told).
    fn store_result(&mut self, vote: Vote);
}

/// Re-run the algorithm's decision for client `q` from its stored record,
/// ignoring client `gone` (leaving). Returns the vote to deliver.
pub type Redecide = fn(&mut Ctx, usize, Option<usize>) -> Vote;

fn state<C: GrantClient>(m: &Member) -> Option<&GrantState> {
    m.algo_ref::<C>().map(|c| c.grant_ref())
}

/// Members other than `t` and `gone` whose hold conflicts with `want`.
fn conflicting<C: GrantClient>(ctx: &Ctx, t: usize, gone: Option<usize>, want: &Hold) -> Vec<usize> {
    ctx.cluster
        .members
        .iter()
        .enumerate()
        .filter(|&(i, m)| {
            i != t && Some(i) != gone && state::<C>(m).and_then(|s| s.held.as_ref()).is_some_and(|h| h.disjoint(want))
        })
        .map(|(i, _)| i)
        .collect()
}

fn revoking<C: GrantClient>(m: &Member) -> bool {
    state::<C>(m).is_some_and(|s| s.revoking.is_some())
}

/// Queue a VOTE_INFO to `i` with the next seq of its per-client counter.
fn send_vote_info(ctx: &mut Ctx, i: usize, vote: Vote, ring: RingId) -> u32 {
    let m = &mut ctx.cluster.members[i];
    m.timer_vote_seq = m.timer_vote_seq.wrapping_add(1);
    let seq = m.timer_vote_seq;
    ctx.send_vote_info(i, seq, vote, ring);
    seq
}

/// Take holder `x`'s ACK back: VOTE_INFO NACK for its held ring.
fn revoke<C: GrantClient>(ctx: &mut Ctx, x: usize) {
    let Some(ring) = state::<C>(&ctx.cluster.members[x]).and_then(|s| s.held.as_ref()).map(|h| h.ring) else {
        return;
    };
    let seq = send_vote_info(ctx, x, Vote::Nack, ring);
    let c = ctx.cluster.members[x].algo_data::<C>();
    c.grant().revoking = Some(seq);
    c.grant().revoked = true;
    c.store_result(Vote::Nack);
    log::info!("exclusive grant: revoking the ACK of node {} (VOTE_INFO seq {seq})", ctx.cluster.members[x].node_id);
}

/// The grant step for `t` wanting ACK for `want`. `protect` (the trigger of
/// the running message, if any) cannot be revoked now. Returns true if the
/// ACK may be sent now (then `t` holds it), false if it is pending.
fn grant<C: GrantClient>(ctx: &mut Ctx, t: usize, want: Hold, protect: Option<usize>, gone: Option<usize>) -> bool {
    let holders = conflicting::<C>(ctx, t, gone, &want);
    let g = ctx.cluster.members[t].algo_data::<C>();
    if holders.is_empty() {
        let gs = g.grant();
        gs.held = Some(want);
        // A NACK still being acknowledged precedes this ACK: moot now.
        gs.revoking = None;
        gs.pending = None;
        g.store_result(Vote::Ack);
        return true;
    }
    g.grant().pending = Some(want);
    g.store_result(Vote::WaitForReply);
    for x in holders {
        if Some(x) != protect && !revoking::<C>(&ctx.cluster.members[x]) {
            revoke::<C>(ctx, x);
        }
    }
    let interval = Millis::from(ctx.cluster.members[t].heartbeat_interval / 4);
    ctx.arm_timer(t, interval);
    log::info!(
        "exclusive grant: node {}'s ACK waits until other partitions give theirs back",
        ctx.cluster.members[t].node_id
    );
    false
}

fn own_hold(m: &Member) -> Hold {
    Hold::new(m.ring_id, &m.membership)
}

/// Deliver `vote` to `q` by VOTE_INFO (timer, or a released grant).
fn deliver_vote_info<C: GrantClient>(ctx: &mut Ctx, q: usize, vote: Vote, protect: Option<usize>, gone: Option<usize>) {
    let ring = ctx.cluster.members[q].ring_id;
    match vote {
        Vote::Ack => {
            let want = own_hold(&ctx.cluster.members[q]);
            if grant::<C>(ctx, q, want, protect, gone) {
                send_vote_info(ctx, q, Vote::Ack, ring);
            }
        }
        Vote::Nack => {
            let seq = send_vote_info(ctx, q, Vote::Nack, ring);
            let gs = ctx.cluster.members[q].algo_data::<C>().grant();
            if gs.held.is_some() {
                gs.revoking = Some(seq);
            }
        }
        Vote::WaitForReply | Vote::AskLater | Vote::NoChange => {}
    }
}

/// Move pending grants forward: re-decide each pending client whose
/// conflicting holders are all gone, or include one nobody is revoking yet
/// (it got its ACK after the grant was requested; the fresh decision says
/// whether it must really be taken back).
pub fn settle<C: GrantClient>(ctx: &mut Ctx, protect: Option<usize>, gone: Option<usize>, redecide: Redecide) {
    let n = ctx.cluster.members.len();
    // Each re-decision ends a pending grant or leaves it waiting only on
    // holders being revoked; a new holder appears only when a pending grant
    // ends. So this settles well within the bound, which is only a backstop.
    for _ in 0..=2 * n + 1 {
        let mut changed = false;
        for q in 0..n {
            if Some(q) == protect || Some(q) == gone {
                continue;
            }
            let Some(want) = state::<C>(&ctx.cluster.members[q]).and_then(|s| s.pending.clone()) else { continue };
            let holders = conflicting::<C>(ctx, q, gone, &want);
            let blocked = !holders.is_empty()
                && holders.iter().all(|&x| Some(x) == protect || revoking::<C>(&ctx.cluster.members[x]));
            if blocked {
                continue;
            }
            ctx.cluster.members[q].algo_data::<C>().grant().pending = None;
            let vote = redecide(ctx, q, gone);
            deliver_vote_info::<C>(ctx, q, vote, protect, gone);
            changed = true;
        }
        changed |= give_back::<C>(ctx, protect, gone, redecide);
        if !changed {
            return;
        }
    }
}

/// Re-decide clients whose revocation is complete, but only where that can
/// never take anything from anyone: if some other client holds a conflicting
/// ACK the vote has legitimately moved (flag dropped); if a pending grant
/// conflicts, wait for it to end. A re-run decision other than ACK is only
/// stored — the client was told NACK already. Returns whether anything ran.
fn give_back<C: GrantClient>(ctx: &mut Ctx, protect: Option<usize>, gone: Option<usize>, redecide: Redecide) -> bool {
    let mut ran = false;
    for x in 0..ctx.cluster.members.len() {
        if Some(x) == protect || Some(x) == gone {
            continue;
        }
        let m = &ctx.cluster.members[x];
        let Some(gs) = state::<C>(m) else { continue };
        if !gs.revoked || gs.held.is_some() || gs.pending.is_some() {
            continue;
        }
        let want = own_hold(m);
        if !conflicting::<C>(ctx, x, gone, &want).is_empty() {
            ctx.cluster.members[x].algo_data::<C>().grant().revoked = false;
            continue;
        }
        let waiting = ctx.cluster.members.iter().enumerate().any(|(p, pm)| {
            p != x
                && Some(p) != gone
                && state::<C>(pm).and_then(|s| s.pending.as_ref()).is_some_and(|h| h.disjoint(&want))
        });
        if waiting {
            continue;
        }
        ctx.cluster.members[x].algo_data::<C>().grant().revoked = false;
        ran = true;
        if redecide(ctx, x, gone) == Vote::Ack {
            deliver_vote_info::<C>(ctx, x, Vote::Ack, protect, gone);
        }
    }
    ran
}

/// Start of a membership callback: a new ring id from `t` ends its hold.
pub fn observe_ring<C: GrantClient>(ctx: &mut Ctx, t: usize, ring: RingId) {
    let gs = ctx.cluster.members[t].algo_data::<C>().grant();
    if gs.held.as_ref().is_some_and(|h| h.ring != ring) {
        gs.held = None;
        gs.revoking = None;
    }
}

/// `t`'s message was decided `vote` for ring `ring` / membership `nodes`
/// (what the reply will carry). Returns the vote to put in the reply.
pub fn reply<C: GrantClient>(
    ctx: &mut Ctx,
    t: usize,
    ring: RingId,
    nodes: &[NodeInfo],
    vote: Vote,
    redecide: Redecide,
) -> Vote {
    let gs = ctx.cluster.members[t].algo_data::<C>().grant();
    gs.pending = None;
    gs.revoked = false;
    let vote = if vote == Vote::Ack && !grant::<C>(ctx, t, Hold::new(ring, nodes), Some(t), None) {
        Vote::WaitForReply
    } else {
        vote
    };
    settle::<C>(ctx, Some(t), None, redecide);
    vote
}

/// The algorithm timer of `t` decided `vote` (sent by VOTE_INFO).
pub fn timer<C: GrantClient>(ctx: &mut Ctx, t: usize, vote: Vote, redecide: Redecide) {
    let gs = ctx.cluster.members[t].algo_data::<C>().grant();
    gs.pending = None;
    gs.revoked = false;
    deliver_vote_info::<C>(ctx, t, vote, None, None);
    settle::<C>(ctx, None, None, redecide);
}

/// VOTE_INFO_REPLY(seq) from `t`: ends its hold if it answers the revoking NACK.
/// Replies to anything else (older VOTE_INFOs, ACKs) are ignored.
pub fn vote_info_reply<C: GrantClient>(ctx: &mut Ctx, t: usize, seq: u32, redecide: Redecide) {
    let gs = ctx.cluster.members[t].algo_data::<C>().grant();
    if gs.revoking == Some(seq) {
        gs.revoking = None;
        gs.held = None;
    }
    settle::<C>(ctx, None, None, redecide);
}

/// `t` is leaving (still in the member list): its hold and pending grant go
/// with it. Nothing is sent when the whole server is going down.
pub fn disconnect<C: GrantClient>(ctx: &mut Ctx, t: usize, server_going_down: bool, redecide: Redecide) {
    if server_going_down {
        return;
    }
    settle::<C>(ctx, None, Some(t), redecide);
}

/// Whether `t` has a pending grant.
pub fn is_pending<C: GrantClient>(m: &Member) -> bool {
    state::<C>(m).is_some_and(|s| s.pending.is_some())
}
