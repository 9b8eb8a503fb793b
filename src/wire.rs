//! The QNetd wire format: 6-byte frames of TLV options (see `shared/spec/wire.md`).
//!
//! Sans-IO: nothing here touches a socket. [`FrameReader`] cuts a byte stream into
//! frames without ever consuming a byte past the end of the current frame (the bytes
//! after STARTTLS belong to TLS), [`decode`] turns a frame body into a [`Message`], and
//! [`Message::encode`] writes the options in the exact order the C qnetd does, so our
//! replies are byte-identical to its replies for the same content.

use std::fmt;

/// Size of the frame header: u16 message type + u32 body length.
pub const HEADER_LEN: usize = 6;

/// Message types 0..=17. Anything >= 18 is skipped by the frame reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum MsgType {
    Preinit = 0,
    PreinitReply = 1,
    StartTls = 2,
    Init = 3,
    InitReply = 4,
    ServerError = 5,
    SetOption = 6,
    SetOptionReply = 7,
    EchoRequest = 8,
    EchoReply = 9,
    NodeList = 10,
    NodeListReply = 11,
    AskForVote = 12,
    AskForVoteReply = 13,
    VoteInfo = 14,
    VoteInfoReply = 15,
    HeuristicsChange = 16,
    HeuristicsChangeReply = 17,
}

impl MsgType {
    pub const ALL: [MsgType; 18] = [
        MsgType::Preinit,
        MsgType::PreinitReply,
        MsgType::StartTls,
        MsgType::Init,
        MsgType::InitReply,
        MsgType::ServerError,
        MsgType::SetOption,
        MsgType::SetOptionReply,
        MsgType::EchoRequest,
        MsgType::EchoReply,
        MsgType::NodeList,
        MsgType::NodeListReply,
        MsgType::AskForVote,
        MsgType::AskForVoteReply,
        MsgType::VoteInfo,
        MsgType::VoteInfoReply,
        MsgType::HeuristicsChange,
        MsgType::HeuristicsChangeReply,
    ];

    pub fn from_u16(v: u16) -> Option<MsgType> {
        Self::ALL.get(v as usize).copied()
    }
}

/// Option (TLV) numbers 0..=23.
pub mod opt {
    pub const MSG_SEQ_NUMBER: u16 = 0;
    pub const CLUSTER_NAME: u16 = 1;
    pub const TLS_SUPPORTED: u16 = 2;
    pub const TLS_CLIENT_CERT_REQUIRED: u16 = 3;
    pub const SUPPORTED_MESSAGES: u16 = 4;
    pub const SUPPORTED_OPTIONS: u16 = 5;
    pub const REPLY_ERROR_CODE: u16 = 6;
    pub const SERVER_MAXIMUM_REQUEST_SIZE: u16 = 7;
    pub const SERVER_MAXIMUM_REPLY_SIZE: u16 = 8;
    pub const NODE_ID: u16 = 9;
    pub const SUPPORTED_DECISION_ALGORITHMS: u16 = 10;
    pub const DECISION_ALGORITHM: u16 = 11;
    pub const HEARTBEAT_INTERVAL: u16 = 12;
    pub const RING_ID: u16 = 13;
    pub const CONFIG_VERSION: u16 = 14;
    pub const DATA_CENTER_ID: u16 = 15;
    pub const NODE_STATE: u16 = 16;
    pub const NODE_INFO: u16 = 17;
    pub const NODE_LIST_TYPE: u16 = 18;
    pub const VOTE: u16 = 19;
    pub const QUORATE: u16 = 20;
    pub const TIE_BREAKER: u16 = 21;
    pub const HEURISTICS: u16 = 22;
    pub const KEEP_ACTIVE_PARTITION_TIE_BREAKER: u16 = 23;
    /// Number of options the server knows (advertised as 0..COUNT).
    pub const COUNT: u16 = 24;
}

/// Option 2. 0 = unsupported (off), 1 = supported (on), 2 = required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TlsSupported {
    Unsupported = 0,
    Supported = 1,
    Required = 2,
}

/// Option 16 (inside NODE_INFO). 0 ("not set") is never on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NodeState {
    Member = 1,
    Dead = 2,
    Leaving = 3,
}

/// Option 18.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NodeListType {
    InitialConfig = 0,
    ChangedConfig = 1,
    Membership = 2,
    Quorum = 3,
}

/// Option 19. 0 ("undefined") is never on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Vote {
    Ack = 1,
    Nack = 2,
    AskLater = 3,
    WaitForReply = 4,
    NoChange = 5,
}

