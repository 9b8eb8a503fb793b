//! Daemon settings: the `corosync-qnetd` command line and its `-S` advanced settings
//! (tool-and-files.md §1, §2), with the C defaults.

use std::path::PathBuf;

/// `-s`: TLS mode, as advertised in PREINIT_REPLY option 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Off,
    On,
    Required,
}

impl TlsMode {
    pub fn wire(self) -> crate::wire::TlsSupported {
        match self {
            TlsMode::Off => crate::wire::TlsSupported::Unsupported,
            TlsMode::On => crate::wire::TlsSupported::Supported,
            TlsMode::Required => crate::wire::TlsSupported::Required,
        }
    }
}

/// Everything the sans-IO core needs to know about its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreSettings {
    pub tls: TlsMode,
    /// `-c`: client certificate required when TLS is used.
    pub client_cert_required: bool,
    /// `-m`: 0 = unlimited.
    pub max_clients: u64,
    pub max_client_send_buffers: usize,
    pub max_client_send_size: u32,
    pub max_client_receive_size: u32,
    pub heartbeat_interval_min: u32,
    pub heartbeat_interval_max: u32,
    pub dpd_enabled: bool,
    pub dpd_interval_coefficient: f64,
    pub keep_active_partition_tie_breaker: bool,
    /// Our addition: a connection that has not completed INIT (and, if it asked for
    /// it, the TLS handshake) within this many ms is dropped. 0 = never.
    pub handshake_timeout: u64,
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings {
            tls: TlsMode::On,
            client_cert_required: true,
            max_clients: 0,
            max_client_send_buffers: 32,
            max_client_send_size: 32768,
            max_client_receive_size: 32768,
            heartbeat_interval_min: 1000,
            heartbeat_interval_max: 120_000,
            dpd_enabled: true,
            dpd_interval_coefficient: 1.5,
            keep_active_partition_tie_breaker: false,
            handshake_timeout: 10_000,
        }
    }
}

/// Settings only the shell (sockets, files) uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ShellSettings {
    pub listen_addr: Option<String>,
    pub port: u16,
    pub ipv4_only: bool,
    pub ipv6_only: bool,
    pub foreground: bool,
    pub debug: u8,
    /// Log to syslog as well as stderr (the C daemon always does; `qnetd run`
    /// only with `--syslog`).
    pub syslog: bool,
    pub listen_backlog: i32,
    pub nss_db_dir: PathBuf,
    pub cert_nickname: String,
    pub lock_file: PathBuf,
    pub local_socket_file: PathBuf,
    pub local_socket_umask: Option<u32>,
    pub local_socket_gid: Option<u32>,
    pub local_socket_backlog: i32,
    pub ipc_max_clients: usize,
    pub ipc_max_receive_size: usize,
    pub ipc_max_send_size: usize,
}

impl Default for ShellSettings {
    fn default() -> Self {
        ShellSettings {
            listen_addr: None,
            port: 5403,
            ipv4_only: false,
            ipv6_only: false,
            foreground: false,
            debug: 0,
            syslog: true,
            listen_backlog: 10,
            nss_db_dir: PathBuf::from("/etc/corosync/qnetd/nssdb"),
            cert_nickname: "QNetd Cert".to_string(),
            lock_file: PathBuf::from("/var/run/corosync-qnetd/corosync-qnetd.pid"),
            local_socket_file: PathBuf::from("/var/run/corosync-qnetd/corosync-qnetd.sock"),
            local_socket_umask: None,
            local_socket_gid: None,
            local_socket_backlog: 10,
            ipc_max_clients: 10,
            ipc_max_receive_size: 4096,
            ipc_max_send_size: 10_485_760,
        }
    }
}

/// Both halves of the configuration, as the command line produced them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    pub core: CoreSettings,
    pub shell: ShellSettings,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Cli {
    Run(Box<Settings>),
    /// `-h`: print [`USAGE`] to stdout, exit 1 (as the C tool does).
    Help,
    /// `-v`: print [`version_text`] to stdout, exit 1 (as the C tool does).
    Version,
}

/// Why the command line was refused. Both mean exit status 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// getopt-level problem (unknown option, missing argument): the getopt
    /// diagnostic goes to stderr as `<argv[0]>: <msg>`, then [`USAGE`] to stdout.
    Usage(String),
    /// A bad value: `corosync-qnetd: <msg>` on stderr.
    Invalid(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}

