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

impl ErrorCode {
    /// The code for a received option 6 value; `None` for numbers qnetd does not
    /// define (the decoder accepts any u16, so callers must handle that case).
    pub fn from_u16(v: u16) -> Option<ErrorCode> {
        use ErrorCode::*;
        const ALL: [ErrorCode; 20] = [
            NoError,
            UnsupportedNeededMessage,
            UnsupportedNeededOption,
            TlsRequired,
            UnsupportedMessage,
            MessageTooLong,
            PreinitRequired,
            DoesntContainRequiredOption,
            UnexpectedMessage,
            ErrorDecodingMsg,
            InternalError,
            InitRequired,
            UnsupportedDecisionAlgorithm,
            InvalidHeartbeatInterval,
            UnsupportedDecisionAlgorithmMessage,
            TieBreakerDiffersFromOtherNodes,
            AlgorithmDiffersFromOtherNodes,
            DuplicateNodeId,
            InvalidConfigNodeList,
            InvalidMembershipNodeList,
        ];
        ALL.get(usize::from(v)).copied()
    }
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
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&(self.msg_type as u16).to_be_bytes());
        buf.extend_from_slice(&[0; 4]);
        let fixed = emit_order(self.msg_type);
        for &option in fixed {
            self.encode_option(&mut buf, option);
        }
        // Whatever the fixed order does not name still goes out (ascending), so a
        // message built by a test or a fuzzer never loses a field on the way.
        for option in 0..opt::COUNT {
            if !fixed.contains(&option) {
                self.encode_option(&mut buf, option);
            }
        }
        // A body over 4 GiB cannot be built from real data (it would take ~270
        // million NODE_INFO options); saturate rather than wrap.
        let body_len = u32::try_from(buf.len() - HEADER_LEN).unwrap_or(u32::MAX);
        buf[2..HEADER_LEN].copy_from_slice(&body_len.to_be_bytes());
        buf
    }

    /// Append option `option` if this message carries it.
    ///
    /// `Some(Heuristics::Undefined)` is not written: 0 is not a valid wire value
    /// (the C encoder refuses it too), so "undefined" and "absent" are the same
    /// thing on the wire.
    fn encode_option(&self, buf: &mut Vec<u8>, option: u16) {
        match option {
            opt::MSG_SEQ_NUMBER => put_u32(buf, option, self.seq),
            opt::CLUSTER_NAME => {
                if let Some(name) = &self.cluster_name {
                    put_tlv(buf, option, name);
                }
            }
            opt::TLS_SUPPORTED => put_u8(buf, option, self.tls_supported.map(|v| v as u8)),
            opt::TLS_CLIENT_CERT_REQUIRED => put_u8(buf, option, self.tls_client_cert_required.map(u8::from)),
            opt::SUPPORTED_MESSAGES => put_u16_array(buf, option, self.supported_messages.as_deref()),
            opt::SUPPORTED_OPTIONS => put_u16_array(buf, option, self.supported_options.as_deref()),
            opt::REPLY_ERROR_CODE => put_u16(buf, option, self.reply_error_code),
            opt::SERVER_MAXIMUM_REQUEST_SIZE => put_u32(buf, option, self.server_max_request_size),
            opt::SERVER_MAXIMUM_REPLY_SIZE => put_u32(buf, option, self.server_max_reply_size),
            opt::NODE_ID => put_u32(buf, option, self.node_id),
            opt::SUPPORTED_DECISION_ALGORITHMS => put_u16_array(buf, option, self.supported_algorithms.as_deref()),
            opt::DECISION_ALGORITHM => put_u16(buf, option, self.algorithm),
            opt::HEARTBEAT_INTERVAL => put_u32(buf, option, self.heartbeat_interval),
            opt::RING_ID => {
                if let Some(ring_id) = self.ring_id {
                    let mut v = [0u8; 12];
                    v[..4].copy_from_slice(&ring_id.node_id.to_be_bytes());
                    v[4..].copy_from_slice(&ring_id.seq.to_be_bytes());
                    put_tlv(buf, option, &v);
                }
            }
            opt::CONFIG_VERSION => {
                if let Some(v) = self.config_version {
                    put_tlv(buf, option, &v.to_be_bytes());
                }
            }
            opt::DATA_CENTER_ID => put_u32(buf, option, self.data_center_id),
            opt::NODE_STATE => put_u8(buf, option, self.node_state.map(|v| v as u8)),
            opt::NODE_INFO => {
                for node in &self.nodes {
                    let mut nested = Vec::with_capacity(17);
                    put_u32(&mut nested, opt::NODE_ID, Some(node.node_id));
                    if node.data_center_id != 0 {
                        put_u32(&mut nested, opt::DATA_CENTER_ID, Some(node.data_center_id));
                    }
                    put_u8(&mut nested, opt::NODE_STATE, node.node_state.map(|v| v as u8));
                    put_tlv(buf, option, &nested);
                }
            }
            opt::NODE_LIST_TYPE => put_u8(buf, option, self.node_list_type.map(|v| v as u8)),
            opt::VOTE => put_u8(buf, option, self.vote.map(|v| v as u8)),
            opt::QUORATE => put_u8(buf, option, self.quorate.map(u8::from)),
            opt::TIE_BREAKER => {
                if let Some(tb) = self.tie_breaker {
                    let node_id = match tb.mode {
                        TieBreakerMode::NodeId => tb.node_id,
                        TieBreakerMode::Lowest | TieBreakerMode::Highest => 0,
                    };
                    let mut v = [0u8; 5];
                    v[0] = tb.mode as u8;
                    v[1..].copy_from_slice(&node_id.to_be_bytes());
                    put_tlv(buf, option, &v);
                }
            }
            opt::HEURISTICS => {
                let h = self.heuristics.filter(|h| *h != Heuristics::Undefined);
                put_u8(buf, option, h.map(|v| v as u8));
            }
            opt::KEEP_ACTIVE_PARTITION_TIE_BREAKER => put_u8(buf, option, self.kap.map(u8::from)),
            _ => {}
        }
    }
}

/// The order in which the C programs write the options of each message type.
///
/// Server messages follow msg.c's `msg_create_*` (wire.md §6); client messages
/// follow the real qdevice client so that the test client and the load generator
/// produce the same bytes a real client does. Options not listed here are emitted
/// afterwards in ascending order.
fn emit_order(msg_type: MsgType) -> &'static [u16] {
    use opt::*;
    match msg_type {
        MsgType::Preinit => &[MSG_SEQ_NUMBER, CLUSTER_NAME],
        MsgType::PreinitReply => &[MSG_SEQ_NUMBER, TLS_SUPPORTED, TLS_CLIENT_CERT_REQUIRED],
        MsgType::Init => &[
            MSG_SEQ_NUMBER,
            SUPPORTED_MESSAGES,
            SUPPORTED_OPTIONS,
            NODE_ID,
            DECISION_ALGORITHM,
            HEARTBEAT_INTERVAL,
            TIE_BREAKER,
            RING_ID,
        ],
        MsgType::InitReply => &[
            REPLY_ERROR_CODE,
            SUPPORTED_MESSAGES,
            SUPPORTED_OPTIONS,
            MSG_SEQ_NUMBER,
            SERVER_MAXIMUM_REQUEST_SIZE,
            SERVER_MAXIMUM_REPLY_SIZE,
            SUPPORTED_DECISION_ALGORITHMS,
        ],
        MsgType::ServerError => &[MSG_SEQ_NUMBER, REPLY_ERROR_CODE],
        MsgType::SetOption | MsgType::SetOptionReply => {
            &[MSG_SEQ_NUMBER, HEARTBEAT_INTERVAL, KEEP_ACTIVE_PARTITION_TIE_BREAKER]
        }
        MsgType::NodeList => &[MSG_SEQ_NUMBER, NODE_LIST_TYPE, RING_ID, CONFIG_VERSION, QUORATE, NODE_INFO, HEURISTICS],
        MsgType::NodeListReply => &[MSG_SEQ_NUMBER, NODE_LIST_TYPE, RING_ID, VOTE],
        MsgType::AskForVoteReply | MsgType::VoteInfo => &[MSG_SEQ_NUMBER, VOTE, RING_ID],
        MsgType::HeuristicsChange => &[MSG_SEQ_NUMBER, HEURISTICS],
        MsgType::HeuristicsChangeReply => &[MSG_SEQ_NUMBER, VOTE, RING_ID, HEURISTICS],
        MsgType::StartTls
        | MsgType::EchoRequest
        | MsgType::EchoReply
        | MsgType::AskForVote
        | MsgType::VoteInfoReply => &[],
    }
}

/// Append one TLV. A value longer than the 16-bit length field allows is cut at
/// 65535 bytes: the C encoder would fail the whole message instead, but no value
/// the server emits can get near that size (cluster names arrive in a TLV).
fn put_tlv(buf: &mut Vec<u8>, option: u16, value: &[u8]) {
    let value = &value[..value.len().min(usize::from(u16::MAX))];
    buf.extend_from_slice(&option.to_be_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_be_bytes());
    buf.extend_from_slice(value);
}

fn put_u8(buf: &mut Vec<u8>, option: u16, value: Option<u8>) {
    if let Some(v) = value {
        put_tlv(buf, option, &[v]);
    }
}

fn put_u16(buf: &mut Vec<u8>, option: u16, value: Option<u16>) {
    if let Some(v) = value {
        put_tlv(buf, option, &v.to_be_bytes());
    }
}

