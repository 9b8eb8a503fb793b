//! The local status socket (`corosync-qnetd-tool`'s protocol, tool-and-files.md §4):
//! request tokenising, command parsing and the exact text of `status` / `list`
//! replies. Sans-IO: the daemon hands in snapshots, this module returns bytes.
//!
//! # Protocol
//!
//! One request per connection. The daemon reads until a `\n` has arrived
//! ([`request_complete`]); if more than `ipc_max_receive_size` bytes arrive first it
//! closes the connection without a reply (as the C qnetd does: the byte that would
//! overflow the buffer kills the request even if it contains the newline). The
//! request is then answered with [`respond`], the reply written, and the connection
//! closed. Bytes after the newline are ignored.
//!
//! Replies are `OK\n<body>` or `Error\n<message>\n`. The text bodies are
//! byte-identical to the C qnetd's (crmsh, pcs and scripts parse them).
//!
//! # JSON extension
//!
//! A `json` token makes the body of `status` and `list` JSON instead of text: for
//! `status` it may appear among the words after the command (`status json`,
//! `status verbose json`), for `list` anywhere among the keywords (`list json`,
//! `list verbose cluster "c1" json`). The C qnetd would treat the word as an
//! unknown trailing word, so no request a C tool sends changes meaning. Errors stay
//! `Error\n<message>\n`. In JSON, `verbose` is accepted and ignored: the JSON
//! always carries every field. The body is one line (compact JSON) plus `\n`.
//! Field names are stable; new fields may be added, existing ones are never
//! renamed or retyped.
//!
//! `status json` — one object:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `version` | string | daemon version |
//! | `uptime_seconds` | number | seconds since the daemon started |
//! | `listen_address` | string | `-l` address as given, `*` for the wildcard |
//! | `port` | number | TCP port |
//! | `tls` | string | `off`, `on` or `required` (the `-s` values) |
//! | `client_certificate_required` | bool | `-c` as configured (also when TLS is off) |
//! | `connected_clients` | number | TCP clients in any phase |
//! | `connected_clusters` | number | clusters with at least one initialised client |
//! | `max_clients` | number | `-m`; 0 = unlimited |
//! | `max_client_send_size` | number | bytes |
//! | `max_client_receive_size` | number | bytes |
//! | `seconds_without_clients` | number or null | null while a TCP client is connected; else seconds since the last one left (or since start) |
//!
//! `list json` — `{"clusters": [cluster, ...]}` in creation order (filtered by
//! `cluster NAME` as the text form is). A cluster:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `name` | string | cluster name (bytes up to the first NUL, invalid UTF-8 replaced by U+FFFD) |
//! | `algorithm` | string or null | name as in the text form (`Fifty-Fifty split`, ...), from the first client; null without clients |
//! | `algorithm_id` | number or null | wire number (0 test, 1 ffsplit, 2 2nodelms, 3 lms) |
//! | `kap_tie_breaker` | bool | every client uses ffsplit with KAP enabled (the text's `(KAP Tie-breaker)`); false without clients |
//! | `tie_breaker` | object or null | `{"mode": "lowest"\|"highest"\|"node_id", "node_id": number or null}`, from the first client |
//! | `clients` | array | clients in node-id order |
//!
//! A client:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `node_id` | number | |
//! | `address` | string | `ip:port` exactly as in the text form |
//! | `heartbeat_interval_ms` | number | |
//! | `config_version` | number or null | null unless a config list carried one |
//! | `config_nodes`, `membership_nodes` | array | `{"node_id": n, "data_center_id": n}` (0 = none), stored order |
//! | `ring_id` | object | `{"node_id": n, "seq": n}` (the text form prints them in hex) |
//! | `heuristics`, `membership_heuristics`, `regular_heuristics` | string | `undefined`, `pass`, `fail` |
//! | `tls_active` | bool | |
//! | `client_certificate_verified` | bool | only ever true when `tls_active` |
//! | `vote` | string or null | last vote sent: `ack`, `nack`, `ask_later`, `wait_for_reply`, `no_change`; null if none yet |
//! | `ack_nack_vote` | string or null | last ACK/NACK sent, null if none yet |
//!
//! Numbers are unsigned integers; `config_version` and `ring_id.seq` are u64 and
//! may exceed 2^53 in theory (consumers that parse numbers as doubles lose
//! precision there).

use std::fmt::Write as _;

use crate::settings::TlsMode;
use crate::wire::{Heuristics, NodeInfo, RingId, TieBreaker, TieBreakerMode, Vote};

/// Server-wide figures for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStatus {
    /// `-l` address as given, or `*` when listening on the wildcard.
    pub listen_addr: String,
    pub port: u16,
    pub tls: TlsMode,
    pub client_cert_required: bool,
    /// TCP clients in any phase.
    pub connected_clients: usize,
    pub connected_clusters: usize,
    /// 0 = unlimited (then the verbose line is omitted).
    pub max_clients: u64,
    pub max_client_send_size: u32,
    pub max_client_receive_size: u32,
    /// `None` while at least one TCP client is connected; otherwise seconds since
    /// the client count last dropped to 0 (or since start). `qnetd health
    /// --max-idle` reads it to notice a quorum device nobody uses any more.
    pub seconds_without_clients: Option<u64>,
    /// Daemon version (JSON only; the text form has no version line).
    pub version: String,
    /// Seconds since the daemon started (JSON only).
    pub uptime_seconds: u64,
}

impl Default for ServerStatus {
    /// The C defaults (wildcard, 5403, TLS on, client cert required, no client
    /// limit, 32 KiB message limits), nothing connected, just started.
    fn default() -> Self {
        ServerStatus {
            listen_addr: "*".to_string(),
            port: 5403,
            tls: TlsMode::On,
            client_cert_required: true,
            connected_clients: 0,
            connected_clusters: 0,
            max_clients: 0,
            max_client_send_size: 32768,
            max_client_receive_size: 32768,
            seconds_without_clients: Some(0),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: 0,
        }
    }
}

/// One cluster for `list`, members in node-id order.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterStatus {
    pub name: Vec<u8>,
    pub clients: Vec<ClientStatus>,
}

/// One initialised client for `list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientStatus {
    pub node_id: u32,
    /// `ip:port` as the C qnetd prints it (IPv6 text form, no brackets).
    pub addr: String,
    pub algorithm: u16,
    pub tie_breaker: TieBreaker,
    pub kap: bool,
    pub heartbeat_interval: u32,
    pub config_version: Option<u64>,
    pub config_nodes: Vec<NodeInfo>,
    pub ring_id: RingId,
    pub membership_nodes: Vec<NodeInfo>,
    pub heuristics: Heuristics,
    pub membership_heuristics: Heuristics,
    pub regular_heuristics: Heuristics,
    pub tls_active: bool,
    pub cert_verified: bool,
    pub last_sent_vote: Option<Vote>,
    pub last_sent_ack_nack_vote: Option<Vote>,
}

/// What the daemon does with a complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcResponse {
    /// Bytes to write before closing the connection. Empty means: close without
    /// a reply (the C qnetd does that when even the error message does not fit in
    /// `ipc_max_send_size`).
    pub reply: Vec<u8>,
    /// `shutdown` was accepted: once `reply` has been written *completely*, stop
    /// listening on the IPC socket and shut the daemon down. (The C qnetd only
    /// shuts down after the write finished; a tool that vanishes before reading
    /// its reply does not stop the daemon.)
    pub shutdown: bool,
}

/// True once the request buffer holds a `\n`, i.e. the daemon may call
/// [`respond`]. The daemon enforces `ipc_max_receive_size` itself: when the
/// buffer would grow beyond it, close without a reply, newline or not.
pub fn request_complete(buf: &[u8]) -> bool {
    buf.contains(&b'\n')
}

/// Characters that separate tokens. `\n` and `\r` are in the set too, but they
/// end the whole line rather than just the token.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\x0c' | b'\n' | b'\r' | b'\t' | b'\x0b')
}