/// Usage text of `corosync-qnetd`, byte-exact (second line: 14 spaces).
pub const USAGE: &str = "usage: corosync-qnetd [-46dfhv] [-l listen_addr] [-p listen_port] [-s tls]\n              [-c client_cert_required] [-m max_clients] [-S option=value[,option2=value2,...]]\n";

/// `-v` text. We report our own version; the lists are the protocol's.
pub fn version_text() -> String {
    format!(
        "Corosync Qdevice Network Daemon, version '{}'\n\n\
         Supported algorithms: Test (0), Fifty-Fifty split (1), 2 Node LMS (2), LMS (3)\n\
         Supported message types: Preinit (0), Preinit reply (1), StartTLS (2), Init (3), Init reply (4), Server error (5), Set option (6), Set option reply (7), Echo request (8), Echo reply (9), Node list (10), Node list reply (11), Ask for vote (12), Ask for vote reply (13), Vote info (14), Vote info reply (15), Heuristics change (16), Heuristics change reply (17)\n",
        env!("QNETD_BUILD_INFO")
    )
}

/// getopt option string of the C daemon: letters followed by `:` take an argument.
const OPTSTRING: &str = "46dfhvc:l:m:p:S:s:";

/// One result of the getopt scan.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Opt {
    Flag(char, Option<String>),
    Unknown(char),
    MissingArg(char),
}

/// GNU getopt semantics: combined flags (`-fd`), glued arguments (`-p5403`),
/// the next word as argument (`-p 5403`, even if it starts with `-`), non-options
/// skipped wherever they are (GNU permutes them to the end), `--` ends options.
fn getopt(args: &[String]) -> Vec<Opt> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            break;
        }
        if !a.starts_with('-') || a == "-" {
            continue;
        }
        let chars: Vec<char> = a.chars().skip(1).collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            let spec = if c == ':' { None } else { OPTSTRING.find(c) };
            let Some(pos) = spec else {
                out.push(Opt::Unknown(c));
                continue;
            };
            let takes_arg = OPTSTRING[pos + c.len_utf8()..].starts_with(':');
            if !takes_arg {
                out.push(Opt::Flag(c, None));
                continue;
            }
            if j < chars.len() {
                out.push(Opt::Flag(c, Some(chars[j..].iter().collect())));
            } else if i < args.len() {
                out.push(Opt::Flag(c, Some(args[i].clone())));
                i += 1;
            } else {
                out.push(Opt::MissingArg(c));
            }
            break;
        }
    }
    out
}

/// Parse the `corosync-qnetd` arguments (without argv\[0\]), left to right, stopping
/// at the first `-h`, `-v` or error exactly where the C daemon does. Warnings (the
/// deprecated `dpd_interval`) are pushed to `warnings` in the order they arise; the
/// caller prints them as `corosync-qnetd: <warning>` even when an error follows.
pub fn parse_qnetd_args(args: &[String], warnings: &mut Vec<String>) -> Result<Cli, CliError> {
    let mut s = Settings::default();
    for opt in getopt(args) {
        match opt {
            Opt::Unknown(c) => return Err(CliError::Usage(format!("invalid option -- '{c}'"))),
            Opt::MissingArg(c) => return Err(CliError::Usage(format!("option requires an argument -- '{c}'"))),
            Opt::Flag('h', _) => return Ok(Cli::Help),
            Opt::Flag('v', _) => return Ok(Cli::Version),
            Opt::Flag(c, arg) => s.apply_option(c, arg.as_deref().unwrap_or(""), false, warnings)?,
        }
    }
    Ok(Cli::Run(Box::new(s)))
}

