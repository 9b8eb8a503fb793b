//! Test harness for the decision algorithms: drives callbacks exactly as the
//! session layer does, so algorithm tests see the same data the real server
//! would give them.
//!
//! The one rule that matters most (algorithms.md §2, session.md §5.6/§5.9): a
//! callback runs *before* the trigger's new list / ring id / heuristics are
//! stored, and they are stored only if the callback succeeded. The harness
//! stores them afterwards and records the returned vote, just like the session.

use super::{Ctx, DecisionAlgorithm, TimerOutcome};
use crate::cluster::{Cluster, ConnId, Member, Millis};
use crate::wire::{ErrorCode, Heuristics, NodeInfo, RingId, TieBreaker, TieBreakerMode, Vote};

pub use crate::wire::Heuristics::{Fail, Pass, Undefined};
pub use crate::wire::Vote::{Ack, AskLater, Nack, NoChange, WaitForReply};

pub fn ring(node_id: u32, seq: u64) -> RingId {
    RingId { node_id, seq }
}

pub fn nodes(ids: &[u32]) -> Vec<NodeInfo> {
    ids.iter().map(|&id| NodeInfo::new(id)).collect()
}

pub fn lowest() -> TieBreaker {
    TieBreaker { mode: TieBreakerMode::Lowest, node_id: 0 }
}

pub fn highest() -> TieBreaker {
    TieBreaker { mode: TieBreakerMode::Highest, node_id: 0 }
}

pub fn nominated(node_id: u32) -> TieBreaker {
    TieBreaker { mode: TieBreakerMode::NodeId, node_id }
}

/// A VOTE_INFO as the recipient sees it (node id instead of connection id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vi {
    pub node: u32,
    pub seq: u32,
    pub vote: Vote,
    pub ring: RingId,
}

pub fn vi(node: u32, seq: u32, vote: Vote, ring: RingId) -> Vi {
    Vi { node, seq, vote, ring }
}

/// What the trigger's message produced: the VOTE_INFOs queued (in order, all
/// sent before the reply) and the reply vote or error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub vis: Vec<Vi>,
    pub vote: Result<Vote, ErrorCode>,
}

/// Reply with `vote` preceded by `vis`.
pub fn reply(vis: Vec<Vi>, vote: Vote) -> Reply {
    Reply { vis, vote: Ok(vote) }
}

/// SERVER_ERROR(code), nothing queued.
pub fn error(code: ErrorCode) -> Reply {
    Reply { vis: Vec::new(), vote: Err(code) }
}

pub struct Harness {
    algo: &'static dyn DecisionAlgorithm,
    pub cluster: Cluster,
    pub now: Millis,
    next_conn: ConnId,
    next_seq: u32,
    /// Settings given to clients added from now on.
    pub tie_breaker: TieBreaker,
    pub kap: bool,
    pub heartbeat: u32,
}

impl Harness {
    /// A cluster for algorithm `number`; clients default to the lowest
    /// tie-breaker, KAP off, heartbeat 8000 ms (the examples' setting).
    pub fn new(number: u16) -> Self {
        Harness {
            algo: super::lookup(number).expect("algorithm registered"),
            cluster: Cluster::new(b"cluster".to_vec()),
            now: 1_000,
            next_conn: 1,
            next_seq: 1,
            tie_breaker: lowest(),
            kap: false,
            heartbeat: 8_000,
        }
    }

    pub fn idx(&self, node: u32) -> usize {
        self.cluster.index_of_node(node).unwrap_or_else(|| panic!("node {node} not connected"))
    }

    pub fn member(&self, node: u32) -> &Member {
        &self.cluster.members[self.idx(node)]
    }

    pub fn member_mut(&mut self, node: u32) -> &mut Member {
        let i = self.idx(node);
        &mut self.cluster.members[i]
    }

