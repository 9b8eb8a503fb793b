//! `2 Node LMS` decision algorithm (stub: the algo helper fills this in).

use super::{Ctx, DecisionAlgorithm};
use crate::cluster::ALGO_2NODELMS;
use crate::wire::{ErrorCode, Heuristics, NodeInfo, RingId, Vote};

pub struct TwoNodeLms;

impl DecisionAlgorithm for TwoNodeLms {
    fn number(&self) -> u16 {
        ALGO_2NODELMS
    }
    fn name(&self) -> &'static str {
        "2 Node LMS"
    }
    fn config_node_list_received(&self, _ctx: &mut Ctx, _t: usize, _seq: u32, _v: Option<u64>, _nodes: &[NodeInfo], _initial: bool) -> Result<Vote, ErrorCode> {
        todo!()
    }
    fn membership_node_list_received(&self, _ctx: &mut Ctx, _t: usize, _seq: u32, _ring: RingId, _nodes: &[NodeInfo], _h: Heuristics) -> Result<Vote, ErrorCode> {
        todo!()
    }
    fn quorum_node_list_received(&self, _ctx: &mut Ctx, _t: usize, _seq: u32, _q: bool, _nodes: &[NodeInfo]) -> Result<Vote, ErrorCode> {
        todo!()
    }
    fn ask_for_vote_received(&self, _ctx: &mut Ctx, _t: usize, _seq: u32) -> Result<Vote, ErrorCode> {
        todo!()
    }
    fn heuristics_change_received(&self, _ctx: &mut Ctx, _t: usize, _seq: u32, _h: Heuristics) -> Result<Vote, ErrorCode> {
        todo!()
    }
}