impl Settings {
    /// Apply one short option of the C command line (`h`/`v` are the caller's).
    /// `allow_port_zero` is for `qnetd run --port 0` (ephemeral port, tests).
    pub fn apply_option(
        &mut self,
        c: char,
        arg: &str,
        allow_port_zero: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), CliError> {
        match c {
            '4' => {
                self.shell.ipv4_only = true;
                self.shell.ipv6_only = false;
            }
            '6' => {
                self.shell.ipv6_only = true;
                self.shell.ipv4_only = false;
            }
            'd' => self.shell.debug = self.shell.debug.saturating_add(1),
            'f' => self.shell.foreground = true,
            'l' => self.shell.listen_addr = Some(arg.to_string()),
            'p' => {
                let min = if allow_port_zero { 0 } else { 1 };
                match strtoll(arg, 10) {
                    Some(p) if (min..=65535).contains(&p) => self.shell.port = p as u16,
                    _ => return Err(CliError::Invalid("host port must be in range 1-65535".into())),
                }
            }
            's' => {
                self.core.tls = match arg.to_ascii_lowercase().as_str() {
                    "on" => TlsMode::On,
                    "off" => TlsMode::Off,
                    // `required` is the man page's word; the C daemon rejects it. We accept it.
                    "req" | "required" => TlsMode::Required,
                    _ => return Err(CliError::Invalid("tls must be one of on, off, req".into())),
                }
            }
            'c' => {
                self.core.client_cert_required = parse_bool(arg)
                    .ok_or_else(|| CliError::Invalid("client_cert_required should be on/yes/1, off/no/0".into()))?
            }
            'm' => match strtoll(arg, 10) {
                Some(n) if n >= 0 => self.core.max_clients = n as u64,
                _ => return Err(CliError::Invalid(format!("max clients value {arg} is invalid"))),
            },
            'S' => self.apply_advanced(arg, warnings)?,
            other => return Err(CliError::Usage(format!("invalid option -- '{other}'"))),
        }
        Ok(())
    }

    /// Apply a `-S name=value,...` list (tool-and-files.md §2).
    pub fn apply_advanced(&mut self, list: &str, warnings: &mut Vec<String>) -> Result<(), CliError> {
        for item in list.split(',') {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n, v),
                None => (item, ""),
            };
            if name.is_empty() {
                // The C lexer stops at the first empty name: the rest is ignored.
                break;
            }
            self.apply_setting(name, value, warnings)?;
        }
        Ok(())
    }

    /// Apply one advanced setting. Names are case-insensitive; messages quote the
    /// name as given.
    pub fn apply_setting(&mut self, name: &str, value: &str, warnings: &mut Vec<String>) -> Result<(), CliError> {
        let bad = || CliError::Invalid(format!("Invalid value '{value}' for option '{name}'"));
        let int = |min: i64, max: i64| strtoll(value, 10).filter(|v| (min..=max).contains(v)).ok_or_else(bad);
        let c = &mut self.core;
        let sh = &mut self.shell;
        match name.to_ascii_lowercase().as_str() {
            "listen_backlog" => sh.listen_backlog = int(1, i32::MAX as i64)? as i32,
            "max_client_send_buffers" => sh_usize(&mut c.max_client_send_buffers, int(2, i64::MAX)?),
            "max_client_send_size" => c.max_client_send_size = saturate_u32(int(16, i64::MAX)?),
            "max_client_receive_size" => c.max_client_receive_size = saturate_u32(int(16, i64::MAX)?),
            "nss_db_dir" => sh.nss_db_dir = PathBuf::from(value),
            "cert_nickname" => sh.cert_nickname = value.to_string(),
            "heartbeat_interval_min" => c.heartbeat_interval_min = int(1, u32::MAX as i64)? as u32,
            "heartbeat_interval_max" => c.heartbeat_interval_max = int(1, u32::MAX as i64)? as u32,
            "dpd_enabled" => c.dpd_enabled = parse_bool(value).ok_or_else(bad)?,
            "dpd_interval_coefficient" => {
                c.dpd_interval_coefficient = strtod(value).filter(|v| (1.0..=1000.0).contains(v)).ok_or_else(bad)?
            }
            "dpd_interval" => warnings.push(format!("Option '{name}' is deprecated and has no effect anymore")),
            "lock_file" => sh.lock_file = PathBuf::from(value),
            "local_socket_file" => sh.local_socket_file = PathBuf::from(value),
            "local_socket_umask" => {
                sh.local_socket_umask = if value.is_empty() {
                    None
                } else {
                    Some(strtoll(value, 8).filter(|v| (0..=0o777).contains(v)).ok_or_else(bad)? as u32)
                }
            }
            "local_socket_gid" => sh.local_socket_gid = parse_gid(value).ok_or_else(bad)?,
            "local_socket_backlog" => sh.local_socket_backlog = int(1, i32::MAX as i64)? as i32,
            "ipc_max_clients" => sh_usize(&mut sh.ipc_max_clients, int(0, i64::MAX)?),
            "ipc_max_receive_size" => sh_usize(&mut sh.ipc_max_receive_size, int(1024, i64::MAX)?),
            "ipc_max_send_size" => sh_usize(&mut sh.ipc_max_send_size, int(1024, i64::MAX)?),
            "keep_active_partition_tie_breaker" => {
                c.keep_active_partition_tie_breaker = parse_bool(value).ok_or_else(bad)?
            }
            // Our extension: ms to finish PREINIT/STARTTLS/TLS/INIT, 0 = no limit.
            "handshake_timeout" => c.handshake_timeout = int(0, i64::MAX)? as u64,
            _ => return Err(CliError::Invalid(format!("Unknown option '{name}'"))),
        }
        Ok(())
    }
}