fn put_u32(buf: &mut Vec<u8>, option: u16, value: Option<u32>) {
    if let Some(v) = value {
        put_tlv(buf, option, &v.to_be_bytes());
    }
}

/// At most 32767 entries fit a TLV; more are dropped (keeps the length even).
fn put_u16_array(buf: &mut Vec<u8>, option: u16, value: Option<&[u16]>) {
    if let Some(items) = value {
        let bytes: Vec<u8> = items.iter().take(usize::from(u16::MAX) / 2).flat_map(|v| v.to_be_bytes()).collect();
        put_tlv(buf, option, &bytes);
    }
}

/// The ECHO_REPLY for an ECHO_REQUEST: the request frame byte for byte, with only
/// the type changed to 9. Copying (instead of re-encoding a decoded message) keeps
/// unknown options and the option order exactly as the client sent them, as the C
/// server does.
pub fn echo_reply(raw_request_frame: &[u8]) -> Vec<u8> {
    let mut reply = raw_request_frame.to_vec();
    if let Some(type_field) = reply.get_mut(..2) {
        type_field.copy_from_slice(&(MsgType::EchoReply as u16).to_be_bytes());
    }
    reply
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
///
/// Options are decoded in order and the first fault stops decoding; the error
/// carries the seq decoded so far, because the C server echoes exactly that one in
/// its SERVER_ERROR 9 (a seq *after* the fault is never seen).
pub fn decode(msg_type: MsgType, body: &[u8]) -> Result<Message, DecodeError> {
    let mut msg = Message::new(msg_type);
    // The C iterator insists on at least one TLV, so an empty body is malformed.
    if body.is_empty() {
        return Err(DecodeError { seq: None, reason: DecodeErrorReason::EmptyBody });
    }
    for tlv in Tlvs::new(body) {
        let result = match tlv {
            Ok((option, value)) => decode_option(&mut msg, option, value),
            Err(Truncated) => Err(DecodeErrorReason::TruncatedTlv),
        };
        if let Err(reason) = result {
            return Err(DecodeError { seq: msg.seq, reason });
        }
    }
    Ok(msg)
}

/// A TLV header or value runs past the end of the enclosing bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Truncated;

/// Iterates over back-to-back TLVs; after the first `Err` it yields nothing more.
struct Tlvs<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Tlvs<'a> {
    fn new(data: &'a [u8]) -> Self {
        Tlvs { data, pos: 0 }
    }
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Result<(u16, &'a [u8]), Truncated>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        // Stop for good after a fault: the rest cannot be framed.
        self.pos = self.data.len();
        let &[t0, t1, l0, l1, ref after @ ..] = rest else {
            // 1-3 stray bytes: read as a TLV header cut short.
            return Some(Err(Truncated));
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let Some(value) = after.get(..len) else {
            return Some(Err(Truncated));
        };
        self.pos = self.data.len() - (after.len() - len);
        Some(Ok((u16::from_be_bytes([t0, t1]), value)))
    }
}

type OptResult<T> = Result<T, DecodeErrorReason>;

/// The value of a fixed-size option; any other length is a decode error.
fn fixed<const N: usize>(option: u16, value: &[u8]) -> OptResult<[u8; N]> {
    value.try_into().map_err(|_| DecodeErrorReason::BadLength { option })
}

fn get_u8(option: u16, value: &[u8]) -> OptResult<u8> {
    Ok(fixed::<1>(option, value)?[0])
}

fn get_u16(option: u16, value: &[u8]) -> OptResult<u16> {
    Ok(u16::from_be_bytes(fixed(option, value)?))
}

fn get_u32(option: u16, value: &[u8]) -> OptResult<u32> {
    Ok(u32::from_be_bytes(fixed(option, value)?))
}

fn get_u16_array(option: u16, value: &[u8]) -> OptResult<Vec<u16>> {
    if value.len() % 2 != 0 {
        return Err(DecodeErrorReason::BadLength { option });
    }
    Ok(value.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect())
}

/// A u8 option restricted to a set of values (`map` returns `None` outside it).
fn get_enum<T>(option: u16, value: &[u8], map: impl Fn(u8) -> Option<T>) -> OptResult<T> {
    map(get_u8(option, value)?).ok_or(DecodeErrorReason::BadValue { option })
}

fn tls_supported_from(v: u8) -> Option<TlsSupported> {
    match v {
        0 => Some(TlsSupported::Unsupported),
        1 => Some(TlsSupported::Supported),
        2 => Some(TlsSupported::Required),
        _ => None,
    }
}

fn node_state_from(v: u8) -> Option<NodeState> {
    match v {
        1 => Some(NodeState::Member),
        2 => Some(NodeState::Dead),
        3 => Some(NodeState::Leaving),
        _ => None,
    }
}

fn node_list_type_from(v: u8) -> Option<NodeListType> {
    match v {
        0 => Some(NodeListType::InitialConfig),
        1 => Some(NodeListType::ChangedConfig),
        2 => Some(NodeListType::Membership),
        3 => Some(NodeListType::Quorum),
        _ => None,
    }
}

fn vote_from(v: u8) -> Option<Vote> {
    match v {
        1 => Some(Vote::Ack),
        2 => Some(Vote::Nack),
        3 => Some(Vote::AskLater),
        4 => Some(Vote::WaitForReply),
        5 => Some(Vote::NoChange),
        _ => None,
    }
}

/// 0 ("undefined") is rejected: it only means "absent".
fn heuristics_from(v: u8) -> Option<Heuristics> {
    match v {
        1 => Some(Heuristics::Pass),
        2 => Some(Heuristics::Fail),
        _ => None,
    }
}

/// QUORATE and KAP: strictly 0 or 1 (unlike TLS_CLIENT_CERT_REQUIRED).
fn strict_bool_from(v: u8) -> Option<bool> {
    match v {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// Decode one top-level option into `msg`. A later occurrence overwrites an
/// earlier one (arrays included), except NODE_INFO which accumulates.
fn decode_option(msg: &mut Message, option: u16, value: &[u8]) -> OptResult<()> {
    match option {
        opt::MSG_SEQ_NUMBER => msg.seq = Some(get_u32(option, value)?),
        opt::CLUSTER_NAME => msg.cluster_name = Some(value.to_vec()),
        opt::TLS_SUPPORTED => msg.tls_supported = Some(get_enum(option, value, tls_supported_from)?),
        opt::TLS_CLIENT_CERT_REQUIRED => msg.tls_client_cert_required = Some(get_u8(option, value)? != 0),
        opt::SUPPORTED_MESSAGES => msg.supported_messages = Some(get_u16_array(option, value)?),
        opt::SUPPORTED_OPTIONS => msg.supported_options = Some(get_u16_array(option, value)?),
        opt::REPLY_ERROR_CODE => msg.reply_error_code = Some(get_u16(option, value)?),
        opt::SERVER_MAXIMUM_REQUEST_SIZE => msg.server_max_request_size = Some(get_u32(option, value)?),
        opt::SERVER_MAXIMUM_REPLY_SIZE => msg.server_max_reply_size = Some(get_u32(option, value)?),
        opt::NODE_ID => msg.node_id = Some(get_u32(option, value)?),
        opt::SUPPORTED_DECISION_ALGORITHMS => msg.supported_algorithms = Some(get_u16_array(option, value)?),
        opt::DECISION_ALGORITHM => msg.algorithm = Some(get_u16(option, value)?),
        opt::HEARTBEAT_INTERVAL => msg.heartbeat_interval = Some(get_u32(option, value)?),
        opt::RING_ID => {
            let v: [u8; 12] = fixed(option, value)?;
            let (node_id, seq) = v.split_at(4);
            msg.ring_id = Some(RingId {
                node_id: u32::from_be_bytes(fixed(option, node_id)?),
                seq: u64::from_be_bytes(fixed(option, seq)?),
            });
        }
        opt::CONFIG_VERSION => msg.config_version = Some(u64::from_be_bytes(fixed(option, value)?)),
        opt::DATA_CENTER_ID => msg.data_center_id = Some(get_u32(option, value)?),
        opt::NODE_STATE => msg.node_state = Some(get_enum(option, value, node_state_from)?),
        opt::NODE_INFO => msg.nodes.push(decode_node_info(value)?),
        opt::NODE_LIST_TYPE => msg.node_list_type = Some(get_enum(option, value, node_list_type_from)?),
        opt::VOTE => msg.vote = Some(get_enum(option, value, vote_from)?),
        opt::QUORATE => msg.quorate = Some(get_enum(option, value, strict_bool_from)?),
        opt::TIE_BREAKER => {
            let [mode, id @ ..]: [u8; 5] = fixed(option, value)?;
            let mode = match mode {
                1 => TieBreakerMode::Lowest,
                2 => TieBreakerMode::Highest,
                3 => TieBreakerMode::NodeId,
                _ => return Err(DecodeErrorReason::BadValue { option }),
            };
            // The id bytes mean nothing for lowest/highest; forcing 0 keeps two
            // equal tie-breakers equal however the peer filled them.
            let node_id = if mode == TieBreakerMode::NodeId { u32::from_be_bytes(id) } else { 0 };
            msg.tie_breaker = Some(TieBreaker { mode, node_id });
        }
        opt::HEURISTICS => msg.heuristics = Some(get_enum(option, value, heuristics_from)?),
        opt::KEEP_ACTIVE_PARTITION_TIE_BREAKER => msg.kap = Some(get_enum(option, value, strict_bool_from)?),
        // Unknown options are skipped unread, so newer clients can add options.
        _ => {}
    }
    Ok(())
}

/// Decode the nested TLV sequence of one NODE_INFO (wire.md §3.3). Any fault
/// inside it is reported as `BadNodeInfo`.
fn decode_node_info(value: &[u8]) -> OptResult<NodeInfo> {
    const BAD: DecodeErrorReason = DecodeErrorReason::BadNodeInfo;
    if value.is_empty() {
        return Err(BAD);
    }
    let mut node = NodeInfo::new(0);
    for tlv in Tlvs::new(value) {
        let (option, v) = tlv.map_err(|_| BAD)?;
        match option {
            opt::NODE_ID => node.node_id = get_u32(option, v).map_err(|_| BAD)?,
            opt::DATA_CENTER_ID => node.data_center_id = get_u32(option, v).map_err(|_| BAD)?,
            opt::NODE_STATE => node.node_state = Some(get_enum(option, v, node_state_from).map_err(|_| BAD)?),
            _ => {}
        }
    }
    // Checked after the loop: a later node id may replace an earlier 0.
    if node.node_id == 0 {
        return Err(BAD);
    }
    Ok(node)
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
            Frame::Message { raw, .. } => raw.get(HEADER_LEN..).unwrap_or(&[]),
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
    header: [u8; HEADER_LEN],
    /// Header bytes received so far; `HEADER_LEN` while in the body.
    header_len: usize,
    body: Body,
}

/// What happens to the body of the frame whose header is complete.
#[derive(Debug)]
enum Body {
    /// No header yet.
    None,
    /// Accepted frame: the whole frame so far (header included) and what is missing.
    Read { msg_type: MsgType, raw: Vec<u8>, remaining: usize },
    /// Skipped frame: only a count, the bytes themselves are dropped as they come.
    Skip { code: ErrorCode, remaining: u64 },
}

/// Initial buffer for an accepted frame. Frames grow the buffer only as their
/// bytes actually arrive, so a header announcing a large (but allowed) body does
/// not reserve memory up front.
const INITIAL_FRAME_CAPACITY: usize = 4096;

impl FrameReader {
    /// `max_receive_size` is the limit for header + body (`max_client_receive_size`).
    pub fn new(max_receive_size: usize) -> Self {
        FrameReader { max_receive_size, header: [0; HEADER_LEN], header_len: 0, body: Body::None }
    }

    /// Consume bytes from `data`, stopping at the end of the first frame completed.
    /// Returns the number of bytes consumed and the completed frame, if any.
    /// Call again with the rest of `data` to continue.
    ///
    /// When no frame is returned, all of `data` was consumed.
    pub fn feed(&mut self, data: &[u8]) -> (usize, Option<Frame>) {
        let mut used = 0;
        if self.header_len < HEADER_LEN {
            let take = (HEADER_LEN - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            used = take;
            if self.header_len < HEADER_LEN {
                return (used, None);
            }
            self.body = self.classify_header();
        }
        let rest = &data[used..];
        let done = match &mut self.body {
            Body::None => true, // unreachable: the header is complete here
            Body::Read { raw, remaining, .. } => {
                let take = (*remaining).min(rest.len());
                raw.extend_from_slice(&rest[..take]);
                *remaining -= take;
                used += take;
                *remaining == 0
            }
            Body::Skip { remaining, .. } => {
                let take = (*remaining).min(rest.len() as u64);
                *remaining -= take;
                // take <= rest.len(), so it fits in usize
                used += take as usize;
                *remaining == 0
            }
        };
        if !done {
            return (used, None);
        }
        self.header_len = 0;
        let frame = match std::mem::replace(&mut self.body, Body::None) {
            Body::Read { msg_type, raw, .. } => Some(Frame::Message { msg_type, raw }),
            Body::Skip { code, .. } => Some(Frame::Skipped { code }),
            Body::None => None,
        };
        (used, frame)
    }

    /// Decide, from a complete header, whether the body is kept or skipped
    /// (wire.md §2.1): the type is checked before the size.
    fn classify_header(&self) -> Body {
        let h = self.header;
        let msg_type = u16::from_be_bytes([h[0], h[1]]);
        let body_len = u32::from_be_bytes([h[2], h[3], h[4], h[5]]);
        let total = HEADER_LEN as u64 + u64::from(body_len);
        match MsgType::from_u16(msg_type) {
            // The C server completes a zero-length frame in the same step that
            // read its header, before it records the skip reason, and so answers
            // NO_ERROR (wire.md §2.1 quirk, observed); we answer the same so the
            // two servers stay indistinguishable on the wire.
            None if body_len == 0 => Body::Skip { code: ErrorCode::NoError, remaining: 0 },
            None => Body::Skip { code: ErrorCode::UnsupportedMessage, remaining: u64::from(body_len) },
            Some(_) if total > self.max_receive_size as u64 => {
                Body::Skip { code: ErrorCode::MessageTooLong, remaining: u64::from(body_len) }
            }
            Some(msg_type) => {
                // total <= max_receive_size, a usize, so this cannot truncate.
                let total = total as usize;
                let mut raw = Vec::with_capacity(total.min(INITIAL_FRAME_CAPACITY));
                raw.extend_from_slice(&h);
                Body::Read { msg_type, raw, remaining: total - HEADER_LEN }
            }
        }
    }

    /// True when no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        self.header_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Hex with any grouping: spaces, newlines and `|` are ignored.
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        assert!(digits.len() % 2 == 0, "odd hex string");
        digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
    }

    /// Build a TLV by hand (independent of the encoder under test).
    fn tlv(option: u16, value: &[u8]) -> Vec<u8> {
        let mut v = option.to_be_bytes().to_vec();
        v.extend_from_slice(&(value.len() as u16).to_be_bytes());
        v.extend_from_slice(value);
        v
    }

    fn seq_tlv(seq: u32) -> Vec<u8> {
        tlv(opt::MSG_SEQ_NUMBER, &seq.to_be_bytes())
    }

    /// Decode a complete frame given as bytes (header checked for consistency).
    fn decode_frame(frame: &[u8]) -> Message {
        let t = MsgType::from_u16(u16::from_be_bytes([frame[0], frame[1]])).unwrap();
        let len = u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]) as usize;
        assert_eq!(len, frame.len() - HEADER_LEN, "length field counts the body only");
        decode(t, &frame[HEADER_LEN..]).unwrap()
    }

    fn decode_err(body: &[u8]) -> DecodeError {
        decode(MsgType::EchoRequest, body).unwrap_err()
    }

    fn all_server_messages() -> Vec<u16> {
        (0..18).collect()
    }

    fn all_options() -> Vec<u16> {
        (0..24).collect()
    }

    // ---------------------------------------------------------------------
    // Captured frames (wire.md §6 and reference-output): byte-exact both ways.
    // ---------------------------------------------------------------------

    fn check_vector(bytes: &[u8], msg: &Message) {
        assert_eq!(hex_dump(&msg.encode()), hex_dump(bytes), "encode");
        assert_eq!(&decode_frame(bytes), msg, "decode");
    }

    fn hex_dump(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn vector_preinit_from_client() {
        let bytes = hex("0000 00000015 | 0000 0004 00000001 | 0001 0009 6d79636c7573746572");
        let mut m = Message::new(MsgType::Preinit);
        m.seq = Some(1);
        m.cluster_name = Some(b"mycluster".to_vec());
        check_vector(&bytes, &m);
    }

    #[test]
    fn vector_preinit_reply() {
        let bytes = hex("0001 00000012 | 0000 0004 00000001 | 0002 0001 01 | 0003 0001 01");
        let mut m = Message::new(MsgType::PreinitReply);
        m.seq = Some(1);
        m.tls_supported = Some(TlsSupported::Supported);
        m.tls_client_cert_required = Some(true);
        check_vector(&bytes, &m);
    }

    #[test]
    fn vector_init_reply_success_140_bytes() {
        let bytes = hex(
            "0004 00000086
             0006 0002 0000
             0004 0024 0000 0001 0002 0003 0004 0005 0006 0007 0008 0009 000a 000b 000c 000d 000e 000f 0010 0011
             0005 0030 0000 0001 0002 0003 0004 0005 0006 0007 0008 0009 000a 000b 000c 000d 000e 000f 0010 0011 0012 0013 0014 0015 0016 0017
             0000 0004 00000002
             0007 0004 00008000
             0008 0004 00008000
             000a 0008 0000 0001 0002 0003",
        );
        assert_eq!(bytes.len(), 140);
        let mut m = Message::new(MsgType::InitReply);
        m.reply_error_code = Some(ErrorCode::NoError as u16);
        m.supported_messages = Some(all_server_messages());
        m.supported_options = Some(all_options());
        m.seq = Some(2);
        m.server_max_request_size = Some(32768);
        m.server_max_reply_size = Some(32768);
        m.supported_algorithms = Some(vec![0, 1, 2, 3]);
        check_vector(&bytes, &m);
    }

    #[test]
    fn vector_init_reply_without_lists_keeps_order() {
        // INIT without options 4/5: code, seq, sizes, algorithms.
        let mut m = Message::new(MsgType::InitReply);
        m.reply_error_code = Some(ErrorCode::DuplicateNodeId as u16);
        m.seq = Some(7);
        m.server_max_request_size = Some(32768);
        m.server_max_reply_size = Some(32768);
        m.supported_algorithms = Some(vec![0, 1, 2, 3]);
        let expected = hex("0004 0000002a | 0006 0002 0011 | 0000 0004 00000007 | 0007 0004 00008000 |
             0008 0004 00008000 | 000a 0008 0000 0001 0002 0003");
        check_vector(&expected, &m);
    }

    #[test]
    fn vector_server_error_tls_required() {
        let bytes = hex("0005 0000000e | 0000 0004 00000002 | 0006 0002 0003");
        let mut m = Message::new(MsgType::ServerError);
        m.seq = Some(2);
        m.reply_error_code = Some(ErrorCode::TlsRequired as u16);
        check_vector(&bytes, &m);
    }

    #[test]
    fn vector_server_error_without_seq() {
        let mut m = Message::new(MsgType::ServerError);
        m.reply_error_code = Some(ErrorCode::UnsupportedMessage as u16);
        check_vector(&hex("0005 00000006 | 0006 0002 0004"), &m);
    }

    #[test]
    fn vector_set_option_reply() {
        let bytes = hex("0007 00000015 | 0000 0004 0000000a | 000c 0004 00001388 | 0017 0001 01");
        let mut m = Message::new(MsgType::SetOptionReply);
        m.seq = Some(10);
        m.heartbeat_interval = Some(5000);
        m.kap = Some(true);
        check_vector(&bytes, &m);
    }

    #[test]
    fn vector_node_list_reply() {
        let bytes = hex(
            "000b 00000022 | 0000 0004 0000000e | 0012 0001 00 | 000d 000c 00000001 0000000000000005 | 0013 0001 03",
        );
        let mut m = Message::new(MsgType::NodeListReply);
        m.seq = Some(14);
        m.node_list_type = Some(NodeListType::InitialConfig);
        m.ring_id = Some(RingId { node_id: 1, seq: 5 });
        m.vote = Some(Vote::AskLater);
        check_vector(&bytes, &m);
    }

    #[test]
    fn vector_vote_info() {
        let bytes = hex("000e 0000001d | 0000 0004 00000001 | 0013 0001 01 | 000d 000c 00000001 0000000000000006");
        let mut m = Message::new(MsgType::VoteInfo);
        m.seq = Some(1);
        m.vote = Some(Vote::Ack);
        m.ring_id = Some(RingId { node_id: 1, seq: 6 });
        check_vector(&bytes, &m);
    }

    /// reference-output/wire-preinit-and-tls-hello.txt: the 42 plaintext bytes a
    /// real client sends before its ClientHello, and the server's 24-byte reply.
    const CAPTURED_CLIENT_PLAINTEXT: &str = "
        00 00 00 00 00 16 00 00 00 04 00 00 00 01 00 01
        00 0a 6c 61 62 63 6c 75 73 74 65 72 00 02 00 00
        00 08 00 00 00 04 00 00 00 02";
    /// Start of a TLS record carrying a ClientHello (handshake, TLS 1.0 record version).
    const TLS_RECORD_START: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];

    #[test]
    fn vector_captured_preinit_and_starttls() {
        let bytes = hex(CAPTURED_CLIENT_PLAINTEXT);
        assert_eq!(bytes.len(), 42);
        let mut preinit = Message::new(MsgType::Preinit);
        preinit.seq = Some(1);
        preinit.cluster_name = Some(b"labcluster".to_vec());
        let mut starttls = Message::new(MsgType::StartTls);
        starttls.seq = Some(2);
        check_vector(&bytes[..28], &preinit);
        check_vector(&bytes[28..], &starttls);
    }

    #[test]
    fn vector_captured_preinit_reply() {
        let bytes = hex("00 01 00 00 00 12 00 00 00 04 00 00 00 01 00 02
             00 01 01 00 03 00 01 01");
        let mut m = Message::new(MsgType::PreinitReply);
        m.seq = Some(1);
        m.tls_supported = Some(TlsSupported::Supported);
        m.tls_client_cert_required = Some(true);
        check_vector(&bytes, &m);
    }

    #[test]
    fn reader_stops_at_starttls_so_tls_bytes_stay_unread() {
        let mut stream = hex(CAPTURED_CLIENT_PLAINTEXT);
        stream.extend_from_slice(TLS_RECORD_START);
        let mut r = FrameReader::new(32768);
        let (n1, f1) = r.feed(&stream);
        assert_eq!(n1, 28);
        assert_eq!(f1.as_ref().map(|f| f.body().len()), Some(22));
        assert!(matches!(f1, Some(Frame::Message { msg_type: MsgType::Preinit, .. })));
        let (n2, f2) = r.feed(&stream[n1..]);
        assert_eq!(n2, 14, "must stop exactly at the end of STARTTLS");
        match f2 {
            Some(Frame::Message { msg_type: MsgType::StartTls, raw }) => {
                assert_eq!(raw, stream[28..42].to_vec())
            }
            other => panic!("expected STARTTLS, got {other:?}"),
        }
        assert!(r.is_idle());
        assert_eq!(&stream[n1 + n2..], TLS_RECORD_START);
    }

    // ---------------------------------------------------------------------
    // Encoder order for client messages and the nested NODE_INFO form.
    // ---------------------------------------------------------------------

    /// Option numbers of a frame's TLVs, in order.
    fn option_order(frame: &[u8]) -> Vec<u16> {
        Tlvs::new(&frame[HEADER_LEN..]).map(|t| t.unwrap().0).collect()
    }

    fn full_message(t: MsgType) -> Message {
        let mut m = Message::new(t);
        m.seq = Some(1);
        m.cluster_name = Some(b"c".to_vec());
        m.tls_supported = Some(TlsSupported::Required);
        m.tls_client_cert_required = Some(false);
        m.supported_messages = Some(vec![0, 1]);
        m.supported_options = Some(vec![]);
        m.reply_error_code = Some(3);
        m.server_max_request_size = Some(1);
        m.server_max_reply_size = Some(2);
        m.node_id = Some(3);
        m.supported_algorithms = Some(vec![1]);
        m.algorithm = Some(1);
        m.heartbeat_interval = Some(8000);
        m.ring_id = Some(RingId { node_id: 1, seq: 2 });
        m.config_version = Some(9);
        m.data_center_id = Some(4);
        m.node_state = Some(NodeState::Leaving);
        m.nodes = vec![NodeInfo::new(1), NodeInfo::new(2)];
        m.node_list_type = Some(NodeListType::Quorum);
        m.vote = Some(Vote::NoChange);
        m.quorate = Some(true);
        m.tie_breaker = Some(TieBreaker { mode: TieBreakerMode::NodeId, node_id: 5 });
        m.heuristics = Some(Heuristics::Fail);
        m.kap = Some(false);
        m
    }

    #[test]
    fn emit_order_follows_c_then_ascending_for_the_rest() {
        let cases: &[(MsgType, &[u16])] = &[
            (MsgType::Preinit, &[0, 1]),
            (MsgType::PreinitReply, &[0, 2, 3]),
            (MsgType::Init, &[0, 4, 5, 9, 11, 12, 21, 13]),
            (MsgType::InitReply, &[6, 4, 5, 0, 7, 8, 10]),
            (MsgType::ServerError, &[0, 6]),
            (MsgType::SetOption, &[0, 12, 23]),
            (MsgType::SetOptionReply, &[0, 12, 23]),
            (MsgType::NodeList, &[0, 18, 13, 14, 20, 17, 17, 22]),
            (MsgType::NodeListReply, &[0, 18, 13, 19]),
            (MsgType::AskForVoteReply, &[0, 19, 13]),
            (MsgType::VoteInfo, &[0, 19, 13]),
            (MsgType::HeuristicsChange, &[0, 22]),
            (MsgType::HeuristicsChangeReply, &[0, 19, 13, 22]),
            (MsgType::StartTls, &[]),
            (MsgType::EchoRequest, &[]),
            (MsgType::EchoReply, &[]),
            (MsgType::AskForVote, &[]),
            (MsgType::VoteInfoReply, &[]),
        ];
        assert_eq!(cases.len(), 18);
        for &(t, prefix) in cases {
            let order = option_order(&full_message(t).encode());
            assert_eq!(&order[..prefix.len()], prefix, "{t:?}");
            let rest = &order[prefix.len()..];
            assert!(rest.windows(2).all(|w| w[0] <= w[1]), "{t:?}: rest ascending: {rest:?}");
            let mut all = order.clone();
            all.sort();
            all.dedup();
            assert_eq!(all, all_options(), "{t:?}: every option present exactly once (bar 17)");
        }
    }

    #[test]
    fn real_client_init_bytes() {
        let mut m = Message::new(MsgType::Init);
        m.seq = Some(3);
        m.supported_messages = Some(vec![0, 1]);
        m.supported_options = Some(vec![23]);
        m.node_id = Some(2);
        m.algorithm = Some(1);
        m.heartbeat_interval = Some(8000);
        m.tie_breaker = Some(TieBreaker { mode: TieBreakerMode::Lowest, node_id: 0 });
        m.ring_id = Some(RingId { node_id: 1, seq: 0x1b });
        let expected = hex("0003 00000045 | 0000 0004 00000003 | 0004 0004 0000 0001 | 0005 0002 0017 |
             0009 0004 00000002 | 000b 0002 0001 | 000c 0004 00001f40 | 0015 0005 01 00000000 |
             000d 000c 00000001 000000000000001b");
        check_vector(&expected, &m);
    }

    #[test]
    fn node_list_with_nested_node_info_bytes() {
        let mut m = Message::new(MsgType::NodeList);
        m.seq = Some(5);
        m.node_list_type = Some(NodeListType::Quorum);
        m.quorate = Some(false);
        m.nodes = vec![
            NodeInfo { node_id: 1, data_center_id: 0, node_state: Some(NodeState::Member) },
            NodeInfo { node_id: 2, data_center_id: 7, node_state: None },
            NodeInfo::new(3),
        ];
        let expected = hex("000a 00000043 | 0000 0004 00000005 | 0012 0001 03 | 0014 0001 00 |
             0011 000d 0009 0004 00000001 0010 0001 01 |
             0011 0010 0009 0004 00000002 000f 0004 00000007 |
             0011 0008 0009 0004 00000003");
        check_vector(&expected, &m);
    }

    #[test]
    fn tie_breaker_encodes_node_id_only_for_mode_3() {
        for (mode, id, wire) in [
            (TieBreakerMode::Lowest, 9, "01 00000000"),
            (TieBreakerMode::Highest, 9, "02 00000000"),
            (TieBreakerMode::NodeId, 9, "03 00000009"),
        ] {
            let mut m = Message::new(MsgType::Init);
            m.tie_breaker = Some(TieBreaker { mode, node_id: id });
            let mut expected = hex("0003 00000009 0015 0005");
            expected.extend(hex(wire));
            assert_eq!(m.encode(), expected);
        }
    }

    #[test]
    fn undefined_heuristics_is_not_emitted() {
        let mut m = Message::new(MsgType::NodeList);
        m.seq = Some(1);
        m.heuristics = Some(Heuristics::Undefined);
        assert_eq!(m.encode(), hex("000a 00000008 0000 0004 00000001"));
    }

    #[test]
    fn echo_reply_is_byte_copy_with_type_9() {
        // Unknown option 200 and odd option order must survive untouched.
        let mut frame = hex("0008 00000000");
        let mut body = tlv(200, b"xyz");
        body.extend(seq_tlv(42));
        frame[2..6].copy_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend(&body);
        let reply = echo_reply(&frame);
        assert_eq!(&reply[..2], &[0, 9]);
        assert_eq!(&reply[2..], &frame[2..]);
        let decoded = decode(MsgType::EchoReply, &reply[HEADER_LEN..]).unwrap();
        assert_eq!(decoded.seq, Some(42));
        assert_eq!(echo_reply(&[8]), vec![8], "short input: no panic");
    }

    #[test]
    fn error_code_from_u16() {
        assert_eq!(ErrorCode::from_u16(0), Some(ErrorCode::NoError));
        assert_eq!(ErrorCode::from_u16(13), Some(ErrorCode::InvalidHeartbeatInterval));
        assert_eq!(ErrorCode::from_u16(19), Some(ErrorCode::InvalidMembershipNodeList));
        assert_eq!(ErrorCode::from_u16(20), None);
        for v in 0..20u16 {
            assert_eq!(ErrorCode::from_u16(v).map(|c| c as u16), Some(v));
        }
    }

    // ---------------------------------------------------------------------
    // Decode failures (wire.md §5) and non-failures.
    // ---------------------------------------------------------------------

    #[test]
    fn empty_body_is_an_error_for_every_type() {
        for t in MsgType::ALL {
            let e = decode(t, &[]).unwrap_err();
            assert_eq!(e, DecodeError { seq: None, reason: DecodeErrorReason::EmptyBody });
        }
    }

    #[test]
    fn tlv_past_body_end_is_an_error() {
        let mut body = seq_tlv(1);
        body.extend(hex("0001 0005 616263")); // declares 5, has 3
        let e = decode_err(&body);
        assert_eq!(e, DecodeError { seq: Some(1), reason: DecodeErrorReason::TruncatedTlv });
        // A single TLV that is too short, no seq before it.
        assert_eq!(decode_err(&hex("0000 0004 0000")).reason, DecodeErrorReason::TruncatedTlv);
    }

    #[test]
    fn one_to_three_trailing_bytes_are_an_error() {
        for extra in 1..=3 {
            let mut body = seq_tlv(7);
            body.extend(vec![0u8; extra]);
            let e = decode_err(&body);
            assert_eq!(e, DecodeError { seq: Some(7), reason: DecodeErrorReason::TruncatedTlv }, "{extra}");
        }
        // Four trailing zero bytes are a complete empty TLV of option 0 → bad seq length.
        let mut body = seq_tlv(7);
        body.extend([0u8; 4]);
        assert_eq!(decode_err(&body), DecodeError { seq: Some(7), reason: DecodeErrorReason::BadLength { option: 0 } });
        // 1-3 bytes alone.
        for n in 1..=3 {
            assert_eq!(decode_err(&vec![0u8; n]).reason, DecodeErrorReason::TruncatedTlv);
        }
    }

    /// Every fixed-size option rejects every other length (0, size-1, size+1).
    #[test]
    fn fixed_size_options_check_length() {
        let sizes: &[(u16, usize)] = &[
            (opt::MSG_SEQ_NUMBER, 4),
            (opt::TLS_SUPPORTED, 1),
            (opt::TLS_CLIENT_CERT_REQUIRED, 1),
            (opt::REPLY_ERROR_CODE, 2),
            (opt::SERVER_MAXIMUM_REQUEST_SIZE, 4),
            (opt::SERVER_MAXIMUM_REPLY_SIZE, 4),
            (opt::NODE_ID, 4),
            (opt::DECISION_ALGORITHM, 2),
            (opt::HEARTBEAT_INTERVAL, 4),
            (opt::RING_ID, 12),
            (opt::CONFIG_VERSION, 8),
            (opt::DATA_CENTER_ID, 4),
            (opt::NODE_STATE, 1),
            (opt::NODE_LIST_TYPE, 1),
            (opt::VOTE, 1),
            (opt::QUORATE, 1),
            (opt::TIE_BREAKER, 5),
            (opt::HEURISTICS, 1),
            (opt::KEEP_ACTIVE_PARTITION_TIE_BREAKER, 1),
        ];
        for &(option, size) in sizes {
            // A value that is valid at the right size (1 fits every enum, tie-breaker mode 1).
            let mut good = vec![0u8; size];
            good[size - 1] = 1;
            if option == opt::TIE_BREAKER {
                good = vec![1, 0, 0, 0, 0];
            }
            assert!(decode(MsgType::EchoRequest, &tlv(option, &good)).is_ok(), "option {option} good");
            for len in [0, size - 1, size + 1] {
                let body = tlv(option, &vec![1u8; len]);
                assert_eq!(
                    decode_err(&body).reason,
                    DecodeErrorReason::BadLength { option },
                    "option {option} length {len}"
                );
            }
        }
    }

    #[test]
    fn u16_arrays_need_even_length() {
        for option in [opt::SUPPORTED_MESSAGES, opt::SUPPORTED_OPTIONS, opt::SUPPORTED_DECISION_ALGORITHMS] {
            for len in [1usize, 3, 35] {
                let e = decode_err(&tlv(option, &vec![0; len]));
                assert_eq!(e.reason, DecodeErrorReason::BadLength { option });
            }
            // Empty array is present and empty, not an error.
            let m = decode(MsgType::Init, &tlv(option, &[])).unwrap();
            let arr = match option {
                opt::SUPPORTED_MESSAGES => m.supported_messages,
                opt::SUPPORTED_OPTIONS => m.supported_options,
                _ => m.supported_algorithms,
            };
            assert_eq!(arr, Some(vec![]));
        }
        let m = decode(MsgType::Init, &tlv(opt::SUPPORTED_OPTIONS, &hex("0000 0017 ffff"))).unwrap();
        assert_eq!(m.supported_options, Some(vec![0, 23, 0xffff]));
    }

    /// Each enumerated option: exactly its valid values decode.
    #[test]
    fn enumerated_values_are_range_checked() {
        let ranges: &[(u16, &[u8])] = &[
            (opt::TLS_SUPPORTED, &[0, 1, 2]),
            (opt::NODE_STATE, &[1, 2, 3]),
            (opt::NODE_LIST_TYPE, &[0, 1, 2, 3]),
            (opt::VOTE, &[1, 2, 3, 4, 5]),
            (opt::QUORATE, &[0, 1]),
            (opt::HEURISTICS, &[1, 2]),
            (opt::KEEP_ACTIVE_PARTITION_TIE_BREAKER, &[0, 1]),
        ];
        for &(option, valid) in ranges {
            for v in 0..=255u8 {
                let r = decode(MsgType::EchoRequest, &tlv(option, &[v]));
                if valid.contains(&v) {
                    assert!(r.is_ok(), "option {option} value {v}");
                } else {
                    assert_eq!(r.unwrap_err().reason, DecodeErrorReason::BadValue { option }, "{option}={v}");
                }
            }
        }
        for mode in 0..=255u8 {
            let r = decode(MsgType::Init, &tlv(opt::TIE_BREAKER, &[mode, 0, 0, 0, 7]));
            if (1..=3).contains(&mode) {
                assert!(r.is_ok());
            } else {
                assert_eq!(r.unwrap_err().reason, DecodeErrorReason::BadValue { option: opt::TIE_BREAKER });
            }
        }
    }

    #[test]
    fn enum_values_map_to_the_right_variants() {
        let m = decode(
            MsgType::NodeList,
            &[
                tlv(opt::TLS_SUPPORTED, &[2]),
                tlv(opt::NODE_STATE, &[2]),
                tlv(opt::NODE_LIST_TYPE, &[2]),
                tlv(opt::VOTE, &[4]),
                tlv(opt::QUORATE, &[1]),
                tlv(opt::HEURISTICS, &[2]),
                tlv(opt::KEEP_ACTIVE_PARTITION_TIE_BREAKER, &[0]),
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!(m.tls_supported, Some(TlsSupported::Required));
        assert_eq!(m.node_state, Some(NodeState::Dead));
        assert_eq!(m.node_list_type, Some(NodeListType::Membership));
        assert_eq!(m.vote, Some(Vote::WaitForReply));
        assert_eq!(m.quorate, Some(true));
        assert_eq!(m.heuristics, Some(Heuristics::Fail));
        assert_eq!(m.kap, Some(false));
    }

    #[test]
    fn tie_breaker_node_id_forced_to_zero_for_lowest_and_highest() {
        for (mode, want) in [(1u8, TieBreakerMode::Lowest), (2, TieBreakerMode::Highest)] {
            let m = decode(MsgType::Init, &tlv(opt::TIE_BREAKER, &[mode, 0, 0, 1, 0])).unwrap();
            assert_eq!(m.tie_breaker, Some(TieBreaker { mode: want, node_id: 0 }));
        }
        let m = decode(MsgType::Init, &tlv(opt::TIE_BREAKER, &[3, 0, 0, 1, 0])).unwrap();
        assert_eq!(m.tie_breaker, Some(TieBreaker { mode: TieBreakerMode::NodeId, node_id: 256 }));
    }

    #[test]
    fn tls_client_cert_required_any_nonzero_byte_is_true() {
        for (v, want) in [(0u8, false), (1, true), (2, true), (0x7f, true), (0xff, true)] {
            let m = decode(MsgType::PreinitReply, &tlv(opt::TLS_CLIENT_CERT_REQUIRED, &[v])).unwrap();
            assert_eq!(m.tls_client_cert_required, Some(want), "{v}");
        }
    }

    #[test]
    fn not_decode_errors() {
        // Unknown options anywhere (including value lengths no known option allows).
        let body = [tlv(200, b"whatever"), seq_tlv(3), tlv(24, &[]), tlv(0xffff, &[1, 2, 3])].concat();
        let m = decode(MsgType::EchoRequest, &body).unwrap();
        let mut want = Message::new(MsgType::EchoRequest);
        want.seq = Some(3);
        assert_eq!(m, want);
        // Only unknown options: decodes to an empty message.
        assert_eq!(decode(MsgType::Preinit, &tlv(99, &[])).unwrap(), Message::new(MsgType::Preinit));
        // Empty cluster name; names are raw bytes (no charset check, NUL kept).
        assert_eq!(decode(MsgType::Preinit, &tlv(1, &[])).unwrap().cluster_name, Some(vec![]));
        assert_eq!(
            decode(MsgType::Preinit, &tlv(1, &[0xff, 0, b'a'])).unwrap().cluster_name,
            Some(vec![0xff, 0, b'a'])
        );
        // Unknown algorithm number, out-of-range reply code, zero top-level node id.
        let m = decode(
            MsgType::Init,
            &[
                tlv(opt::DECISION_ALGORITHM, &[0, 9]),
                tlv(opt::REPLY_ERROR_CODE, &[0xff, 0xff]),
                tlv(opt::NODE_ID, &[0; 4]),
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!((m.algorithm, m.reply_error_code, m.node_id), (Some(9), Some(0xffff), Some(0)));
        // Top-level data center id 0 is kept as given.
        assert_eq!(decode(MsgType::Init, &tlv(opt::DATA_CENTER_ID, &[0; 4])).unwrap().data_center_id, Some(0));
    }

    #[test]
    fn last_occurrence_wins_except_node_info() {
        let body = [
            seq_tlv(1),
            tlv(opt::CLUSTER_NAME, b"first"),
            tlv(opt::SUPPORTED_OPTIONS, &hex("0001 0002 0003")),
            tlv(opt::NODE_INFO, &tlv(opt::NODE_ID, &[0, 0, 0, 5])),
            seq_tlv(2),
            tlv(opt::CLUSTER_NAME, b"second"),
            tlv(opt::SUPPORTED_OPTIONS, &hex("0009")),
            tlv(opt::NODE_INFO, &tlv(opt::NODE_ID, &[0, 0, 0, 4])),
            tlv(opt::NODE_INFO, &tlv(opt::NODE_ID, &[0, 0, 0, 5])),
            tlv(opt::VOTE, &[1]),
            tlv(opt::VOTE, &[2]),
        ]
        .concat();
        let m = decode(MsgType::NodeList, &body).unwrap();
        assert_eq!(m.seq, Some(2));
        assert_eq!(m.cluster_name.as_deref(), Some(&b"second"[..]));
        assert_eq!(m.supported_options, Some(vec![9]));
        assert_eq!(m.nodes, vec![NodeInfo::new(5), NodeInfo::new(4), NodeInfo::new(5)]);
        assert_eq!(m.vote, Some(Vote::Nack));
    }

    // ---- NODE_INFO nested rules (§3.3) ----

    fn node_info_body(nested: &[u8]) -> Vec<u8> {
        [seq_tlv(9), tlv(opt::NODE_INFO, nested)].concat()
    }

    fn bad_node_info(nested: &[u8]) {
        assert_eq!(
            decode(MsgType::NodeList, &node_info_body(nested)).unwrap_err(),
            DecodeError { seq: Some(9), reason: DecodeErrorReason::BadNodeInfo },
            "nested {}",
            hex_dump(nested)
        );
    }

    fn good_node_info(nested: &[u8]) -> NodeInfo {
        let m = decode(MsgType::NodeList, &node_info_body(nested)).unwrap();
        assert_eq!(m.nodes.len(), 1);
        m.nodes[0]
    }

    #[test]
    fn node_info_nested_failures() {
        let id = |n: u32| tlv(opt::NODE_ID, &n.to_be_bytes());
        bad_node_info(&[]); // empty
        bad_node_info(&[0, 9]); // 2 bytes: truncated header
        bad_node_info(&[id(1), vec![0]].concat()); // trailing byte
        bad_node_info(&hex("0009 0008 00000001")); // nested TLV past end
        bad_node_info(&tlv(opt::DATA_CENTER_ID, &[0, 0, 0, 1])); // node id missing
        bad_node_info(&id(0)); // node id zero
        bad_node_info(&[id(5), id(0)].concat()); // last node id wins, and it is 0
        bad_node_info(&tlv(opt::NODE_ID, &[0, 0, 1])); // node id length 3
        bad_node_info(&[id(1), tlv(opt::DATA_CENTER_ID, &[0, 1])].concat()); // dc id length 2
        bad_node_info(&[id(1), tlv(opt::NODE_STATE, &[0])].concat()); // state 0
        bad_node_info(&[id(1), tlv(opt::NODE_STATE, &[4])].concat()); // state 4
        bad_node_info(&[id(1), tlv(opt::NODE_STATE, &[1, 1])].concat()); // state length 2
        bad_node_info(&tlv(99, b"x")); // only an ignored option → no node id
    }

    #[test]
    fn node_info_nested_accepts() {
        let id = |n: u32| tlv(opt::NODE_ID, &n.to_be_bytes());
        assert_eq!(good_node_info(&id(7)), NodeInfo::new(7));
        assert_eq!(
            good_node_info(&[id(7), tlv(opt::DATA_CENTER_ID, &[0, 0, 0, 3]), tlv(opt::NODE_STATE, &[3])].concat()),
            NodeInfo { node_id: 7, data_center_id: 3, node_state: Some(NodeState::Leaving) }
        );
        // Order is free, others ignored (even invalid-looking ones), last id wins, 0 then 8 is fine.
        assert_eq!(
            good_node_info(
                &[tlv(opt::NODE_STATE, &[2]), id(0), tlv(opt::VOTE, &[0, 0, 0]), tlv(200, &[]), id(8)].concat()
            ),
            NodeInfo { node_id: 8, data_center_id: 0, node_state: Some(NodeState::Dead) }
        );
    }

    // ---- seq position rule ----

    #[test]
    fn error_seq_only_if_decoded_before_the_fault() {
        let bad = tlv(opt::VOTE, &[0]);
        // seq before the fault → echoed.
        assert_eq!(decode_err(&[seq_tlv(5), bad.clone()].concat()).seq, Some(5));
        // seq after the fault → not seen.
        assert_eq!(decode_err(&[bad.clone(), seq_tlv(5)].concat()).seq, None);
        // Unknown options before seq do not matter.
        assert_eq!(decode_err(&[tlv(77, b"zz"), seq_tlv(6), bad.clone()].concat()).seq, Some(6));
        // Two seqs before the fault: the later one.
        assert_eq!(decode_err(&[seq_tlv(1), seq_tlv(2), bad.clone(), seq_tlv(3)].concat()).seq, Some(2));
        // A malformed seq is itself the fault; an earlier valid seq is kept.
        assert_eq!(decode_err(&[seq_tlv(4), tlv(0, &[0, 0, 9])].concat()).seq, Some(4));
        assert_eq!(decode_err(&[tlv(0, &[0, 0, 9]), seq_tlv(4)].concat()).seq, None);
        // Truncation after seq.
        assert_eq!(decode_err(&[seq_tlv(8), vec![0, 1]].concat()).seq, Some(8));
        // Bad NODE_INFO after seq.
        assert_eq!(decode_err(&[seq_tlv(8), tlv(opt::NODE_INFO, &[])].concat()).seq, Some(8));
    }

    #[test]
    fn decode_error_messages_are_one_line() {
        let e = decode_err(&tlv(opt::VOTE, &[9]));
        assert_eq!(e.to_string(), "option 19 has an invalid value");
        assert!(!decode_err(&[]).to_string().contains('\n'));
    }

    // ---------------------------------------------------------------------
    // Frame reader (§2.1) and the codec-level rows of the §7 error table.
    // ---------------------------------------------------------------------

    /// Feed `data` in one go, collecting every frame; asserts nothing is left.
    fn feed_all(r: &mut FrameReader, mut data: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        while !data.is_empty() {
            let (n, f) = r.feed(data);
            assert!(n <= data.len());
            match f {
                Some(f) => frames.push(f),
                None => assert_eq!(n, data.len(), "no frame means everything consumed"),
            }
            data = &data[n..];
        }
        frames
    }

    fn frame_bytes(t: u16, body: &[u8]) -> Vec<u8> {
        let mut f = t.to_be_bytes().to_vec();
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn unknown_type_with_body_is_skipped_with_code_4() {
        let mut r = FrameReader::new(32768);
        let mut stream = frame_bytes(18, &seq_tlv(3));
        stream.extend(frame_bytes(0xffff, &[1, 2, 3]));
        stream.extend(frame_bytes(8, &seq_tlv(4)));
        let frames = feed_all(&mut r, &stream);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], Frame::Skipped { code: ErrorCode::UnsupportedMessage });
        assert_eq!(frames[1], Frame::Skipped { code: ErrorCode::UnsupportedMessage });
        assert!(matches!(&frames[2], Frame::Message { msg_type: MsgType::EchoRequest, .. }));
        assert_eq!(decode(MsgType::EchoRequest, frames[2].body()).unwrap().seq, Some(4));
    }

    #[test]
    fn unknown_type_zero_length_quirk_gives_code_0() {
        let mut r = FrameReader::new(32768);
        let stream = [frame_bytes(18, &[]), frame_bytes(8, &seq_tlv(1))].concat();
        let (n, f) = r.feed(&stream);
        assert_eq!((n, f), (6, Some(Frame::Skipped { code: ErrorCode::NoError })));
        assert!(r.is_idle());
        let (n, f) = r.feed(&stream[6..]);
        assert_eq!(n, 14);
        assert!(matches!(f, Some(Frame::Message { msg_type: MsgType::EchoRequest, .. })));
    }

    #[test]
    fn known_type_zero_length_completes_at_header() {
        let mut r = FrameReader::new(32768);
        let (n, f) = r.feed(&frame_bytes(8, &[]));
        assert_eq!(n, 6);
        let f = f.unwrap();
        assert_eq!(f, Frame::Message { msg_type: MsgType::EchoRequest, raw: hex("0008 00000000") });
        // ...and its decode fails (empty body) without seq: the §7 row "malformed body".
        assert_eq!(decode(MsgType::EchoRequest, f.body()).unwrap_err().seq, None);
    }

    #[test]
    fn too_long_frame_skipped_with_code_5_and_exact_limit_accepted() {
        let limit = 32768;
        let body_at_limit = vec![0u8; limit - HEADER_LEN];
        let mut r = FrameReader::new(limit);
        let frames = feed_all(&mut r, &frame_bytes(8, &body_at_limit));
        assert_eq!(frames.len(), 1);
        match &frames[0] {
            Frame::Message { msg_type: MsgType::EchoRequest, raw } => assert_eq!(raw.len(), limit),
            other => panic!("exact-limit frame must be accepted, got {other:?}"),
        }
        let over = frame_bytes(8, &vec![0u8; limit - HEADER_LEN + 1]);
        let next = frame_bytes(0, &seq_tlv(1));
        let frames = feed_all(&mut r, &[over, next].concat());
        assert_eq!(frames[0], Frame::Skipped { code: ErrorCode::MessageTooLong });
        assert!(matches!(frames[1], Frame::Message { msg_type: MsgType::Preinit, .. }));
    }

    #[test]
    fn unknown_type_takes_precedence_over_too_long() {
        let mut r = FrameReader::new(16);
        let frames = feed_all(&mut r, &frame_bytes(30, &[0; 100]));
        assert_eq!(frames, vec![Frame::Skipped { code: ErrorCode::UnsupportedMessage }]);
    }

    #[test]
    fn four_gib_length_costs_no_memory() {
        let mut r = FrameReader::new(32768);
        let (n, f) = r.feed(&hex("0008 ffffffff"));
        assert_eq!((n, f), (6, None));
        assert!(matches!(r.body, Body::Skip { code: ErrorCode::MessageTooLong, remaining: 0xffff_ffff }));
        let chunk = vec![0xaau8; 1 << 20];
        for _ in 0..8 {
            let (n, f) = r.feed(&chunk);
            assert_eq!((n, f), (chunk.len(), None));
        }
        assert!(!r.is_idle());
        assert!(matches!(r.body, Body::Skip { remaining, .. } if remaining == 0xffff_ffff - 8 * (1 << 20)));
        // The same for an unknown type.
        let mut r = FrameReader::new(32768);
        r.feed(&hex("0040 ffffffff"));
        assert!(matches!(r.body, Body::Skip { code: ErrorCode::UnsupportedMessage, .. }));
    }

    #[test]
    fn skipped_frame_ends_exactly_at_its_length() {
        // Simulate the tail of a large skipped frame followed by a real one.
        let mut r = FrameReader::new(32);
        let mut stream = frame_bytes(8, &[7u8; 100]);
        stream.extend(frame_bytes(12, &seq_tlv(77)));
        let (n, f) = r.feed(&stream);
        assert_eq!((n, f), (106, Some(Frame::Skipped { code: ErrorCode::MessageTooLong })));
        let (n, f) = r.feed(&stream[106..]);
        assert_eq!(n, 14);
        assert_eq!(decode(MsgType::AskForVote, f.unwrap().body()).unwrap().seq, Some(77));
    }

    #[test]
    fn one_byte_at_a_time() {
        let msgs: Vec<Message> = [MsgType::Preinit, MsgType::Init, MsgType::NodeList, MsgType::EchoRequest]
            .into_iter()
            .map(full_message)
            .collect();
        let mut stream: Vec<u8> = msgs.iter().flat_map(|m| m.encode()).collect();
        stream.extend(frame_bytes(99, &[1, 2]));
        let mut r = FrameReader::new(32768);
        let mut frames = Vec::new();
        for (i, b) in stream.iter().enumerate() {
            let (n, f) = r.feed(std::slice::from_ref(b));
            assert_eq!(n, 1, "byte {i}");
            frames.extend(f);
        }
        assert!(r.is_idle());
        assert_eq!(frames.len(), 5);
        for (f, m) in frames.iter().zip(&msgs) {
            match f {
                Frame::Message { msg_type, raw } => {
                    assert_eq!(*msg_type, m.msg_type);
                    assert_eq!(raw, &m.encode());
                    assert_eq!(&decode(*msg_type, f.body()).unwrap(), m);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(frames[4], Frame::Skipped { code: ErrorCode::UnsupportedMessage });
    }

    #[test]
    fn empty_feed_consumes_nothing() {
        let mut r = FrameReader::new(32768);
        assert_eq!(r.feed(&[]), (0, None));
        r.feed(&[0, 8, 0]);
        assert_eq!(r.feed(&[]), (0, None));
        assert!(!r.is_idle());
    }

    #[test]
    fn malformed_body_frames_decode_with_and_without_seq() {
        // §7 "malformed body": the reader passes the frame on, decode reports the seq rule.
        let mut r = FrameReader::new(32768);
        let with_seq = frame_bytes(6, &[seq_tlv(12), tlv(opt::KEEP_ACTIVE_PARTITION_TIE_BREAKER, &[2])].concat());
        let without_seq = frame_bytes(6, &[tlv(opt::KEEP_ACTIVE_PARTITION_TIE_BREAKER, &[2]), seq_tlv(12)].concat());
        let frames = feed_all(&mut r, &[with_seq, without_seq].concat());
        let errs: Vec<DecodeError> = frames.iter().map(|f| decode(MsgType::SetOption, f.body()).unwrap_err()).collect();
        let reason = DecodeErrorReason::BadValue { option: opt::KEEP_ACTIVE_PARTITION_TIE_BREAKER };
        assert_eq!(errs, vec![DecodeError { seq: Some(12), reason }, DecodeError { seq: None, reason }]);
    }

    // ---------------------------------------------------------------------
    // Round trips.
    // ---------------------------------------------------------------------

    /// A typical message of each type, as the real programs fill them.
    fn typical(t: MsgType) -> Message {
        let mut m = Message::new(t);
        m.seq = Some(41);
        let ring = Some(RingId { node_id: 2, seq: 0x1_0000_0001 });
        match t {
            MsgType::Preinit => m.cluster_name = Some(b"cluster".to_vec()),
            MsgType::PreinitReply => {
                m.tls_supported = Some(TlsSupported::Required);
                m.tls_client_cert_required = Some(false);
            }
            MsgType::StartTls | MsgType::EchoRequest | MsgType::EchoReply | MsgType::AskForVote => {}
            MsgType::VoteInfoReply => {}
            MsgType::Init => {
                m.supported_messages = Some(all_server_messages());
                m.supported_options = Some(all_options());
                m.node_id = Some(3);
                m.algorithm = Some(3);
                m.heartbeat_interval = Some(8000);
                m.tie_breaker = Some(TieBreaker { mode: TieBreakerMode::NodeId, node_id: 2 });
                m.ring_id = ring;
            }
            MsgType::InitReply => {
                m.reply_error_code = Some(0);
                m.supported_messages = Some(all_server_messages());
                m.supported_options = Some(all_options());
                m.server_max_request_size = Some(32768);
                m.server_max_reply_size = Some(32768);
                m.supported_algorithms = Some(vec![0, 1, 2, 3]);
            }
            MsgType::ServerError => m.reply_error_code = Some(ErrorCode::InitRequired as u16),
            MsgType::SetOption | MsgType::SetOptionReply => {
                m.heartbeat_interval = Some(4000);
                m.kap = Some(true);
            }
            MsgType::NodeList => {
                m.node_list_type = Some(NodeListType::Membership);
                m.ring_id = ring;
                m.nodes = vec![NodeInfo::new(1), NodeInfo::new(3)];
                m.heuristics = Some(Heuristics::Pass);
            }
            MsgType::NodeListReply => {
                m.node_list_type = Some(NodeListType::ChangedConfig);
                m.ring_id = ring;
                m.vote = Some(Vote::Ack);
            }
            MsgType::AskForVoteReply | MsgType::VoteInfo => {
                m.vote = Some(Vote::Nack);
                m.ring_id = ring;
            }
            MsgType::HeuristicsChange => m.heuristics = Some(Heuristics::Fail),
            MsgType::HeuristicsChangeReply => {
                m.vote = Some(Vote::NoChange);
                m.ring_id = ring;
                m.heuristics = Some(Heuristics::Pass);
            }
        }
        m
    }

    #[test]
    fn round_trip_every_message_type() {
        for t in MsgType::ALL {
            for m in [typical(t), full_message(t)] {
                let frame = m.encode();
                let mut r = FrameReader::new(32768);
                let (n, f) = r.feed(&frame);
                assert_eq!(n, frame.len());
                match f {
                    Some(f @ Frame::Message { .. }) => assert_eq!(decode(t, f.body()).unwrap(), m, "{t:?}"),
                    other => panic!("{t:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn config_node_list_round_trip_with_data_center_ids() {
        let mut m = Message::new(MsgType::NodeList);
        m.seq = Some(1);
        m.node_list_type = Some(NodeListType::InitialConfig);
        m.config_version = Some(u64::MAX);
        m.nodes = (1..=16).map(|i| NodeInfo { node_id: i, data_center_id: i % 3, node_state: None }).collect();
        assert_eq!(decode_frame(&m.encode()), m);
    }

    // ---- property tests ----

    fn arb_node() -> impl Strategy<Value = NodeInfo> {
        (
            1u32..,
            prop_oneof![Just(0u32), any::<u32>()],
            proptest::option::of(prop_oneof![Just(NodeState::Member), Just(NodeState::Dead), Just(NodeState::Leaving)]),
        )
            .prop_map(|(node_id, data_center_id, node_state)| NodeInfo { node_id, data_center_id, node_state })
    }

    fn arb_tie_breaker() -> impl Strategy<Value = TieBreaker> {
        (1u8..=3, any::<u32>()).prop_map(|(mode, id)| match mode {
            1 => TieBreaker { mode: TieBreakerMode::Lowest, node_id: 0 },
            2 => TieBreaker { mode: TieBreakerMode::Highest, node_id: 0 },
            _ => TieBreaker { mode: TieBreakerMode::NodeId, node_id: id },
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        use proptest::collection::vec;
        use proptest::option::of;
        let a = (
            0usize..18,
            of(any::<u32>()),
            of(vec(any::<u8>(), 0..40)),
            of(prop_oneof![
                Just(TlsSupported::Unsupported),
                Just(TlsSupported::Supported),
                Just(TlsSupported::Required)
            ]),
            of(any::<bool>()),
            of(vec(any::<u16>(), 0..30)),
            of(vec(any::<u16>(), 0..30)),
            of(any::<u16>()),
            of(any::<u32>()),
            of(any::<u32>()),
            of(any::<u32>()),
            of(vec(any::<u16>(), 0..8)),
        );
        let b = (
            of(any::<u16>()),
            of(any::<u32>()),
            of((any::<u32>(), any::<u64>()).prop_map(|(node_id, seq)| RingId { node_id, seq })),
            of(any::<u64>()),
            of(any::<u32>()),
            of(prop_oneof![Just(NodeState::Member), Just(NodeState::Dead), Just(NodeState::Leaving)]),
            vec(arb_node(), 0..6),
            of(prop_oneof![
                Just(NodeListType::InitialConfig),
                Just(NodeListType::ChangedConfig),
                Just(NodeListType::Membership),
                Just(NodeListType::Quorum)
            ]),
            of(prop_oneof![
                Just(Vote::Ack),
                Just(Vote::Nack),
                Just(Vote::AskLater),
                Just(Vote::WaitForReply),
                Just(Vote::NoChange)
            ]),
            of(any::<bool>()),
            of(arb_tie_breaker()),
            (of(prop_oneof![Just(Heuristics::Pass), Just(Heuristics::Fail)]), of(any::<bool>())),
        );
        (a, b)
            .prop_map(|(a, b)| {
                let mut m = Message::new(MsgType::ALL[a.0]);
                m.seq = a.1;
                m.cluster_name = a.2;
                m.tls_supported = a.3;
                m.tls_client_cert_required = a.4;
                m.supported_messages = a.5;
                m.supported_options = a.6;
                m.reply_error_code = a.7;
                m.server_max_request_size = a.8;
                m.server_max_reply_size = a.9;
                m.node_id = a.10;
                m.supported_algorithms = a.11;
                m.algorithm = b.0;
                m.heartbeat_interval = b.1;
                m.ring_id = b.2;
                m.config_version = b.3;
                m.data_center_id = b.4;
                m.node_state = b.5;
                m.nodes = b.6;
                m.node_list_type = b.7;
                m.vote = b.8;
                m.quorate = b.9;
                m.tie_breaker = b.10;
                m.heuristics = b.11 .0;
                m.kap = b.11 .1;
                m
            })
            // A message with no option at all encodes to an empty (undecodable) body.
            .prop_filter("at least one option", |m| m.encode().len() > HEADER_LEN)
    }

    /// Bytes that look like TLV sequences (known option numbers, plausible
    /// lengths), so the fuzzing reaches the value checks and not only truncation.
    fn tlv_soup() -> impl Strategy<Value = Vec<u8>> {
        use proptest::collection::vec;
        let one = (0u16..26, vec(any::<u8>(), 0..14), any::<bool>()).prop_map(|(o, v, nest)| {
            if nest && o == opt::NODE_INFO {
                let nested: Vec<u8> = v.chunks(5).flat_map(|c| tlv(u16::from(c[0] % 18), &c[1..])).collect();
                tlv(o, &nested)
            } else {
                tlv(o, &v)
            }
        });
        (vec(one, 0..8), vec(any::<u8>(), 0..3)).prop_map(|(tlvs, tail)| [tlvs.concat(), tail].concat())
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_bytes(t in 0usize..18, body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(MsgType::ALL[t], &body);
        }

        #[test]
        fn decode_never_panics_on_tlv_like_bytes(t in 0usize..18, body in tlv_soup()) {
            match decode(MsgType::ALL[t], &body) {
                // Whatever decodes re-encodes to something that decodes the same.
                Ok(m) => {
                    let again = m.encode();
                    if again.len() > HEADER_LEN {
                        prop_assert_eq!(decode(m.msg_type, &again[HEADER_LEN..]).unwrap(), m);
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn encode_decode_round_trip(m in arb_message()) {
            let frame = m.encode();
            prop_assert_eq!(
                u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]) as usize,
                frame.len() - HEADER_LEN
            );
            prop_assert_eq!(decode(m.msg_type, &frame[HEADER_LEN..]).unwrap(), m);
        }

        /// Any chunking of a stream of frames yields the same frames, and never
        /// consumes past the frame it returns.
        #[test]
        fn reader_is_chunking_independent(
            msgs in proptest::collection::vec(arb_message(), 1..5),
            junk_types in proptest::collection::vec((18u16..40, 0usize..20), 0..3),
            cuts in proptest::collection::vec(1usize..50, 1..40),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (i, m) in msgs.iter().enumerate() {
                let f = m.encode();
                stream.extend(&f);
                expected.push(Frame::Message { msg_type: m.msg_type, raw: f });
                if let Some(&(t, len)) = junk_types.get(i) {
                    stream.extend(frame_bytes(t, &vec![0x5a; len]));
                    let code = if len == 0 { ErrorCode::NoError } else { ErrorCode::UnsupportedMessage };
                    expected.push(Frame::Skipped { code });
                }
            }
            let mut r = FrameReader::new(1 << 20);
            let mut frames = Vec::new();
            let mut pos = 0;
            let mut cut = cuts.iter().cycle();
            while pos < stream.len() {
                let end = (pos + cut.next().copied().unwrap_or(1)).min(stream.len());
                let mut chunk = &stream[pos..end];
                while !chunk.is_empty() {
                    let (n, f) = r.feed(chunk);
                    prop_assert!(n <= chunk.len());
                    if f.is_none() { prop_assert_eq!(n, chunk.len()); }
                    frames.extend(f);
                    chunk = &chunk[n..];
                    pos += n;
                }
            }
            prop_assert!(r.is_idle());
            prop_assert_eq!(frames, expected);
        }
    }
}