impl Vote {
    /// Name as `corosync-qnetd-tool -l` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Vote::Ack => "ACK",
            Vote::Nack => "NACK",
            Vote::AskLater => "Ask later",
            Vote::WaitForReply => "Wait for reply",
            Vote::NoChange => "No change",
        }
    }
}

/// Option 22. `Undefined` is never on the wire; it is what "absent" means.
/// Algorithms order them pass > undefined > fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Heuristics {
    #[default]
    Undefined = 0,
    Pass = 1,
    Fail = 2,
}

impl Heuristics {
    /// Rank for comparisons: pass (2) > undefined (1) > fail (0).
    pub fn rank(self) -> u8 {
        match self {
            Heuristics::Pass => 2,
            Heuristics::Undefined => 1,
            Heuristics::Fail => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Heuristics::Undefined => "Undefined",
            Heuristics::Pass => "Pass",
            Heuristics::Fail => "Fail",
        }
    }
}

/// Option 21, tie-breaker mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TieBreakerMode {
    Lowest = 1,
    Highest = 2,
    NodeId = 3,
}

/// Option 21. `node_id` is 0 unless the mode is `NodeId` (the decoder forces it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TieBreaker {
    pub mode: TieBreakerMode,
    pub node_id: u32,
}

impl TieBreaker {
    /// Text as `corosync-qnetd-tool -l` prints it.
    pub fn describe(&self) -> String {
        match self.mode {
            TieBreakerMode::Lowest => "Node with lowest node ID".to_string(),
            TieBreakerMode::Highest => "Node with highest node ID".to_string(),
            TieBreakerMode::NodeId => format!("Node with node ID {}", self.node_id),
        }
    }
}

/// Option 13: corosync ring id (representative node id + ring sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct RingId {
    pub node_id: u32,
    pub seq: u64,
}

impl fmt::Display for RingId {
    /// `corosync-qnetd-tool` form: lowercase hex, no padding, e.g. `1.1b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}.{:x}", self.node_id, self.seq)
    }
}

/// One NODE_INFO (option 17) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// Never 0 (the decoder rejects 0).
    pub node_id: u32,
    /// 0 = not set (then not emitted).
    pub data_center_id: u32,
    pub node_state: Option<NodeState>,
}

impl NodeInfo {
    pub fn new(node_id: u32) -> Self {
        NodeInfo { node_id, data_center_id: 0, node_state: None }
    }
}

/// Reply error codes (option 6) the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    NoError = 0,
    UnsupportedNeededMessage = 1,
    UnsupportedNeededOption = 2,
    TlsRequired = 3,
    UnsupportedMessage = 4,
    MessageTooLong = 5,
    PreinitRequired = 6,
    DoesntContainRequiredOption = 7,
    UnexpectedMessage = 8,
    ErrorDecodingMsg = 9,
    InternalError = 10,
    InitRequired = 11,
    UnsupportedDecisionAlgorithm = 12,
    InvalidHeartbeatInterval = 13,
    UnsupportedDecisionAlgorithmMessage = 14,
    TieBreakerDiffersFromOtherNodes = 15,
    AlgorithmDiffersFromOtherNodes = 16,
    DuplicateNodeId = 17,
    InvalidConfigNodeList = 18,
    InvalidMembershipNodeList = 19,
}

/// A decoded message: every option that may appear, `None` when absent.
/// The same struct serves both directions (the test client and the load generator
/// build client messages with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub msg_type: MsgType,
    pub seq: Option<u32>,
    pub cluster_name: Option<Vec<u8>>,
    pub tls_supported: Option<TlsSupported>,
    /// Any non-zero byte decodes as `true`.
    pub tls_client_cert_required: Option<bool>,
    pub supported_messages: Option<Vec<u16>>,
    pub supported_options: Option<Vec<u16>>,
    /// Not range-checked on decode (any u16).
    pub reply_error_code: Option<u16>,
    pub server_max_request_size: Option<u32>,
    pub server_max_reply_size: Option<u32>,
    pub node_id: Option<u32>,
    pub supported_algorithms: Option<Vec<u16>>,
    /// Not range-checked on decode (INIT handling checks it).
    pub algorithm: Option<u16>,
    pub heartbeat_interval: Option<u32>,
    pub ring_id: Option<RingId>,
    pub config_version: Option<u64>,
    /// Top-level option 15: decoded and validated, never used by the server.
    pub data_center_id: Option<u32>,
    /// Top-level option 16: decoded and validated, never used by the server.
    pub node_state: Option<NodeState>,
    /// All NODE_INFO options, in order.
    pub nodes: Vec<NodeInfo>,
    pub node_list_type: Option<NodeListType>,
    pub vote: Option<Vote>,
    pub quorate: Option<bool>,
    pub tie_breaker: Option<TieBreaker>,
    pub heuristics: Option<Heuristics>,
    pub kap: Option<bool>,
}