fn sh_usize(slot: &mut usize, v: i64) {
    *slot = usize::try_from(v).unwrap_or(usize::MAX);
}

/// Sizes are advertised as u32 on the wire; larger settings mean "no limit" in
/// practice, so they saturate (the C daemon would truncate them modulo 2^32).
fn saturate_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// `on/yes/1` or `off/no/0`, case-insensitive.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "yes" | "1" => Some(true),
        "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `strtoll` as the C daemon uses it: leading whitespace, optional sign, at least
/// one digit, the whole string consumed, no overflow.
pub fn strtoll(s: &str, radix: u32) -> Option<i64> {
    let t = s.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mut v: i64 = 0;
    for ch in digits.chars() {
        let d = ch.to_digit(radix)? as i64;
        v = v.checked_mul(radix as i64)?;
        v = if neg { v.checked_sub(d)? } else { v.checked_add(d)? };
    }
    Some(v)
}

/// `strtod` as the C daemon uses it: leading whitespace, decimal or hexadecimal
/// (`0x1.8p1`) notation, `inf`/`nan` words, the whole string consumed.
/// Out-of-range and NaN results are left to the caller's bounds check.
pub fn strtod(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = body.to_ascii_lowercase();
    let v = if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex)?
    } else if lower == "inf" || lower == "infinity" {
        f64::INFINITY
    } else if lower == "nan" || (lower.starts_with("nan(") && lower.ends_with(')')) {
        f64::NAN
    } else {
        // Rust's grammar is the C decimal grammar minus whitespace and hex, which
        // were handled above; reject the words Rust would also take.
        if body.is_empty() || body.starts_with(['+', '-']) || lower.contains("inf") || lower.contains("nan") {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Hexadecimal float after `0x`: hex digits with an optional point, optional
/// binary exponent `p[+-]N`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.split_once('p') {
        Some((m, e)) => (m, strtoll_strict(e)?),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    let exp = i32::try_from(exp.clamp(-100_000, 100_000)).ok()?;
    Some(v * 2f64.powi(exp))
}

/// Exponent of a hex float: optional sign and decimal digits, nothing else.
fn strtoll_strict(s: &str) -> Option<i64> {
    if s.starts_with(|c: char| c.is_ascii() && is_c_space(c as u8)) {
        return None;
    }
    strtoll(s, 10)
}

/// `local_socket_gid`: empty or -1 = leave unchanged; a number 0 … 2^32−1; else a
/// group name looked up in the group database.
fn parse_gid(value: &str) -> Option<Option<u32>> {
    if value.is_empty() {
        return Some(None);
    }
    if let Some(n) = strtoll(value, 10) {
        return match n {
            -1 => Some(None),
            n if (0..=u32::MAX as i64).contains(&n) => Some(if n == u32::MAX as i64 { None } else { Some(n as u32) }),
            _ => None,
        };
    }
    lookup_group(value).map(Some)
}

/// getgrnam_r, growing the buffer on ERANGE (bounded).
fn lookup_group(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut size = 4096usize;
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: zeroed `group` is a valid out-parameter; buf outlives the call.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the duration of the call.
        let rc = unsafe { libc::getgrnam_r(cname.as_ptr(), &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 2;
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        return Some(grp.gr_gid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    fn run(s: &[&str]) -> Result<Settings, CliError> {
        let mut w = Vec::new();
        match parse_qnetd_args(&args(s), &mut w)? {
            Cli::Run(set) => Ok(*set),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    fn invalid(s: &[&str]) -> String {
        match parse_qnetd_args(&args(s), &mut Vec::new()) {
            Err(CliError::Invalid(m)) => m,
            other => panic!("expected Invalid for {s:?}, got {other:?}"),
        }
    }

    fn set(kv: &str) -> Settings {
        run(&["-S", kv]).unwrap_or_else(|e| panic!("{kv}: {e}"))
    }

    fn bad_value(kv: &str) {
        let (name, value) = kv.split_once('=').unwrap_or((kv, ""));
        assert_eq!(invalid(&["-S", kv]), format!("Invalid value '{value}' for option '{name}'"), "{kv}");
    }

    #[test]
    fn defaults_without_arguments() {
        let s = run(&[]).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.shell.port, 5403);
        assert_eq!(s.core.tls, TlsMode::On);
        assert!(s.core.client_cert_required);
        assert!(!s.shell.foreground);
    }

    #[test]
    fn usage_text_is_exact() {
        let second = USAGE.lines().nth(1).unwrap();
        assert!(second.starts_with("              [-c client_cert_required]"));
        assert!(!second.starts_with("               "));
        assert!(version_text().starts_with("Corosync Qdevice Network Daemon, version '"));
        assert!(version_text().contains("Heuristics change reply (17)\n"));
    }

    #[test]
    fn help_and_version_stop_the_scan() {
        let mut w = Vec::new();
        assert_eq!(parse_qnetd_args(&args(&["-h", "-p", "0"]), &mut w), Ok(Cli::Help));
        assert_eq!(parse_qnetd_args(&args(&["-v", "-p", "0"]), &mut w), Ok(Cli::Version));
        // An error before -h wins.
        assert_eq!(invalid(&["-p", "0", "-h"]), "host port must be in range 1-65535");
        assert_eq!(parse_qnetd_args(&args(&["extra", "-h"]), &mut w), Ok(Cli::Help));
        assert!(matches!(parse_qnetd_args(&args(&["--", "-h"]), &mut w), Ok(Cli::Run(_))));
    }

    #[test]
    fn getopt_errors() {
        let mut w = Vec::new();
        assert_eq!(parse_qnetd_args(&args(&["-x"]), &mut w), Err(CliError::Usage("invalid option -- 'x'".into())));
        assert_eq!(
            parse_qnetd_args(&args(&["-f", "-p"]), &mut w),
            Err(CliError::Usage("option requires an argument -- 'p'".into()))
        );
        // The next word is the argument even when it looks like an option.
        assert_eq!(invalid(&["-p", "-h"]), "host port must be in range 1-65535");
        assert_eq!(invalid(&["-m", "-h"]), "max clients value -h is invalid");
    }

    #[test]
    fn combined_and_glued_flags() {
        let s = run(&["-fdd", "-p5404", "-l127.0.0.1", "-fp", "5405"]).unwrap();
        assert!(s.shell.foreground);
        assert_eq!(s.shell.debug, 2);
        assert_eq!(s.shell.port, 5405, "later -p overrides");
        assert_eq!(s.shell.listen_addr.as_deref(), Some("127.0.0.1"));
        let s = run(&["-4"]).unwrap();
        assert!(s.shell.ipv4_only && !s.shell.ipv6_only);
        let s = run(&["-4", "-6"]).unwrap();
        assert!(!s.shell.ipv4_only && s.shell.ipv6_only);
        let s = run(&["-Smax_client_send_buffers=5", "-S", "listen_backlog=3"]).unwrap();
        assert_eq!(s.core.max_client_send_buffers, 5, "-S accumulates");
        assert_eq!(s.shell.listen_backlog, 3);
    }

    #[test]
    fn port() {
        for ok in ["1", "65535", " 5", "+5", "010"] {
            assert!(run(&["-p", ok]).is_ok(), "{ok}");
        }
        assert_eq!(run(&["-p", "010"]).unwrap().shell.port, 10);
        for bad in ["0", "65536", "-5", "5x", "", "0x10", "5 ", "abc"] {
            assert_eq!(invalid(&["-p", bad]), "host port must be in range 1-65535", "{bad:?}");
        }
        let mut s = Settings::default();
        assert!(s.apply_option('p', "0", true, &mut Vec::new()).is_ok());
        assert_eq!(s.shell.port, 0);
    }

    #[test]
    fn tls_mode() {
        assert_eq!(run(&["-s", "OFF"]).unwrap().core.tls, TlsMode::Off);
        assert_eq!(run(&["-s", "on"]).unwrap().core.tls, TlsMode::On);
        assert_eq!(run(&["-s", "Req"]).unwrap().core.tls, TlsMode::Required);
        // Deliberate deviation: the man page's word is accepted.
        assert_eq!(run(&["-s", "required"]).unwrap().core.tls, TlsMode::Required);
        for bad in ["", "yes", "1", "requir"] {
            assert_eq!(invalid(&["-s", bad]), "tls must be one of on, off, req");
        }
    }

    #[test]
    fn client_cert() {
        for (v, want) in [("on", true), ("YES", true), ("1", true), ("off", false), ("No", false), ("0", false)] {
            assert_eq!(run(&["-c", v]).unwrap().core.client_cert_required, want, "{v}");
        }
        for bad in ["", "2", "true"] {
            assert_eq!(invalid(&["-c", bad]), "client_cert_required should be on/yes/1, off/no/0");
        }
    }

    #[test]
    fn max_clients() {
        assert_eq!(run(&["-m", "0"]).unwrap().core.max_clients, 0);
        assert_eq!(run(&["-m", " 5"]).unwrap().core.max_clients, 5);
        assert_eq!(run(&["-m", "9223372036854775807"]).unwrap().core.max_clients, i64::MAX as u64);
        for bad in ["-1", "abc", "5x", "0x10", "", "5 ", "9223372036854775808", "99999999999999999999"] {
            assert_eq!(invalid(&["-m", bad]), format!("max clients value {bad} is invalid"));
        }
    }

    #[test]
    fn advanced_list_syntax() {
        // Stop at the first empty name.
        let s = set("listen_backlog=5,,foo=1");
        assert_eq!(s.shell.listen_backlog, 5);
        assert!(run(&["-S", ""]).is_ok());
        assert!(run(&["-S", "="]).is_ok());
        assert!(run(&["-S", ",foo=1"]).is_ok());
        assert!(run(&["-S", "listen_backlog=5,=3,foo=1"]).is_ok());
        // Further '=' belong to the value; names are case-insensitive.
        assert_eq!(set("NSS_DB_DIR=/a=b").shell.nss_db_dir, PathBuf::from("/a=b"));
        assert_eq!(invalid(&["-S", "a=b=c"]), "Unknown option 'a'");
        assert_eq!(invalid(&["-S", "foo=1"]), "Unknown option 'foo'");
        assert_eq!(invalid(&["-S", " listen_backlog=5"]), "Unknown option ' listen_backlog'");
        assert_eq!(invalid(&["-S", "dpd_interval_coefficient=1,5"]), "Unknown option '5'");
        // An item without '=' has an empty value.
        bad_value("listen_backlog");
        assert_eq!(invalid(&["-S", "LISTEN_BACKLOG=x"]), "Invalid value 'x' for option 'LISTEN_BACKLOG'");
        // Later values override; errors in later -S still count.
        assert_eq!(
            invalid(&["-S", "listen_backlog=1", "-S", "listen_backlog=0"]),
            "Invalid value '0' for option 'listen_backlog'"
        );
    }

    #[test]
    fn deprecated_dpd_interval_warns_and_continues() {
        let mut w = Vec::new();
        let r = parse_qnetd_args(&args(&["-S", "DPD_INTERVAL=3", "-p", "0"]), &mut w);
        assert_eq!(w, vec!["Option 'DPD_INTERVAL' is deprecated and has no effect anymore".to_string()]);
        assert!(matches!(r, Err(CliError::Invalid(_))));
        let mut w = Vec::new();
        assert!(matches!(parse_qnetd_args(&args(&["-S", "dpd_interval"]), &mut w), Ok(Cli::Run(_))));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn int_backlogs() {
        for name in ["listen_backlog", "local_socket_backlog"] {
            let s = set(&format!("{name}=2147483647"));
            let got = if name == "listen_backlog" { s.shell.listen_backlog } else { s.shell.local_socket_backlog };
            assert_eq!(got, i32::MAX);
            assert_eq!(set(&format!("{name}= 1")).shell.listen_backlog, if name == "listen_backlog" { 1 } else { 10 });
            for bad in ["0", "-1", "2147483648", "+", "5 ", "0x10", "x"] {
                bad_value(&format!("{name}={bad}"));
            }
        }
        assert_eq!(set("listen_backlog=+5").shell.listen_backlog, 5);
        assert_eq!(set("listen_backlog=010").shell.listen_backlog, 10);
    }

    #[test]
    fn client_buffers_and_sizes() {
        assert_eq!(set("max_client_send_buffers=2").core.max_client_send_buffers, 2);
        assert_eq!(set("max_client_send_buffers=9999999999999").core.max_client_send_buffers, 9_999_999_999_999);
        bad_value("max_client_send_buffers=1");
        bad_value("max_client_send_buffers=-3");
        assert_eq!(set("max_client_send_size=16").core.max_client_send_size, 16);
        assert_eq!(set("max_client_send_size=99999999999").core.max_client_send_size, u32::MAX);
        bad_value("max_client_send_size=15");
        bad_value("max_client_send_size=-5");
        assert_eq!(set("max_client_receive_size=65536").core.max_client_receive_size, 65536);
        bad_value("max_client_receive_size=15");
        bad_value("max_client_receive_size=");
    }

    #[test]
    fn string_settings() {
        let s = set("nss_db_dir=/x/db,cert_nickname=My Cert,lock_file=/x/l.pid,local_socket_file=/x/s.sock");
        assert_eq!(s.shell.nss_db_dir, PathBuf::from("/x/db"));
        assert_eq!(s.shell.cert_nickname, "My Cert");
        assert_eq!(s.shell.lock_file, PathBuf::from("/x/l.pid"));
        assert_eq!(s.shell.local_socket_file, PathBuf::from("/x/s.sock"));
        // Empty strings are accepted, as in C.
        assert_eq!(set("cert_nickname=").shell.cert_nickname, "");
        assert_eq!(set("lock_file").shell.lock_file, PathBuf::from(""));
    }

    #[test]
    fn heartbeat_bounds() {
        for name in ["heartbeat_interval_min", "heartbeat_interval_max"] {
            let s = set(&format!("{name}=4294967295"));
            let got = if name.ends_with("min") { s.core.heartbeat_interval_min } else { s.core.heartbeat_interval_max };
            assert_eq!(got, u32::MAX);
            for bad in ["0", "-1", "4294967296", "1.5"] {
                bad_value(&format!("{name}={bad}"));
            }
        }
        // min <= max is not checked (as in C).
        let s = set("heartbeat_interval_min=5000,heartbeat_interval_max=1000");
        assert_eq!((s.core.heartbeat_interval_min, s.core.heartbeat_interval_max), (5000, 1000));
    }

    #[test]
    fn booleans() {
        assert!(!set("dpd_enabled=no").core.dpd_enabled);
        assert!(set("dpd_enabled=YES").core.dpd_enabled);
        assert!(set("keep_active_partition_tie_breaker=On").core.keep_active_partition_tie_breaker);
        assert!(!set("keep_active_partition_tie_breaker=0").core.keep_active_partition_tie_breaker);
        bad_value("dpd_enabled=maybe");
        bad_value("keep_active_partition_tie_breaker=2");
        bad_value("dpd_enabled=");
    }

    #[test]
    fn dpd_coefficient_strtod() {
        let c = |v: &str| set(&format!("dpd_interval_coefficient={v}")).core.dpd_interval_coefficient;
        assert_eq!(c("1"), 1.0);
        assert_eq!(c("1000"), 1000.0);
        assert_eq!(c("1e2"), 100.0);
        assert_eq!(c(".5e1"), 5.0);
        assert_eq!(c("0x10"), 16.0);
        assert_eq!(c("0x1.8p1"), 3.0);
        assert_eq!(c(" 1.5"), 1.5);
        assert_eq!(c("+2."), 2.0);
        for bad in [
            "nan",
            "-nan",
            "NAN",
            "inf",
            "infinity",
            "1e400",
            "1000.0001",
            "0.99",
            "1.5 ",
            "1.5x",
            "",
            "1e",
            "0x",
            "--2",
            "+-2",
        ] {
            bad_value(&format!("dpd_interval_coefficient={bad}"));
        }
    }

    #[test]
    fn socket_umask_and_gid() {
        assert_eq!(set("local_socket_umask=").shell.local_socket_umask, None);
        assert_eq!(set("local_socket_umask=0777").shell.local_socket_umask, Some(0o777));
        assert_eq!(set("local_socket_umask=027").shell.local_socket_umask, Some(0o27));
        for bad in ["0999", "1000", "-1", "8", "x"] {
            bad_value(&format!("local_socket_umask={bad}"));
        }
        assert_eq!(set("local_socket_gid=").shell.local_socket_gid, None);
        assert_eq!(set("local_socket_gid=-1").shell.local_socket_gid, None);
        assert_eq!(set("local_socket_gid=4294967295").shell.local_socket_gid, None);
        assert_eq!(set("local_socket_gid=123").shell.local_socket_gid, Some(123));
        // "root" is group 0 on every system this runs on.
        assert_eq!(set("local_socket_gid=root").shell.local_socket_gid, Some(0));
        bad_value("local_socket_gid=-2");
        bad_value("local_socket_gid=4294967296");
        bad_value("local_socket_gid=no-such-group-qnetd-test");
    }

    #[test]
    fn ipc_limits() {
        assert_eq!(set("ipc_max_clients=0").shell.ipc_max_clients, 0);
        assert_eq!(set("ipc_max_clients=99999999999").shell.ipc_max_clients, 99_999_999_999);
        bad_value("ipc_max_clients=-1");
        assert_eq!(set("ipc_max_receive_size=1024").shell.ipc_max_receive_size, 1024);
        bad_value("ipc_max_receive_size=1023");
        assert_eq!(set("ipc_max_send_size=1024").shell.ipc_max_send_size, 1024);
        bad_value("ipc_max_send_size=1023");
    }

    #[test]
    fn handshake_timeout_extension() {
        assert_eq!(set("handshake_timeout=500").core.handshake_timeout, 500);
        assert_eq!(set("handshake_timeout=0").core.handshake_timeout, 0);
        bad_value("handshake_timeout=-1");
        bad_value("handshake_timeout=1s");
    }

    #[test]
    fn strtoll_semantics() {
        assert_eq!(strtoll("\t\n 42", 10), Some(42));
        assert_eq!(strtoll("-9223372036854775808", 10), Some(i64::MIN));
        assert_eq!(strtoll("9223372036854775808", 10), None);
        assert_eq!(strtoll("-", 10), None);
        assert_eq!(strtoll("0777", 8), Some(0o777));
        assert_eq!(strtoll("08", 8), None);
    }
}

/// Where the friendly `qnetd run` / `qnetd tool` / `qnetd health` / `qnetd certutil`
/// keep their state when not told otherwise.
///
/// The `corosync-qnetd*` names keep the C paths (`/etc/corosync/qnetd/nssdb`,
/// `/var/run/corosync-qnetd/...`) because scripts and pcs expect them. The friendly
/// spelling must start on any machine with no arguments, including one where
/// Debian's corosync-qnetd package already put an NSS database at the C path (we
/// never take that over silently), and as an ordinary user. So it owns its own
/// place: `/var/lib/qnetd` and `/run/qnetd` for root, the XDG state and runtime
/// directories otherwise. `QNETD_DATA_DIR` overrides the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendlyPaths {
    pub data_dir: PathBuf,
    pub lock_file: PathBuf,
    pub socket: PathBuf,
}

impl FriendlyPaths {
    pub fn from_env() -> FriendlyPaths {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let (state, runtime) = if root {
            (PathBuf::from("/var/lib/qnetd"), PathBuf::from("/run/qnetd"))
        } else {
            let state = var("XDG_STATE_HOME")
                .or_else(|| var("HOME").map(|h| h.join(".local/state")))
                .unwrap_or_else(std::env::temp_dir)
                .join("qnetd");
            let runtime = var("XDG_RUNTIME_DIR").map(|r| r.join("qnetd")).unwrap_or_else(|| state.clone());
            (state, runtime)
        };
        FriendlyPaths {
            data_dir: var("QNETD_DATA_DIR").unwrap_or(state),
            lock_file: runtime.join("qnetd.pid"),
            socket: runtime.join("qnetd.sock"),
        }
    }
}
