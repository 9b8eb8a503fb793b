//! qnetd: a Corosync QNetd quorum arbitrator.
//!
//! The protocol core is sans-IO (no sockets, no clock reads): [`wire`] (frames and
//! TLVs), [`session`] (per-client state machine and clusters), [`cluster`] (the
//! data the algorithms see) and [`algo`] (the decision algorithms). The daemon
//! shell around it lives in the binary-facing modules.

pub mod algo;
pub mod certutil;
pub mod client;
pub mod cluster;
pub mod daemon;
pub mod ipc;
pub mod pki;
pub mod server;
pub mod session;
pub mod settings;
pub mod tls;
pub mod tool;
pub mod wire;