/// The request-line tokeniser of the C qnetd (its "quote" lexer), byte for byte.
///
/// * tokens are separated by space, `\t`, `\f`, `\v`; `\r` or `\n` ends the line;
/// * `"` opens/closes a quoted section, which may be glued to unquoted text
///   (`a"b c"d` is the one token `ab cd`);
/// * outside quotes `\x` yields `x`; inside quotes `\\` and `\"` yield `\` and
///   `"`, any other `\x` yields both characters;
/// * a backslash right before the end of the line is dropped, and so is an
///   unterminated quote.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Lexer { input, pos: 0 }
    }

    /// The next token. Empty at the end of the line — and for an explicitly empty
    /// token such as `""`: the C server cannot tell the two apart, and every
    /// caller here treats both as "no more words".
    pub fn next_token(&mut self) -> Vec<u8> {
        enum St {
            Word,
            Backslash,
            Quoted,
            QuotedBackslash,
        }
        let mut tok = Vec::new();
        loop {
            match self.input.get(self.pos) {
                None | Some(b'\n') | Some(b'\r') => return tok,
                Some(&c) if is_space(c) => self.pos += 1,
                Some(_) => break,
            }
        }
        let mut st = St::Word;
        loop {
            let ch = self.input.get(self.pos).copied();
            match st {
                St::Word => match ch {
                    None => break,
                    Some(b'\\') => st = St::Backslash,
                    Some(b'"') => st = St::Quoted,
                    Some(c) if is_space(c) => break,
                    Some(c) => tok.push(c),
                },
                St::Backslash => match ch {
                    None | Some(b'\n') | Some(b'\r') => break,
                    Some(c) => {
                        tok.push(c);
                        st = St::Word;
                    }
                },
                St::Quoted => match ch {
                    None | Some(b'\n') | Some(b'\r') => break,
                    Some(b'\\') => st = St::QuotedBackslash,
                    Some(b'"') => st = St::Word,
                    Some(c) => tok.push(c),
                },
                St::QuotedBackslash => match ch {
                    None | Some(b'\n') | Some(b'\r') => break,
                    Some(c @ (b'\\' | b'"')) => {
                        tok.push(c);
                        st = St::Quoted;
                    }
                    Some(c) => {
                        tok.push(b'\\');
                        tok.push(c);
                        st = St::Quoted;
                    }
                },
            }
            self.pos += 1;
        }
        tok
    }
}

/// The part of a token the C server sees: it handles tokens as C strings, so a
/// NUL byte ends them.
fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

fn word_is(tok: &[u8], word: &str) -> bool {
    cstr(tok).eq_ignore_ascii_case(word.as_bytes())
}

/// Answer one complete request line (see the module doc). `max_send_size` is
/// `ipc_max_send_size`; the size rules are the C buffer's: a body that does not
/// leave room for a terminating NUL gives "Can't get QNetd status" / "Can't get
/// QNetd cluster list", a body that leaves no room for the `OK\n` prefix gives
/// "Internal IPC buffer too small", and an error message that does not fit
/// either gives an empty reply (close without answer).
pub fn respond(request: &[u8], status: &ServerStatus, clusters: &[ClusterStatus], max_send_size: usize) -> IpcResponse {
    let mut lex = Lexer::new(request);
    let cmd = lex.next_token();
    let cmd = cstr(&cmd);
    if cmd.is_empty() {
        return IpcResponse { reply: error_reply(b"No command specified", max_send_size), shutdown: false };
    }
    if word_is(cmd, "shutdown") {
        let reply = ok_reply(Vec::new(), "", max_send_size);
        let shutdown = reply.starts_with(b"OK\n");
        return IpcResponse { reply, shutdown };
    }
    if word_is(cmd, "status") {
        let (mut verbose, mut json) = (false, false);
        // The C server looks at the second word only. We keep scanning while the
        // words are `verbose` or `json`, so every C request means the same here.
        loop {
            let tok = lex.next_token();
            if word_is(&tok, "verbose") {
                verbose = true;
            } else if word_is(&tok, "json") {
                json = true;
            } else {
                break;
            }
        }
        let body = if json { status_json(status) } else { status_text(status, verbose) };
        return IpcResponse { reply: ok_reply(body, "Can't get QNetd status", max_send_size), shutdown: false };
    }
    if word_is(cmd, "list") {
        let (mut verbose, mut json) = (false, false);
        let mut name: Option<Vec<u8>> = None;
        loop {
            let tok = lex.next_token();
            if cstr(&tok).is_empty() {
                break;
            } else if word_is(&tok, "verbose") {
                verbose = true;
            } else if word_is(&tok, "json") {
                json = true;
            } else if word_is(&tok, "cluster") {
                name = Some(cstr(&lex.next_token()).to_vec());
            } else {
                break;
            }
        }
        // An empty name (`cluster ""`, or `cluster` at the end) lists everything.
        let filter = name.filter(|n| !n.is_empty());
        let selected: Vec<&ClusterStatus> =
            clusters.iter().filter(|c| filter.as_deref().is_none_or(|f| cstr(&c.name) == f)).collect();
        let body = if json { list_json(&selected) } else { list_text(&selected, verbose) };
        return IpcResponse { reply: ok_reply(body, "Can't get QNetd cluster list", max_send_size), shutdown: false };
    }
    let mut msg = b"Unknown command '".to_vec();
    msg.extend_from_slice(cmd);
    msg.push(b'\'');
    IpcResponse { reply: error_reply(&msg, max_send_size), shutdown: false }
}

/// `Error\n<msg>\n`, or nothing when it does not fit (the C buffer needs room for
/// the message plus a terminating NUL after `Error\n`).
fn error_reply(msg: &[u8], max_send_size: usize) -> Vec<u8> {
    if msg.len() + 7 > max_send_size {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(msg.len() + 7);
    out.extend_from_slice(b"Error\n");
    out.extend_from_slice(msg);
    out.push(b'\n');
    out
}

fn ok_reply(body: Vec<u8>, build_error: &str, max_send_size: usize) -> Vec<u8> {
    if !body.is_empty() && body.len() + 1 > max_send_size {
        return error_reply(build_error.as_bytes(), max_send_size);
    }
    if body.len() + 3 > max_send_size {
        return error_reply(b"Internal IPC buffer too small", max_send_size);
    }
    let mut out = Vec::with_capacity(body.len() + 3);
    out.extend_from_slice(b"OK\n");
    out.extend_from_slice(&body);
    out
}

fn tls_text(tls: TlsMode) -> &'static str {
    match tls {
        TlsMode::Off => "Unsupported",
        TlsMode::On => "Supported",
        TlsMode::Required => "Required",
    }
}

/// The `status [verbose]` body (tool-and-files.md §4.1).
pub fn status_text(s: &ServerStatus, verbose: bool) -> Vec<u8> {
    let mut o = String::new();
    let suffix = if s.tls != TlsMode::Off && s.client_cert_required { " (client certificate required)" } else { "" };
    let _ = writeln!(o, "QNetd address:\t\t\t{}:{}", s.listen_addr, s.port);
    let _ = writeln!(o, "TLS:\t\t\t\t{}{}", tls_text(s.tls), suffix);
    let _ = writeln!(o, "Connected clients:\t\t{}", s.connected_clients);
    let _ = writeln!(o, "Connected clusters:\t\t{}", s.connected_clusters);
    if verbose {
        if s.max_clients != 0 {
            let _ = writeln!(o, "Maximum allowed clients:\t{}", s.max_clients);
        }
        let _ =
            writeln!(o, "Maximum send/receive size:\t{}/{} bytes", s.max_client_send_size, s.max_client_receive_size);
    }
    o.into_bytes()
}

fn algorithm_name(n: u16) -> &'static str {
    crate::algo::lookup(n).map(|a| a.name()).unwrap_or("Unknown algorithm")
}

/// `(KAP Tie-breaker)` is shown when every client runs ffsplit with KAP on.
fn kap_active(c: &ClusterStatus) -> bool {
    c.clients.iter().all(|cl| cl.algorithm == crate::cluster::ALGO_FFSPLIT && cl.kap)
}