impl Message {
    /// An empty message of the given type (no options).
    pub fn new(msg_type: MsgType) -> Self {
        Message {
            msg_type,
            seq: None,
            cluster_name: None,
            tls_supported: None,
            tls_client_cert_required: None,
            supported_messages: None,
            supported_options: None,
            reply_error_code: None,
            server_max_request_size: None,
            server_max_reply_size: None,
            node_id: None,
            supported_algorithms: None,
            algorithm: None,
            heartbeat_interval: None,
            ring_id: None,
            config_version: None,
            data_center_id: None,
            node_state: None,
            nodes: Vec::new(),
            node_list_type: None,
            vote: None,
            quorate: None,
            tie_breaker: None,
            heuristics: None,
            kap: None,
        }
    }

    /// Encode as a complete frame (header + TLVs).
    ///
    /// Options are written in the order the C implementation writes them for this
    /// message type (server messages: wire.md §6; client messages: the real client's
    /// order); absent options are skipped. Message types without a fixed order use
    /// ascending option numbers.
    pub fn encode(&self) -> Vec<u8> {
        todo!("wire helper")
    }
}

/// Why a frame body could not be decoded. Every variant is answered with
/// SERVER_ERROR 9 (ERROR_DECODING_MSG).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The seq number, if a valid seq option was decoded before the fault
    /// (the C server echoes it only then).
    pub seq: Option<u32>,
    pub reason: DecodeErrorReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorReason {
    EmptyBody,
    TruncatedTlv,
    BadLength { option: u16 },
    BadValue { option: u16 },
    BadNodeInfo,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            DecodeErrorReason::EmptyBody => write!(f, "empty message body"),
            DecodeErrorReason::TruncatedTlv => write!(f, "option extends past the end of the message"),
            DecodeErrorReason::BadLength { option } => write!(f, "option {option} has a wrong length"),
            DecodeErrorReason::BadValue { option } => write!(f, "option {option} has an invalid value"),
            DecodeErrorReason::BadNodeInfo => write!(f, "malformed node info option"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decode a frame body (the bytes after the 6-byte header) of a known message type.
pub fn decode(msg_type: MsgType, body: &[u8]) -> Result<Message, DecodeError> {
    let _ = (msg_type, body);
    todo!("wire helper")
}

/// One complete frame cut out of the inbound stream by [`FrameReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A frame of a known type within the size limit. `raw` is the whole frame,
    /// header included (ECHO_REPLY is a byte copy of it).
    Message { msg_type: MsgType, raw: Vec<u8> },
    /// A frame the reader discarded: unknown type (code 4, or 0 for the
    /// zero-length quirk) or too long (code 5). Answer SERVER_ERROR(code) without seq.
    Skipped { code: ErrorCode },
}

impl Frame {
    /// The body (after the header) of a `Message` frame.
    pub fn body(&self) -> &[u8] {
        match self {
            Frame::Message { raw, .. } => &raw[HEADER_LEN..],
            Frame::Skipped { .. } => &[],
        }
    }
}

/// Cuts an inbound byte stream into frames.
///
/// Never consumes a byte beyond the end of the frame it completes, and never
/// buffers the body of a frame it is skipping (so a 4 GiB length costs nothing).
#[derive(Debug)]
pub struct FrameReader {
    max_receive_size: usize,
    // implementation fields are the wire helper's
}

impl FrameReader {
    /// `max_receive_size` is the limit for header + body (`max_client_receive_size`).
    pub fn new(max_receive_size: usize) -> Self {
        FrameReader { max_receive_size }
    }

    /// Consume bytes from `data`, stopping at the end of the first frame completed.
    /// Returns the number of bytes consumed and the completed frame, if any.
    /// Call again with the rest of `data` to continue.
    pub fn feed(&mut self, data: &[u8]) -> (usize, Option<Frame>) {
        let _ = (data, self.max_receive_size);
        todo!("wire helper")
    }

    /// True when no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        todo!("wire helper")
    }
}