    /// Successful INIT: insert in node-id order, then client_init (rolled back on error).
    pub fn add(&mut self, node: u32, init_ring: RingId) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let mut m = Member::new(conn, node, self.algo.number(), self.tie_breaker);
        m.heartbeat_interval = self.heartbeat;
        m.kap = self.kap;
        m.ring_id = init_ring;
        let idx = self.cluster.insert(m);
        let (r, vis) = self.call(|a, ctx| a.client_init(ctx, idx));
        assert!(vis.is_empty(), "client_init queued VOTE_INFO");
        assert_eq!(r, Ok(()), "client_init failed");
    }

    fn seq(&mut self) -> u32 {
        self.next_seq += 1;
        self.next_seq
    }

    fn call<R>(&mut self, f: impl FnOnce(&dyn DecisionAlgorithm, &mut Ctx) -> R) -> (R, Vec<Vi>) {
        let mut out = Vec::new();
        let r = {
            let mut ctx = Ctx { now: self.now, cluster: &mut self.cluster, out: &mut out };
            f(self.algo, &mut ctx)
        };
        let vis = out
            .iter()
            .map(|o| {
                let i = self.cluster.index_of_conn(o.conn).expect("VOTE_INFO to a cluster member");
                let m = &self.cluster.members[i];
                assert_eq!(m.last_sent_vote, Some(o.vote), "VOTE_INFO not recorded as last sent vote");
                Vi { node: m.node_id, seq: o.seq, vote: o.vote, ring: o.ring_id }
            })
            .collect();
        (r, vis)
    }

    fn finish(&mut self, t: usize, r: Result<Vote, ErrorCode>, vis: Vec<Vi>) -> Reply {
        if let Ok(v) = r {
            self.cluster.members[t].record_vote(v);
        }
        Reply { vis, vote: r }
    }

    pub fn config(&mut self, node: u32, ids: &[u32], initial: bool) -> Reply {
        let t = self.idx(node);
        let list = nodes(ids);
        let seq = self.seq();
        let version = Some(1);
        let (r, vis) = self.call(|a, ctx| a.config_node_list_received(ctx, t, seq, version, &list, initial));
        if r.is_ok() {
            let m = &mut self.cluster.members[t];
            m.config = list;
            m.config_version = version;
        }
        self.finish(t, r, vis)
    }

    pub fn membership(&mut self, node: u32, ring_id: RingId, ids: &[u32], h: Heuristics) -> Reply {
        let t = self.idx(node);
        let list = nodes(ids);
        let seq = self.seq();
        let (r, vis) = self.call(|a, ctx| a.membership_node_list_received(ctx, t, seq, ring_id, &list, h));
        if r.is_ok() {
            let m = &mut self.cluster.members[t];
            m.membership = list;
            m.ring_id = ring_id;
            m.membership_heuristics = h;
            m.heuristics = h;
        }
        self.finish(t, r, vis)
    }

    pub fn quorum(&mut self, node: u32, ids: &[u32]) -> Reply {
        let t = self.idx(node);
        let list = nodes(ids);
        let seq = self.seq();
        let (r, vis) = self.call(|a, ctx| a.quorum_node_list_received(ctx, t, seq, true, &list));
        if r.is_ok() {
            self.cluster.members[t].quorum = list;
        }
        self.finish(t, r, vis)
    }

    pub fn ask(&mut self, node: u32) -> Reply {
        let t = self.idx(node);
        let seq = self.seq();
        let (r, vis) = self.call(|a, ctx| a.ask_for_vote_received(ctx, t, seq));
        self.finish(t, r, vis)
    }

    pub fn heuristics_change(&mut self, node: u32, h: Heuristics) -> Reply {
        let t = self.idx(node);
        let seq = self.seq();
        let (r, vis) = self.call(|a, ctx| a.heuristics_change_received(ctx, t, seq, h));
        if r.is_ok() {
            let m = &mut self.cluster.members[t];
            m.regular_heuristics = h;
            m.heuristics = h;
        }
        self.finish(t, r, vis)
    }

    /// VOTE_INFO_REPLY(seq); returns the VOTE_INFOs it caused (no reply is sent).
    pub fn vote_info_reply(&mut self, node: u32, seq: u32) -> Vec<Vi> {
        let t = self.idx(node);
        let (r, vis) = self.call(|a, ctx| a.vote_info_reply_received(ctx, t, seq));
        assert_eq!(r, Ok(()), "vote_info_reply_received failed");
        vis
    }

    /// Teardown: callback while still a member, then removal. VOTE_INFOs to
    /// the leaving client itself are dropped, as the session does.
    pub fn disconnect(&mut self, node: u32, server_going_down: bool) -> Vec<Vi> {
        let t = self.idx(node);
        let ((), vis) = self.call(|a, ctx| a.client_disconnect(ctx, t, server_going_down));
        self.cluster.members.remove(t);
        vis.into_iter().filter(|v| v.node != node).collect()
    }

    /// Expiry of `node`'s algo timer, handled like the generic timer layer
    /// (algorithms.md §7): time moves to the deadline, the timer is disarmed,
    /// the callback runs; VOTE_INFOs it queued go out first, then send_vote →
    /// VOTE_INFO(++timer_vote_seq, vote, last_ring_id) recorded as last sent
    /// vote; reschedule → armed again. Returns every VOTE_INFO in send order.
    pub fn fire_timer(&mut self, node: u32) -> (TimerOutcome, Vec<Vi>) {
        let t = self.idx(node);
        let (deadline, interval) = self.cluster.members[t].algo_timer.expect("timer armed");
        self.now = self.now.max(deadline);
        self.cluster.members[t].algo_timer = None;
        let (out, mut vis) = self.call(|a, ctx| a.timer_callback(ctx, t));
        let now = self.now;
        let t = self.idx(node);
        let m = &mut self.cluster.members[t];
        if out.error.is_none() {
            if let Some(v) = out.send_vote {
                m.timer_vote_seq = m.timer_vote_seq.wrapping_add(1);
                m.record_vote(v);
                vis.push(Vi { node, seq: m.timer_vote_seq, vote: v, ring: m.ring_id });
            }
            if out.reschedule && m.algo_timer.is_none() {
                m.algo_timer = Some((now + interval, interval));
            }
        }
        (out, vis)
    }
}