fn node_list_text(o: &mut Vec<u8>, nodes: &[NodeInfo]) {
    for (i, n) in nodes.iter().enumerate() {
        if i != 0 {
            o.extend_from_slice(b", ");
        }
        let _ = std::io::Write::write_fmt(o, format_args!("{}", n.node_id));
        if n.data_center_id != 0 {
            let _ = std::io::Write::write_fmt(o, format_args!(" ({})", n.data_center_id));
        }
    }
}

/// The `list [verbose]` body for the given clusters (tool-and-files.md §4.2).
pub fn list_text(clusters: &[&ClusterStatus], verbose: bool) -> Vec<u8> {
    use std::io::Write;
    let mut o: Vec<u8> = Vec::new();
    for c in clusters {
        o.extend_from_slice(b"Cluster \"");
        o.extend_from_slice(cstr(&c.name));
        o.extend_from_slice(b"\":\n");
        if let Some(first) = c.clients.first() {
            let kap = if kap_active(c) { " (KAP Tie-breaker)" } else { "" };
            let _ = writeln!(o, "    Algorithm:\t\t{}{}", algorithm_name(first.algorithm), kap);
            let _ = writeln!(o, "    Tie-breaker:\t{}", first.tie_breaker.describe());
        }
        for cl in &c.clients {
            let _ = writeln!(o, "    Node ID {}:", cl.node_id);
            let _ = writeln!(o, "        Client address:\t\t{}", cl.addr);
            if verbose {
                let _ = writeln!(o, "        HB interval:\t\t{}ms", cl.heartbeat_interval);
            }
            if let Some(v) = cl.config_version {
                let _ = writeln!(o, "        Configuration version:\t{}", v);
            }
            if !cl.config_nodes.is_empty() {
                o.extend_from_slice(b"        Configured node list:\t");
                node_list_text(&mut o, &cl.config_nodes);
                o.push(b'\n');
            }
            if verbose {
                let _ = writeln!(o, "        Ring ID:\t\t{}", cl.ring_id);
            }
            if !cl.membership_nodes.is_empty() {
                o.extend_from_slice(b"        Membership node list:\t");
                node_list_text(&mut o, &cl.membership_nodes);
                o.push(b'\n');
            }
            if cl.heuristics != Heuristics::Undefined || verbose {
                let _ = write!(o, "        Heuristics:\t\t{}", cl.heuristics.name());
                if verbose {
                    let _ = write!(
                        o,
                        " (membership: {}, regular: {})",
                        cl.membership_heuristics.name(),
                        cl.regular_heuristics.name()
                    );
                }
                o.push(b'\n');
            }
            if verbose {
                let _ = write!(o, "        TLS active:\t\t{}", if cl.tls_active { "Yes" } else { "No" });
                if cl.tls_active && cl.cert_verified {
                    o.extend_from_slice(b" (client certificate verified)");
                }
                o.push(b'\n');
            }
            if let Some(v) = cl.last_sent_vote {
                let _ = write!(o, "        Vote:\t\t\t{}", v.name());
                if let Some(an) = cl.last_sent_ack_nack_vote {
                    let _ = write!(o, " ({})", an.name());
                }
                o.push(b'\n');
            }
        }
    }
    o
}

fn tls_json(tls: TlsMode) -> &'static str {
    match tls {
        TlsMode::Off => "off",
        TlsMode::On => "on",
        TlsMode::Required => "required",
    }
}

fn heuristics_json(h: Heuristics) -> &'static str {
    match h {
        Heuristics::Undefined => "undefined",
        Heuristics::Pass => "pass",
        Heuristics::Fail => "fail",
    }
}

fn vote_json(v: Vote) -> &'static str {
    match v {
        Vote::Ack => "ack",
        Vote::Nack => "nack",
        Vote::AskLater => "ask_later",
        Vote::WaitForReply => "wait_for_reply",
        Vote::NoChange => "no_change",
    }
}

/// The `status json` body (fields in the module doc).
pub fn status_json(s: &ServerStatus) -> Vec<u8> {
    let mut out = String::new();
    let mut o = json::Obj::new(&mut out);
    o.str("version", &s.version);
    o.num("uptime_seconds", s.uptime_seconds);
    o.str("listen_address", &s.listen_addr);
    o.num("port", s.port);
    o.str("tls", tls_json(s.tls));
    o.bool("client_certificate_required", s.client_cert_required);
    o.num("connected_clients", s.connected_clients);
    o.num("connected_clusters", s.connected_clusters);
    o.num("max_clients", s.max_clients);
    o.num("max_client_send_size", s.max_client_send_size);
    o.num("max_client_receive_size", s.max_client_receive_size);
    o.opt_num("seconds_without_clients", s.seconds_without_clients);
    o.end();
    out.push('\n');
    out.into_bytes()
}

fn nodes_json(nodes: &[NodeInfo]) -> String {
    let mut out = String::from("[");
    for (i, n) in nodes.iter().enumerate() {
        if i != 0 {
            out.push(',');
        }
        let mut o = json::Obj::new(&mut out);
        o.num("node_id", n.node_id);
        o.num("data_center_id", n.data_center_id);
        o.end();
    }
    out.push(']');
    out
}

fn client_json(out: &mut String, cl: &ClientStatus) {
    let mut ring = String::new();
    let mut r = json::Obj::new(&mut ring);
    r.num("node_id", cl.ring_id.node_id);
    r.num("seq", cl.ring_id.seq);
    r.end();
    let mut o = json::Obj::new(out);
    o.num("node_id", cl.node_id);
    o.str("address", &cl.addr);
    o.num("heartbeat_interval_ms", cl.heartbeat_interval);
    o.opt_num("config_version", cl.config_version);
    o.raw("config_nodes", &nodes_json(&cl.config_nodes));
    o.raw("ring_id", &ring);
    o.raw("membership_nodes", &nodes_json(&cl.membership_nodes));
    o.str("heuristics", heuristics_json(cl.heuristics));
    o.str("membership_heuristics", heuristics_json(cl.membership_heuristics));
    o.str("regular_heuristics", heuristics_json(cl.regular_heuristics));
    o.bool("tls_active", cl.tls_active);
    o.bool("client_certificate_verified", cl.tls_active && cl.cert_verified);
    o.opt_str("vote", cl.last_sent_vote.map(vote_json));
    o.opt_str("ack_nack_vote", cl.last_sent_ack_nack_vote.map(vote_json));
    o.end();
}

/// The `list json` body for the given clusters (fields in the module doc).
pub fn list_json(clusters: &[&ClusterStatus]) -> Vec<u8> {
    let mut out = String::from("{\"clusters\":[");
    for (i, c) in clusters.iter().enumerate() {
        if i != 0 {
            out.push(',');
        }
        let first = c.clients.first();
        let tb = first.map(|cl| {
            let mut s = String::new();
            let mut o = json::Obj::new(&mut s);
            let (mode, id) = match cl.tie_breaker.mode {
                TieBreakerMode::Lowest => ("lowest", None),
                TieBreakerMode::Highest => ("highest", None),
                TieBreakerMode::NodeId => ("node_id", Some(cl.tie_breaker.node_id)),
            };
            o.str("mode", mode);
            o.opt_num("node_id", id);
            o.end();
            s
        });
        let mut clients = String::from("[");
        for (j, cl) in c.clients.iter().enumerate() {
            if j != 0 {
                clients.push(',');
            }
            client_json(&mut clients, cl);
        }
        clients.push(']');
        let mut o = json::Obj::new(&mut out);
        o.str("name", &String::from_utf8_lossy(cstr(&c.name)));
        o.opt_str("algorithm", first.map(|cl| algorithm_name(cl.algorithm)));
        o.opt_num("algorithm_id", first.map(|cl| cl.algorithm));
        o.bool("kap_tie_breaker", first.is_some() && kap_active(c));
        o.raw("tie_breaker", tb.as_deref().unwrap_or("null"));
        o.raw("clients", &clients);
        o.end();
    }
    out.push_str("]}\n");
    out.into_bytes()
}

/// Minimal JSON: a writer for the bodies above and a parser for `qnetd health`
/// (which reads `status json`) and the tests. Hand-written because we need a few
/// dozen lines of it, not a serialisation framework.
pub mod json {
    use std::fmt::Write as _;

    /// Append `s` as a JSON string literal (quotes included).
    pub fn write_str(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    /// Writes one object: `{` now, `,` between members, `}` at [`Obj::end`].
    pub struct Obj<'a> {
        out: &'a mut String,
        first: bool,
    }

    impl<'a> Obj<'a> {
        pub fn new(out: &'a mut String) -> Self {
            out.push('{');
            Obj { out, first: true }
        }
        fn key(&mut self, k: &str) {
            if !self.first {
                self.out.push(',');
            }
            self.first = false;
            write_str(self.out, k);
            self.out.push(':');
        }
        pub fn str(&mut self, k: &str, v: &str) {
            self.key(k);
            write_str(self.out, v);
        }
        pub fn opt_str(&mut self, k: &str, v: Option<&str>) {
            match v {
                Some(v) => self.str(k, v),
                None => self.raw(k, "null"),
            }
        }
        pub fn num(&mut self, k: &str, v: impl std::fmt::Display) {
            self.key(k);
            let _ = write!(self.out, "{v}");
        }
        pub fn opt_num<T: std::fmt::Display>(&mut self, k: &str, v: Option<T>) {
            match v {
                Some(v) => self.num(k, v),
                None => self.raw(k, "null"),
            }
        }
        pub fn bool(&mut self, k: &str, v: bool) {
            self.raw(k, if v { "true" } else { "false" });
        }
        /// `v` must already be valid JSON.
        pub fn raw(&mut self, k: &str, v: &str) {
            self.key(k);
            self.out.push_str(v);
        }
        pub fn end(self) {
            self.out.push('}');
        }
    }

    /// A parsed JSON value. Numbers keep their text so u64 values stay exact.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(String),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        /// Member `k` of an object (the last one if repeated).
        pub fn get(&self, k: &str) -> Option<&Value> {
            match self {
                Value::Object(m) => m.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v),
                _ => None,
            }
        }
        pub fn as_u64(&self) -> Option<u64> {
            match self {
                Value::Number(n) => n.parse().ok(),
                _ => None,
            }
        }
        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }
        pub fn is_null(&self) -> bool {
            matches!(self, Value::Null)
        }
    }

    /// Why a text is not JSON: byte offset and what was wrong there.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ParseError {
        pub offset: usize,
        pub what: &'static str,
    }

    impl std::fmt::Display for ParseError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "invalid JSON at byte {}: {}", self.offset, self.what)
        }
    }

    impl std::error::Error for ParseError {}

    /// Nesting limit: the input may come from a socket, recursion must stay bounded.
    const MAX_DEPTH: usize = 64;

    /// Parse one JSON text (RFC 8259), surrounding whitespace allowed.
    pub fn parse(text: &str) -> Result<Value, ParseError> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.err("trailing characters"));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn err(&self, what: &'static str) -> ParseError {
            ParseError { offset: self.i, what }
        }
        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
                self.i += 1;
            }
        }
        fn lit(&mut self, word: &str, v: Value) -> Result<Value, ParseError> {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                Ok(v)
            } else {
                Err(self.err("unknown literal"))
            }
        }
        fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
            if depth > MAX_DEPTH {
                return Err(self.err("nested too deeply"));
            }
            self.ws();
            match self.s.get(self.i) {
                None => Err(self.err("unexpected end")),
                Some(b'n') => self.lit("null", Value::Null),
                Some(b't') => self.lit("true", Value::Bool(true)),
                Some(b'f') => self.lit("false", Value::Bool(false)),
                Some(b'"') => Ok(Value::String(self.string()?)),
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Value::Array(items));
                            }
                            _ => return Err(self.err("expected ',' or ']'")),
                        }
                    }
                }
                Some(b'{') => {
                    self.i += 1;
                    let mut members = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Value::Object(members));
                    }
                    loop {
                        self.ws();
                        if self.s.get(self.i) != Some(&b'"') {
                            return Err(self.err("expected a member name"));
                        }
                        let k = self.string()?;
                        self.ws();
                        if self.s.get(self.i) != Some(&b':') {
                            return Err(self.err("expected ':'"));
                        }
                        self.i += 1;
                        let v = self.value(depth + 1)?;
                        members.push((k, v));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Value::Object(members));
                            }
                            _ => return Err(self.err("expected ',' or '}'")),
                        }
                    }
                }
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(_) => Err(self.err("unexpected character")),
            }
        }
        fn digits(&mut self) -> usize {
            let start = self.i;
            while let Some(b'0'..=b'9') = self.s.get(self.i) {
                self.i += 1;
            }
            self.i - start
        }
        fn number(&mut self) -> Result<Value, ParseError> {
            let start = self.i;
            if self.s.get(self.i) == Some(&b'-') {
                self.i += 1;
            }
            let int_start = self.i;
            let n = self.digits();
            if n == 0 || (n > 1 && self.s[int_start] == b'0') {
                return Err(self.err("malformed number"));
            }
            if self.s.get(self.i) == Some(&b'.') {
                self.i += 1;
                if self.digits() == 0 {
                    return Err(self.err("malformed number"));
                }
            }
            if let Some(b'e' | b'E') = self.s.get(self.i) {
                self.i += 1;
                if let Some(b'+' | b'-') = self.s.get(self.i) {
                    self.i += 1;
                }
                if self.digits() == 0 {
                    return Err(self.err("malformed number"));
                }
            }
            // The slice is ASCII digits and signs only.
            Ok(Value::Number(String::from_utf8_lossy(&self.s[start..self.i]).into_owned()))
        }
        fn hex4(&mut self) -> Result<u32, ParseError> {
            let h = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err("short \\u escape"))?;
            let h = std::str::from_utf8(h).map_err(|_| self.err("bad \\u escape"))?;
            let v = u32::from_str_radix(h, 16).map_err(|_| self.err("bad \\u escape"))?;
            self.i += 4;
            Ok(v)
        }
        fn string(&mut self) -> Result<String, ParseError> {
            self.i += 1; // opening quote
            let mut out = String::new();
            loop {
                let start = self.i;
                while let Some(&c) = self.s.get(self.i) {
                    if c == b'"' || c == b'\\' || c < 0x20 {
                        break;
                    }
                    self.i += 1;
                }
                // The input is a &str and we only stop on ASCII, so this is UTF-8.
                out.push_str(&String::from_utf8_lossy(&self.s[start..self.i]));
                match self.s.get(self.i) {
                    None => return Err(self.err("unterminated string")),
                    Some(b'"') => {
                        self.i += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        self.i += 1;
                        let e = *self.s.get(self.i).ok_or_else(|| self.err("unterminated string"))?;
                        self.i += 1;
                        match e {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => {
                                let hi = self.hex4()?;
                                let cp = if (0xd800..0xdc00).contains(&hi) {
                                    if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                        return Err(self.err("lone surrogate"));
                                    }
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    if !(0xdc00..0xe000).contains(&lo) {
                                        return Err(self.err("lone surrogate"));
                                    }
                                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                                } else {
                                    hi
                                };
                                out.push(char::from_u32(cp).ok_or_else(|| self.err("lone surrogate"))?);
                            }
                            _ => return Err(self.err("unknown escape")),
                        }
                    }
                    Some(_) => return Err(self.err("control character in string")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::json::{self, Value};
    use super::*;
    use crate::wire::{TieBreaker, TieBreakerMode};

    fn tokens(line: &[u8]) -> Vec<Vec<u8>> {
        let mut lex = Lexer::new(line);
        let mut out = Vec::new();
        loop {
            let t = lex.next_token();
            if t.is_empty() {
                return out;
            }
            out.push(t);
        }
    }

    fn toks(line: &str) -> Vec<String> {
        tokens(line.as_bytes()).into_iter().map(|t| String::from_utf8(t).unwrap()).collect()
    }

    #[test]
    fn lexer_separators_and_line_end() {
        assert_eq!(toks("list verbose cluster c1\n"), ["list", "verbose", "cluster", "c1"]);
        assert_eq!(toks("  a\tb\x0cc\x0bd  \n"), ["a", "b", "c", "d"]);
        assert_eq!(toks("status verbose\r\n"), ["status", "verbose"]);
        // \r alone ends the line too, and nothing after the end is seen.
        assert_eq!(toks("status\rverbose\n"), ["status"]);
        assert_eq!(toks("a\nb c\n"), ["a"]);
        assert_eq!(toks("no newline at all"), ["no", "newline", "at", "all"]);
        assert!(toks("\n").is_empty());
        assert!(toks("   \t \r\n").is_empty());
    }

    #[test]
    fn lexer_quotes() {
        assert_eq!(toks("cluster \"my cluster\" x\n"), ["cluster", "my cluster", "x"]);
        // Quoted sections glue to unquoted text.
        assert_eq!(toks("a\"b c\"d e\n"), ["ab cd", "e"]);
        assert_eq!(toks("\"a\"\"b\"\n"), ["ab"]);
        // Inside quotes: \\ and \" are escapes, any other \x stays two characters.
        assert_eq!(toks(r#""a\\b\"c\xd""#), [r#"a\b"c\xd"#]);
        // A tab inside quotes is kept.
        assert_eq!(toks("\"a\tb\"\n"), ["a\tb"]);
        // Unterminated quote: the token ends with the line.
        assert_eq!(toks("\"abc def\n"), ["abc def"]);
        assert_eq!(toks("\"abc def\r\nzzz"), ["abc def"]);
        // The tool's quoting of `we"ird\name` comes back unchanged.
        assert_eq!(toks("list cluster \"we\\\"ird\\\\name\" \n"), ["list", "cluster", "we\"ird\\name"]);
    }

    #[test]
    fn lexer_backslashes_outside_quotes() {
        assert_eq!(toks(r"a\ b c"), ["a b", "c"]);
        assert_eq!(toks(r#"\"x"#), ["\"x"]);
        assert_eq!(toks(r"\\"), ["\\"]);
        assert_eq!(toks("a\\\tb\n"), ["a\tb"]);
        // A backslash at the end of the line (or input) is dropped.
        assert_eq!(toks("abc\\\n"), ["abc"]);
        assert_eq!(toks("abc\\"), ["abc"]);
        assert_eq!(toks("\"abc\\\n"), ["abc"]);
        assert_eq!(toks("\"abc\\"), ["abc"]);
        // A backslash cannot escape the line end.
        assert_eq!(toks("a\\\rb\n"), ["a"]);
    }

    #[test]
    fn lexer_empty_token_reads_as_end() {
        let mut lex = Lexer::new(b"\"\" status\n");
        assert_eq!(lex.next_token(), b"");
        // The position moved past the quotes; the C caller never asks again.
        assert_eq!(lex.next_token(), b"status");
        assert_eq!(lex.next_token(), b"");
        assert_eq!(lex.next_token(), b"");
    }

    fn ok_body(r: &IpcResponse) -> &[u8] {
        r.reply.strip_prefix(b"OK\n").unwrap_or_else(|| panic!("not OK: {:?}", String::from_utf8_lossy(&r.reply)))
    }

    const BIG: usize = 10_485_760;

    fn reference(name: &str) -> Vec<u8> {
        let p = format!("{}/tests/data/reference-output/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn client(node_id: u32, addr: &str) -> ClientStatus {
        ClientStatus {
            node_id,
            addr: addr.to_string(),
            algorithm: crate::cluster::ALGO_FFSPLIT,
            tie_breaker: TieBreaker { mode: TieBreakerMode::Lowest, node_id: 0 },
            kap: true,
            heartbeat_interval: 8000,
            config_version: None,
            config_nodes: vec![],
            ring_id: RingId::default(),
            membership_nodes: vec![],
            heuristics: Heuristics::Undefined,
            membership_heuristics: Heuristics::Undefined,
            regular_heuristics: Heuristics::Undefined,
            tls_active: true,
            cert_verified: true,
            last_sent_vote: None,
            last_sent_ack_nack_vote: None,
        }
    }

    fn nodes(ids: &[u32]) -> Vec<NodeInfo> {
        ids.iter().map(|&i| NodeInfo::new(i)).collect()
    }

    fn lab_client(
        node_id: u32,
        port: u16,
        config: &[u32],
        ring: (u32, u64),
        member: &[u32],
        vote: Vote,
        an: Vote,
    ) -> ClientStatus {
        ClientStatus {
            config_nodes: nodes(config),
            ring_id: RingId { node_id: ring.0, seq: ring.1 },
            membership_nodes: nodes(member),
            last_sent_vote: Some(vote),
            last_sent_ack_nack_vote: Some(an),
            ..client(node_id, &format!("::ffff:10.213.7.{node_id}:{port}"))
        }
    }

    /// The two-node lab cluster of qnetd-tool-{l,lv,l-c}.txt.
    fn lab() -> Vec<ClusterStatus> {
        vec![ClusterStatus {
            name: b"labcluster".to_vec(),
            clients: vec![
                lab_client(1, 46738, &[1, 2], (1, 9), &[1, 2], Vote::Ack, Vote::Ack),
                lab_client(2, 35400, &[1, 2], (1, 9), &[1, 2], Vote::NoChange, Vote::Ack),
            ],
        }]
    }

    fn lab_status() -> ServerStatus {
        ServerStatus { connected_clients: 2, connected_clusters: 1, ..ServerStatus::default() }
    }

    #[test]
    fn reference_status() {
        let s = lab_status();
        assert_eq!(ok_body(&respond(b"status \n", &s, &[], BIG)), reference("qnetd-tool-s.txt"));
        assert_eq!(ok_body(&respond(b"status verbose \n", &s, &[], BIG)), reference("qnetd-tool-sv.txt"));
    }

    #[test]
    fn reference_list() {
        let s = lab_status();
        let c = lab();
        assert_eq!(ok_body(&respond(b"list \n", &s, &c, BIG)), reference("qnetd-tool-l.txt"));
        assert_eq!(ok_body(&respond(b"list verbose \n", &s, &c, BIG)), reference("qnetd-tool-lv.txt"));
        assert_eq!(ok_body(&respond(b"list cluster \"labcluster\" \n", &s, &c, BIG)), reference("qnetd-tool-l-c.txt"));
    }

    #[test]
    fn reference_partitions() {
        let s = lab_status();
        let two = vec![ClusterStatus {
            name: b"labcluster".to_vec(),
            clients: vec![
                lab_client(1, 53044, &[1, 2], (1, 0x27), &[1], Vote::NoChange, Vote::Ack),
                lab_client(2, 49706, &[1, 2], (2, 0x27), &[2], Vote::NoChange, Vote::Nack),
            ],
        }];
        assert_eq!(ok_body(&respond(b"list verbose \n", &s, &two, BIG)), reference("partition-qnetd-tool-lv.txt"));
        let all = [1, 2, 3, 4];
        let four = vec![ClusterStatus {
            name: b"labcluster".to_vec(),
            clients: vec![
                lab_client(1, 60266, &all, (1, 0xd), &[1, 2], Vote::NoChange, Vote::Ack),
                lab_client(2, 43850, &all, (1, 0xd), &[1, 2], Vote::NoChange, Vote::Ack),
                lab_client(3, 60702, &all, (3, 0xd), &[3, 4], Vote::NoChange, Vote::Nack),
                lab_client(4, 55042, &all, (3, 0xd), &[3, 4], Vote::NoChange, Vote::Nack),
            ],
        }];
        assert_eq!(ok_body(&respond(b"list verbose \n", &s, &four, BIG)), reference("partition4-qnetd-tool-lv.txt"));
    }

    /// The example in tool-and-files.md §4.2 (observed on the C qnetd): config
    /// version, heuristics, TLS off.
    #[test]
    fn spec_example_list_verbose() {
        let c = vec![ClusterStatus {
            name: b"c1".to_vec(),
            clients: vec![ClientStatus {
                config_version: Some(7),
                config_nodes: nodes(&[1, 2]),
                ring_id: RingId { node_id: 1, seq: 6 },
                membership_nodes: nodes(&[1, 2]),
                heuristics: Heuristics::Pass,
                membership_heuristics: Heuristics::Pass,
                tls_active: false,
                cert_verified: false,
                last_sent_vote: Some(Vote::NoChange),
                last_sent_ack_nack_vote: Some(Vote::Ack),
                ..client(1, "127.0.0.1:46958")
            }],
        }];
        let want = "Cluster \"c1\":\n    Algorithm:\t\tFifty-Fifty split (KAP Tie-breaker)\n    Tie-breaker:\tNode with lowest node ID\n    Node ID 1:\n        Client address:\t\t127.0.0.1:46958\n        HB interval:\t\t8000ms\n        Configuration version:\t7\n        Configured node list:\t1, 2\n        Ring ID:\t\t1.6\n        Membership node list:\t1, 2\n        Heuristics:\t\tPass (membership: Pass, regular: Undefined)\n        TLS active:\t\tNo\n        Vote:\t\t\tNo change (ACK)\n";
        assert_eq!(String::from_utf8_lossy(ok_body(&respond(b"list verbose\n", &lab_status(), &c, BIG))), want);
        // Non-verbose: defined heuristics still shown, without the bracket.
        let want = "Cluster \"c1\":\n    Algorithm:\t\tFifty-Fifty split (KAP Tie-breaker)\n    Tie-breaker:\tNode with lowest node ID\n    Node ID 1:\n        Client address:\t\t127.0.0.1:46958\n        Configuration version:\t7\n        Configured node list:\t1, 2\n        Membership node list:\t1, 2\n        Heuristics:\t\tPass\n        Vote:\t\t\tNo change (ACK)\n";
        assert_eq!(String::from_utf8_lossy(ok_body(&respond(b"list\n", &lab_status(), &c, BIG))), want);
    }

    #[test]
    fn list_conditional_parts() {
        let mut a = client(3, "10.0.0.3:1000");
        a.algorithm = crate::cluster::ALGO_LMS;
        a.tie_breaker = TieBreaker { mode: TieBreakerMode::NodeId, node_id: 3 };
        a.config_nodes = vec![
            NodeInfo { node_id: 3, data_center_id: 10, node_state: None },
            NodeInfo::new(5),
            NodeInfo { node_id: 4, data_center_id: 4294967295, node_state: None },
        ];
        a.ring_id = RingId { node_id: 0xabcdef, seq: u64::MAX };
        a.tls_active = true;
        a.cert_verified = false;
        a.last_sent_vote = Some(Vote::WaitForReply);
        let mut b = client(7, "[::1]:1");
        b.algorithm = crate::cluster::ALGO_LMS;
        b.tls_active = false;
        b.cert_verified = true; // never shown without TLS
        b.heuristics = Heuristics::Fail;
        b.regular_heuristics = Heuristics::Fail;
        b.last_sent_vote = Some(Vote::AskLater);
        let cl = vec![ClusterStatus { name: b"x".to_vec(), clients: vec![a, b] }];
        let got = String::from_utf8(ok_body(&respond(b"LIST VERBOSE\n", &lab_status(), &cl, BIG)).to_vec()).unwrap();
        let want = "Cluster \"x\":\n    Algorithm:\t\tLMS\n    Tie-breaker:\tNode with node ID 3\n    Node ID 3:\n        Client address:\t\t10.0.0.3:1000\n        HB interval:\t\t8000ms\n        Configured node list:\t3 (10), 5, 4 (4294967295)\n        Ring ID:\t\tabcdef.ffffffffffffffff\n        Heuristics:\t\tUndefined (membership: Undefined, regular: Undefined)\n        TLS active:\t\tYes\n        Vote:\t\t\tWait for reply\n    Node ID 7:\n        Client address:\t\t[::1]:1\n        HB interval:\t\t8000ms\n        Ring ID:\t\t0.0\n        Heuristics:\t\tFail (membership: Undefined, regular: Fail)\n        TLS active:\t\tNo\n        Vote:\t\t\tAsk later\n";
        assert_eq!(got, want);
    }

    #[test]
    fn kap_suffix_needs_every_client_ffsplit_with_kap() {
        let s = lab_status();
        let algo_line = |clients: Vec<ClientStatus>| {
            let c = vec![ClusterStatus { name: b"k".to_vec(), clients }];
            let body = String::from_utf8(ok_body(&respond(b"list\n", &s, &c, BIG)).to_vec()).unwrap();
            body.lines().nth(1).unwrap().to_string()
        };
        let (a, b) = (client(1, "a:1"), client(2, "b:2"));
        assert_eq!(algo_line(vec![a.clone(), b.clone()]), "    Algorithm:\t\tFifty-Fifty split (KAP Tie-breaker)");
        let mut b_nokap = b.clone();
        b_nokap.kap = false;
        assert_eq!(algo_line(vec![a.clone(), b_nokap]), "    Algorithm:\t\tFifty-Fifty split");
        let mut b_lms = b.clone();
        b_lms.algorithm = crate::cluster::ALGO_LMS;
        // The name comes from the first client, the suffix from all of them.
        assert_eq!(algo_line(vec![a.clone(), b_lms]), "    Algorithm:\t\tFifty-Fifty split");
        let mut t = a.clone();
        t.algorithm = crate::cluster::ALGO_TEST;
        assert_eq!(algo_line(vec![t.clone()]), "    Algorithm:\t\tTest");
        t.algorithm = crate::cluster::ALGO_2NODELMS;
        assert_eq!(algo_line(vec![t.clone()]), "    Algorithm:\t\t2 Node LMS");
        t.algorithm = 9;
        assert_eq!(algo_line(vec![t]), "    Algorithm:\t\tUnknown algorithm");
        // A cluster without clients prints only its name line.
        let c = vec![ClusterStatus { name: b"empty".to_vec(), clients: vec![] }];
        assert_eq!(ok_body(&respond(b"list verbose\n", &s, &c, BIG)), b"Cluster \"empty\":\n");
    }

    #[test]
    fn tie_breaker_texts() {
        let s = lab_status();
        for (mode, id, text) in [
            (TieBreakerMode::Lowest, 0, "Node with lowest node ID"),
            (TieBreakerMode::Highest, 0, "Node with highest node ID"),
            (TieBreakerMode::NodeId, 42, "Node with node ID 42"),
        ] {
            let mut a = client(1, "a:1");
            a.tie_breaker = TieBreaker { mode, node_id: id };
            let c = vec![ClusterStatus { name: b"t".to_vec(), clients: vec![a] }];
            let body = String::from_utf8(ok_body(&respond(b"list\n", &s, &c, BIG)).to_vec()).unwrap();
            assert_eq!(body.lines().nth(2).unwrap(), format!("    Tie-breaker:\t{text}"));
        }
    }

    #[test]
    fn status_variants() {
        let mut s = ServerStatus {
            listen_addr: "192.0.2.1".into(),
            port: 1234,
            tls: TlsMode::Off,
            client_cert_required: true,
            connected_clients: 3,
            connected_clusters: 0,
            max_clients: 17,
            max_client_send_size: 40000,
            max_client_receive_size: 50000,
            ..ServerStatus::default()
        };
        let v = |s: &ServerStatus, req: &[u8]| String::from_utf8(ok_body(&respond(req, s, &[], BIG)).to_vec()).unwrap();
        assert_eq!(
            v(&s, b"status verbose\n"),
            "QNetd address:\t\t\t192.0.2.1:1234\nTLS:\t\t\t\tUnsupported\nConnected clients:\t\t3\nConnected clusters:\t\t0\nMaximum allowed clients:\t17\nMaximum send/receive size:\t40000/50000 bytes\n"
        );
        s.tls = TlsMode::Required;
        s.client_cert_required = false;
        assert_eq!(v(&s, b"Status\n").lines().nth(1).unwrap(), "TLS:\t\t\t\tRequired");
        s.client_cert_required = true;
        assert_eq!(v(&s, b"status\n").lines().nth(1).unwrap(), "TLS:\t\t\t\tRequired (client certificate required)");
        // Only the word right after `status` counts (plus our json).
        assert_eq!(v(&s, b"status foo verbose\n").lines().count(), 4);
        assert_eq!(v(&s, b"status VERBOSE junk\n").lines().count(), 6);
        assert_eq!(v(&s, b"status \"verbose\"\n").lines().count(), 6);
        assert_eq!(v(&s, b"status verbose\r\n").lines().count(), 6);
        assert_eq!(v(&s, b"status\tverbose\x0b\n").lines().count(), 6);
        s.max_clients = 0;
        assert_eq!(v(&s, b"status verbose\n").lines().count(), 5);
    }

    #[test]
    fn errors_and_shutdown() {
        let s = lab_status();
        let r = |req: &[u8]| respond(req, &s, &lab(), BIG);
        assert_eq!(r(b"\n"), IpcResponse { reply: b"Error\nNo command specified\n".to_vec(), shutdown: false });
        assert_eq!(r(b"  \t\r\n").reply, b"Error\nNo command specified\n");
        assert_eq!(r(b"\"\" status\n").reply, b"Error\nNo command specified\n");
        assert_eq!(r(b"\0status\n").reply, b"Error\nNo command specified\n");
        assert_eq!(r(b"foo bar\n").reply, b"Error\nUnknown command 'foo'\n");
        assert_eq!(r(b"\"foo bar\"\n").reply, b"Error\nUnknown command 'foo bar'\n");
        assert_eq!(r(b"st\0atus\n").reply, b"Error\nUnknown command 'st'\n");
        assert_eq!(r(b"json\n").reply, b"Error\nUnknown command 'json'\n");
        assert_eq!(r(b"shutdown\n"), IpcResponse { reply: b"OK\n".to_vec(), shutdown: true });
        assert_eq!(r(b"ShutDown now please\n"), IpcResponse { reply: b"OK\n".to_vec(), shutdown: true });
        assert!(!r(b"status\n").shutdown);
        assert!(!r(b"list\n").shutdown);
    }

    #[test]
    fn list_arguments() {
        let s = lab_status();
        let mut other = lab();
        other[0].name = b"other".to_vec();
        let mut nul = lab();
        nul[0].name = b"we\"ird\\name\0tail".to_vec();
        let clusters: Vec<ClusterStatus> = [lab(), other, nul].concat();
        let names = |req: &[u8]| -> Vec<String> {
            let body = String::from_utf8(ok_body(&respond(req, &s, &clusters, BIG)).to_vec()).unwrap();
            body.lines().filter(|l| l.starts_with("Cluster")).map(String::from).collect()
        };
        let all = ["Cluster \"labcluster\":", "Cluster \"other\":", "Cluster \"we\"ird\\name\":"];
        assert_eq!(names(b"list\n"), all);
        assert_eq!(names(b"list cluster other\n"), ["Cluster \"other\":"]);
        assert_eq!(names(b"LIST CLUSTER \"other\" \n"), ["Cluster \"other\":"]);
        // Byte-exact, case-sensitive name.
        assert!(names(b"list cluster Other\n").is_empty());
        assert!(names(b"list cluster othe\n").is_empty());
        assert!(names(b"list cluster nosuch\n").is_empty());
        // Last `cluster` wins; an empty name means all.
        assert_eq!(names(b"list cluster other cluster labcluster\n"), ["Cluster \"labcluster\":"]);
        assert_eq!(names(b"list cluster\n"), all);
        assert_eq!(names(b"list cluster \"\" \n"), all);
        // Names are C strings: the tool's quoting round-trips, NUL ends the name.
        assert_eq!(names(b"list cluster \"we\\\"ird\\\\name\" \n"), ["Cluster \"we\"ird\\name\":"]);
        // Scanning stops at the first other word.
        assert_eq!(names(b"list bogus cluster other\n"), all);
        let lines = |req: &[u8]| ok_body(&respond(req, &s, &lab(), BIG)).split(|&c| c == b'\n').count();
        assert_eq!(lines(b"list verbose\n"), lines(b"list cluster labcluster VERBOSE\n"));
        assert_eq!(lines(b"list\n"), lines(b"list bogus verbose\n"));
        assert_eq!(lines(b"list\n"), lines(b"list \"\" verbose\n"));
        assert_ne!(lines(b"list\n"), lines(b"list cluster \"\" verbose\n"));
        // An unknown cluster is not an error: empty body.
        assert_eq!(respond(b"list cluster nosuch\n", &s, &lab(), BIG).reply, b"OK\n");
    }

    #[test]
    fn reply_size_limits_follow_the_c_buffer() {
        let s = lab_status();
        let body_len = status_text(&s, false).len();
        let at = |max: usize| respond(b"status\n", &s, &[], max).reply;
        assert!(at(body_len + 3).starts_with(b"OK\n"));
        assert_eq!(at(body_len + 2), b"Error\nInternal IPC buffer too small\n");
        assert_eq!(at(body_len + 1), b"Error\nInternal IPC buffer too small\n");
        assert_eq!(at(body_len), b"Error\nCan't get QNetd status\n");
        let list_len = list_text(&lab().iter().collect::<Vec<_>>(), true).len();
        let lat = |max: usize| respond(b"list verbose\n", &s, &lab(), max).reply;
        assert!(lat(list_len + 3).starts_with(b"OK\n"));
        assert_eq!(lat(list_len + 1), b"Error\nInternal IPC buffer too small\n");
        assert_eq!(lat(list_len), b"Error\nCan't get QNetd cluster list\n");
        // "Error\n" + message + NUL must fit, else no reply at all.
        let msg = "Can't get QNetd status";
        assert_eq!(at(msg.len() + 7), format!("Error\n{msg}\n").into_bytes());
        assert_eq!(at(msg.len() + 6), b"");
        let long = format!("{}\n", "x".repeat(2000));
        assert_eq!(respond(long.as_bytes(), &s, &[], 1024).reply, b"");
        assert!(respond(long.as_bytes(), &s, &[], 4096).reply.starts_with(b"Error\nUnknown command 'xxx"));
        // An empty list body never fails; shutdown needs room for "OK\n".
        assert_eq!(respond(b"list cluster none\n", &s, &lab(), 3).reply, b"OK\n");
        assert_eq!(respond(b"shutdown\n", &s, &[], 2), IpcResponse { reply: vec![], shutdown: false });
    }

    #[test]
    fn request_completion() {
        assert!(!request_complete(b""));
        assert!(!request_complete(b"status verbose"));
        assert!(!request_complete(b"status\r"));
        assert!(request_complete(b"status\n"));
        assert!(request_complete(b"status\ntrailing junk"));
    }

    #[test]
    fn status_json_fields() {
        let mut s = lab_status();
        s.version = "1.2.3 \"beta\"".into();
        s.uptime_seconds = 99;
        s.seconds_without_clients = None;
        let body = ok_body(&respond(b"status json\n", &s, &[], BIG)).to_vec();
        assert_eq!(body.last(), Some(&b'\n'));
        assert_eq!(body.iter().filter(|&&c| c == b'\n').count(), 1);
        let v = json::parse(std::str::from_utf8(&body).unwrap()).unwrap();
        assert_eq!(v.get("version").and_then(Value::as_str), Some("1.2.3 \"beta\""));
        assert_eq!(v.get("uptime_seconds").and_then(Value::as_u64), Some(99));
        assert_eq!(v.get("listen_address").and_then(Value::as_str), Some("*"));
        assert_eq!(v.get("port").and_then(Value::as_u64), Some(5403));
        assert_eq!(v.get("tls").and_then(Value::as_str), Some("on"));
        assert_eq!(v.get("client_certificate_required"), Some(&Value::Bool(true)));
        assert_eq!(v.get("connected_clients").and_then(Value::as_u64), Some(2));
        assert_eq!(v.get("connected_clusters").and_then(Value::as_u64), Some(1));
        assert_eq!(v.get("max_clients").and_then(Value::as_u64), Some(0));
        assert_eq!(v.get("max_client_send_size").and_then(Value::as_u64), Some(32768));
        assert_eq!(v.get("max_client_receive_size").and_then(Value::as_u64), Some(32768));
        assert!(v.get("seconds_without_clients").unwrap().is_null());
        s.seconds_without_clients = Some(601);
        for req in [&b"status verbose json\n"[..], b"STATUS JSON VERBOSE\n", b"status json\r\n"] {
            let body = ok_body(&respond(req, &s, &[], BIG)).to_vec();
            let v = json::parse(std::str::from_utf8(&body).unwrap()).unwrap();
            assert_eq!(v.get("seconds_without_clients").and_then(Value::as_u64), Some(601));
        }
    }

    #[test]
    fn list_json_fields() {
        let s = lab_status();
        let mut c = lab();
        c[0].clients[0].config_version = Some(u64::MAX);
        c[0].clients[0].config_nodes[1].data_center_id = 5;
        c[0].clients[1].last_sent_vote = None;
        c[0].clients[1].last_sent_ack_nack_vote = None;
        c[0].clients[1].heuristics = Heuristics::Fail;
        c.push(ClusterStatus { name: b"empty".to_vec(), clients: vec![] });
        let body = ok_body(&respond(b"list json\n", &s, &c, BIG)).to_vec();
        let v = json::parse(std::str::from_utf8(&body).unwrap()).unwrap();
        let Some(Value::Array(cl)) = v.get("clusters") else { panic!("no clusters: {v:?}") };
        assert_eq!(cl.len(), 2);
        let lab = &cl[0];
        assert_eq!(lab.get("name").and_then(Value::as_str), Some("labcluster"));
        assert_eq!(lab.get("algorithm").and_then(Value::as_str), Some("Fifty-Fifty split"));
        assert_eq!(lab.get("algorithm_id").and_then(Value::as_u64), Some(1));
        assert_eq!(lab.get("kap_tie_breaker"), Some(&Value::Bool(true)));
        let tb = lab.get("tie_breaker").unwrap();
        assert_eq!(tb.get("mode").and_then(Value::as_str), Some("lowest"));
        assert!(tb.get("node_id").unwrap().is_null());
        let Some(Value::Array(clients)) = lab.get("clients") else { panic!() };
        let (a, b) = (&clients[0], &clients[1]);
        assert_eq!(a.get("node_id").and_then(Value::as_u64), Some(1));
        assert_eq!(a.get("address").and_then(Value::as_str), Some("::ffff:10.213.7.1:46738"));
        assert_eq!(a.get("heartbeat_interval_ms").and_then(Value::as_u64), Some(8000));
        assert_eq!(a.get("config_version").and_then(Value::as_u64), Some(u64::MAX));
        let Some(Value::Array(cfg)) = a.get("config_nodes") else { panic!() };
        assert_eq!(cfg[1].get("node_id").and_then(Value::as_u64), Some(2));
        assert_eq!(cfg[1].get("data_center_id").and_then(Value::as_u64), Some(5));
        assert_eq!(a.get("ring_id").unwrap().get("seq").and_then(Value::as_u64), Some(9));
        assert_eq!(a.get("heuristics").and_then(Value::as_str), Some("undefined"));
        assert_eq!(a.get("tls_active"), Some(&Value::Bool(true)));
        assert_eq!(a.get("client_certificate_verified"), Some(&Value::Bool(true)));
        assert_eq!(a.get("vote").and_then(Value::as_str), Some("ack"));
        assert_eq!(a.get("ack_nack_vote").and_then(Value::as_str), Some("ack"));
        assert!(b.get("vote").unwrap().is_null());
        assert!(b.get("config_version").unwrap().is_null());
        assert_eq!(b.get("heuristics").and_then(Value::as_str), Some("fail"));
        let e = &cl[1];
        assert!(e.get("algorithm").unwrap().is_null());
        assert!(e.get("tie_breaker").unwrap().is_null());
        assert_eq!(e.get("kap_tie_breaker"), Some(&Value::Bool(false)));
        assert_eq!(e.get("clients"), Some(&Value::Array(vec![])));
        // The filter applies; verbose is irrelevant.
        let one = ok_body(&respond(b"list verbose cluster empty json\n", &s, &c, BIG)).to_vec();
        assert_eq!(one, b"{\"clusters\":[{\"name\":\"empty\",\"algorithm\":null,\"algorithm_id\":null,\"kap_tie_breaker\":false,\"tie_breaker\":null,\"clients\":[]}]}\n");
        assert_eq!(ok_body(&respond(b"list json cluster x\n", &s, &c, BIG)), b"{\"clusters\":[]}\n");
    }

    #[test]
    fn json_parser_accepts_and_rejects() {
        let v =
            json::parse(" {\"a\" : [1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\\/\"], \"b\":{}} ").unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Value::Array(vec![
                Value::Number("1".into()),
                Value::Number("-2.5e3".into()),
                Value::Bool(true),
                Value::Bool(false),
                Value::Null,
                Value::String("x\u{e9}\u{1f600}/".into()),
            ]))
        );
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "\"abc",
            "\"a\nb\"",
            "\"\\x\"",
            "tru",
            "\"\\ud800\"",
            "[1] 2",
            "{a:1}",
            "\"\\u12\"",
        ] {
            assert!(json::parse(bad).is_err(), "accepted {bad:?}");
        }
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert!(json::parse(&deep).is_err());
    }

    fn any_client() -> impl proptest::strategy::Strategy<Value = ClientStatus> {
        use proptest::prelude::*;
        (any::<u32>(), ".*", any::<Option<u64>>(), any::<u64>(), any::<bool>()).prop_map(|(id, addr, cv, seq, tls)| {
            let mut c = client(id, &addr);
            c.config_version = cv;
            c.ring_id = RingId { node_id: id, seq };
            c.tls_active = tls;
            c
        })
    }

    proptest::proptest! {
        /// Any cluster name and address (quotes, backslashes, control characters,
        /// invalid UTF-8) gives valid JSON that reads back to the same values.
        #[test]
        fn json_round_trips(
            name in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            clients in proptest::collection::vec(any_client(), 0..4),
            version in ".*",
        ) {
            let c = [ClusterStatus { name: name.clone(), clients: clients.clone() }];
            let body = list_json(&c.iter().collect::<Vec<_>>());
            let text = String::from_utf8(body).expect("JSON output is UTF-8");
            let v = json::parse(&text).expect("valid JSON");
            let Some(Value::Array(cl)) = v.get("clusters") else { panic!("no clusters") };
            let want = String::from_utf8_lossy(cstr(&name)).into_owned();
            proptest::prop_assert_eq!(cl[0].get("name").and_then(Value::as_str), Some(want.as_str()));
            let Some(Value::Array(got)) = cl[0].get("clients") else { panic!("no clients") };
            proptest::prop_assert_eq!(got.len(), clients.len());
            for (g, c) in got.iter().zip(&clients) {
                proptest::prop_assert_eq!(g.get("address").and_then(Value::as_str), Some(c.addr.as_str()));
                proptest::prop_assert_eq!(g.get("node_id").and_then(Value::as_u64), Some(c.node_id as u64));
                proptest::prop_assert_eq!(g.get("config_version").and_then(Value::as_u64), c.config_version);
                proptest::prop_assert_eq!(g.get("ring_id").and_then(|r| r.get("seq")).and_then(Value::as_u64), Some(c.ring_id.seq));
            }
            let s = ServerStatus { version: version.clone(), ..ServerStatus::default() };
            let v = json::parse(std::str::from_utf8(&status_json(&s)).unwrap()).expect("valid JSON");
            proptest::prop_assert_eq!(v.get("version").and_then(Value::as_str), Some(version.as_str()));
        }

        /// The parser never panics, whatever it is fed.
        #[test]
        fn json_parser_total(text in ".*") {
            let _ = json::parse(&text);
        }

        /// Respond never panics and always answers in the protocol's shape.
        #[test]
        fn respond_total(req in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), max in 0usize..400) {
            let r = respond(&req, &lab_status(), &lab(), max);
            proptest::prop_assert!(r.reply.is_empty() || r.reply.starts_with(b"OK\n") || r.reply.starts_with(b"Error\n"));
            proptest::prop_assert!(r.reply.len() <= max);
        }
    }
}
