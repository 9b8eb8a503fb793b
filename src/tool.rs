//! Client side of the local status socket: `corosync-qnetd-tool` (byte-compatible
//! with the C tool, tool-and-files.md §5), `qnetd tool` (the same with long
//! options) and `qnetd health` (a one-line container/monitoring health check).
//!
//! Socket path: `-p` / `--socket`; otherwise the environment variable
//! `QNETD_SOCKET`; otherwise `/var/run/corosync-qnetd/corosync-qnetd.sock` (the C
//! default). The variable lets containers and tests move the socket without
//! repeating `-p` in every probe.
//!
//! Exit codes of the tool (as the C tool): 0 OK, 1 usage / no operation,
//! 2 internal error, 3 cannot connect (stderr says "is QNetd running?" — pcs
//! matches on exit 3 plus that text) or unknown status line, 4 the daemon answered
//! `Error` (message on stderr after `Error: `).
//!
//! Exit codes of `qnetd health`: 0 healthy, 1 unhealthy (Docker reserves 2), always
//! exactly one line on stdout starting with `healthy:` or `unhealthy:`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use argh::FromArgs;

use crate::ipc::json;

/// The C tool's default IPC socket path.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/corosync-qnetd/corosync-qnetd.sock";
/// Environment variable that replaces [`DEFAULT_SOCKET_PATH`].
pub const SOCKET_ENV: &str = "QNETD_SOCKET";
/// Default certificate/data directory read by `qnetd health --cert-days`.
pub const DEFAULT_NSSDB_DIR: &str = "/etc/corosync/qnetd/nssdb";
/// Environment variable that replaces [`DEFAULT_NSSDB_DIR`].
pub const NSSDB_ENV: &str = "QNETD_NSSDB_DIR";

pub const EXIT_OK: i32 = 0;
pub const EXIT_USAGE: i32 = 1;
pub const EXIT_INTERNAL: i32 = 2;
pub const EXIT_CONNECT: i32 = 3;
pub const EXIT_SERVER_ERROR: i32 = 4;

const USAGE: &str = "usage: corosync-qnetd-tool [-Hhlsv] [-c cluster_name] [-p qnetd_ipc_socket_path]\n";

/// Socket path when none is given on the command line.
pub fn default_socket_path() -> PathBuf {
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SOCKET_PATH),
    }
}

fn default_nssdb_dir() -> PathBuf {
    match std::env::var_os(NSSDB_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_NSSDB_DIR),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Shutdown,
    Status,
    List,
}

/// One request to the daemon, as the tool's options describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub operation: Operation,
    pub verbose: bool,
    /// Sent with every operation when given (only `list` uses it), like the C tool.
    pub cluster: Option<Vec<u8>>,
    /// Our extension: ask for a JSON body.
    pub json: bool,
}

impl Request {
    /// The request line, exactly as the C tool builds it: operation word and a
    /// space, `verbose ` if asked, `cluster "<name>" ` if given (`"` and `\`
    /// backslash-escaped), then `\n`. `json ` goes right after the operation word
    /// so that both `status` (which only looks at the words right after it) and
    /// `list` see it.
    pub fn line(&self) -> Vec<u8> {
        let mut l = Vec::new();
        l.extend_from_slice(match self.operation {
            Operation::Shutdown => b"shutdown ".as_slice(),
            Operation::Status => b"status ",
            Operation::List => b"list ",
        });
        if self.json {
            l.extend_from_slice(b"json ");
        }
        if self.verbose {
            l.extend_from_slice(b"verbose ");
        }
        if let Some(name) = &self.cluster {
            l.extend_from_slice(b"cluster \"");
            // The C tool quotes a C string: a NUL ends the name.
            for &c in name.iter().take_while(|&&c| c != 0) {
                if c == b'"' || c == b'\\' {
                    l.push(b'\\');
                }
                l.push(c);
            }
            l.extend_from_slice(b"\" ");
        }
        l.push(b'\n');
        l
    }
}

/// What `err(3)` prints as the program name: the last path component.
fn short_name(prog: &str) -> &str {
    prog.rsplit('/').next().unwrap_or(prog)
}

/// Parsed C-style command line.
#[derive(Debug, PartialEq, Eq)]
struct CArgs {
    request: Request,
    socket: PathBuf,
}

/// `getopt(argc, argv, "Hhlsvc:p:")` as glibc does it: options may be combined
/// (`-lv`, `-lvcNAME`), an option argument is the rest of the word or the next
/// word, non-option words are skipped (glibc permutes them to the end; the tool
/// ignores them) unless `POSIXLY_CORRECT` is set, `--` ends the options. glibc's
/// own diagnostics carry `argv[0]` as given. Plus our `--json`.
/// `Err` carries the exit code after usage/diagnostics were written.
fn parse_c_args(prog: &str, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> Result<CArgs, i32> {
    let posixly_correct = std::env::var_os("POSIXLY_CORRECT").is_some();
    let mut op = None;
    let mut verbose = false;
    let mut json = false;
    let mut cluster: Option<Vec<u8>> = None;
    let mut socket: Option<PathBuf> = None;
    let usage = |out: &mut dyn Write| {
        let _ = out.write_all(USAGE.as_bytes());
        let _ = out.flush();
        EXIT_USAGE
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        i += 1;
        if a == b"--" {
            break;
        }
        if a == b"--json" {
            json = true;
            continue;
        }
        if a.len() < 2 || a[0] != b'-' {
            if posixly_correct {
                break;
            }
            continue;
        }
        let mut j = 1;
        while j < a.len() {
            let c = a[j];
            j += 1;
            match c {
                b'H' => op = Some(Operation::Shutdown),
                b'l' => op = Some(Operation::List),
                b's' => op = Some(Operation::Status),
                b'v' => verbose = true,
                b'c' | b'p' => {
                    let val: Vec<u8> = if j < a.len() {
                        let v = a[j..].to_vec();
                        j = a.len();
                        v
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].as_bytes().to_vec()
                    } else {
                        let _ = writeln!(err, "{prog}: option requires an argument -- '{}'", c as char);
                        return Err(usage(out));
                    };
                    if c == b'c' {
                        cluster = Some(val);
                    } else {
                        use std::os::unix::ffi::OsStringExt;
                        socket = Some(PathBuf::from(std::ffi::OsString::from_vec(val)));
                    }
                }
                b'h' => return Err(usage(out)),
                _ => {
                    // glibc prints the offending byte as is.
                    let _ = err.write_all(format!("{prog}: invalid option -- '").as_bytes());
                    let _ = err.write_all(&[c]);
                    let _ = err.write_all(b"'\n");
                    return Err(usage(out));
                }
            }
        }
    }
    let Some(operation) = op else {
        return Err(usage(out));
    };
    Ok(CArgs {
        request: Request { operation, verbose, cluster, json },
        socket: socket.unwrap_or_else(default_socket_path),
    })
}

/// `strerror` text as glibc writes it, for the errors a UNIX-socket connect can
/// give, so a static musl build prints what the C tool prints; anything else
/// falls back to the platform's text.
fn strerror(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let glibc = match code {
        libc::EPERM => "Operation not permitted",
        libc::ENOENT => "No such file or directory",
        libc::EINTR => "Interrupted system call",
        libc::EIO => "Input/output error",
        libc::EAGAIN => "Resource temporarily unavailable",
        libc::ENOMEM => "Cannot allocate memory",
        libc::EACCES => "Permission denied",
        libc::ENOTDIR => "Not a directory",
        libc::EINVAL => "Invalid argument",
        libc::ENFILE => "Too many open files in system",
        libc::EMFILE => "Too many open files",
        libc::ENAMETOOLONG => "File name too long",
        libc::ELOOP => "Too many levels of symbolic links",
        libc::ENOTSOCK => "Socket operation on non-socket",
        libc::EPROTOTYPE => "Protocol wrong type for socket",
        libc::ECONNRESET => "Connection reset by peer",
        libc::ETIMEDOUT => "Connection timed out",
        libc::ECONNREFUSED => "Connection refused",
        libc::EPIPE => "Broken pipe",
        _ => {
            let s = e.to_string();
            // std appends " (os error N)".
            return match s.rfind(" (os error ") {
                Some(i) => s[..i].to_string(),
                None => s,
            };
        }
    };
    glibc.to_string()
}

/// Connect like the C tool: an empty path or one that does not fit `sun_path`
/// (108 bytes including the NUL) fails with ENAMETOOLONG before any syscall.
fn connect(path: &Path) -> io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    let len = path.as_os_str().as_bytes().len();
    if len == 0 || len >= 108 {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    UnixStream::connect(path)
}

/// What the status line of a reply said.
enum ReplyStatus {
    Ok,
    Error,
    Unknown,
    /// The daemon closed before a full status line (C tool: exit 0, no output).
    Eof,
}

/// Read the status line (CRs dropped, compared as a C string, case-insensitive).
fn read_status_line(r: &mut impl BufRead) -> ReplyStatus {
    let mut line = Vec::new();
    // A read error ends the reply like EOF does (the C tool's fgetc loop).
    match r.read_until(b'\n', &mut line) {
        Ok(_) if line.last() == Some(&b'\n') => {}
        _ => return ReplyStatus::Eof,
    }
    line.pop();
    line.retain(|&c| c != b'\r');
    if let Some(n) = line.iter().position(|&c| c == 0) {
        line.truncate(n);
    }
    if line.eq_ignore_ascii_case(b"OK") {
        ReplyStatus::Ok
    } else if line.eq_ignore_ascii_case(b"Error") {
        ReplyStatus::Error
    } else {
        ReplyStatus::Unknown
    }
}

/// Send `request` to the socket at `path`, stream the reply like the C tool does,
/// return the exit code. `name` prefixes our own diagnostics.
pub fn run_request(name: &str, path: &Path, request: &Request, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut sock = match connect(path) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "{name}: Can't connect to qnetd socket (is QNetd running?): {}", strerror(&e));
            return EXIT_CONNECT;
        }
    };
    if sock.write_all(&request.line()).and_then(|_| sock.flush()).is_err() {
        let _ = writeln!(err, "{name}: Can't send command");
        return EXIT_INTERNAL;
    }
    let mut r = BufReader::new(sock);
    let (dest, code): (&mut dyn Write, i32) = match read_status_line(&mut r) {
        ReplyStatus::Eof => return EXIT_OK,
        ReplyStatus::Unknown => {
            let _ = writeln!(err, "{name}: Unknown status line returned by IPC server");
            return EXIT_CONNECT;
        }
        ReplyStatus::Ok => (out, EXIT_OK),
        ReplyStatus::Error => {
            let _ = err.write_all(b"Error: ");
            (err, EXIT_SERVER_ERROR)
        }
    };
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = dest.write_all(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = dest.flush();
    code
}

/// `corosync-qnetd-tool` with explicit output streams (for tests). `prog` is
/// `argv[0]` as invoked, `args` the arguments after it.
pub fn c_main_with(prog: &str, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match parse_c_args(prog, args, out, err) {
        Ok(a) => run_request(short_name(prog), &a.socket, &a.request, out, err),
        Err(code) => code,
    }
}

/// `corosync-qnetd-tool`: `prog` is `argv[0]` as invoked (getopt diagnostics
/// print it as is, our own messages print its last path component, as glibc's
/// `getopt` and `err` do), `args` the arguments after it. Returns the exit code.
pub fn c_main(prog: &str, args: &[String]) -> i32 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    c_main_with(prog, args, &mut out, &mut err)
}

/// `qnetd tool`: query or stop a running qnetd over its local socket.
#[derive(FromArgs, Debug, Clone, PartialEq, Eq)]
#[argh(subcommand, name = "tool")]
pub struct ToolArgs {
    /// shut the daemon down
    #[argh(switch, short = 'H')]
    pub shutdown: bool,
    /// show the server status
    #[argh(switch, short = 's')]
    pub status: bool,
    /// list clusters and their clients
    #[argh(switch, short = 'l')]
    pub list: bool,
    /// more detail
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// list only this cluster
    #[argh(option, short = 'c')]
    pub cluster: Option<String>,
    /// IPC socket path (default: $QNETD_SOCKET or /var/run/corosync-qnetd/corosync-qnetd.sock)
    #[argh(option, short = 'p')]
    pub socket: Option<PathBuf>,
    /// print the reply as JSON (field names in the ipc module documentation)
    #[argh(switch)]
    pub json: bool,
}

/// Run `qnetd tool`. Exactly one of --shutdown / --status / --list is required
/// (argh keeps no option order, so "the last one wins" cannot be offered).
pub fn tool_main(args: ToolArgs) -> i32 {
    let ops: Vec<Operation> =
        [(args.shutdown, Operation::Shutdown), (args.status, Operation::Status), (args.list, Operation::List)]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, op)| *op)
            .collect();
    let [operation] = ops[..] else {
        eprintln!("qnetd tool: give exactly one of --shutdown, --status, --list (see --help)");
        return EXIT_USAGE;
    };
    let request =
        Request { operation, verbose: args.verbose, cluster: args.cluster.map(String::into_bytes), json: args.json };
    let socket = args.socket.unwrap_or_else(default_socket_path);
    let stdout = io::stdout();
    let stderr = io::stderr();
    run_request("qnetd tool", &socket, &request, &mut stdout.lock(), &mut stderr.lock())
}

/// `qnetd health`: exit 0 when the daemon answers on its socket (and the optional
/// limits hold), 1 otherwise; one line on stdout saying why.
#[derive(FromArgs, Debug, Clone, PartialEq, Eq)]
#[argh(subcommand, name = "health")]
pub struct HealthArgs {
    /// IPC socket path (default: $QNETD_SOCKET or /var/run/corosync-qnetd/corosync-qnetd.sock)
    #[argh(option)]
    pub socket: Option<PathBuf>,
    /// unhealthy when no client has been connected for this many seconds
    #[argh(option)]
    pub max_idle: Option<u64>,
    /// unhealthy when the CA or server certificate expires within this many days
    #[argh(option)]
    pub cert_days: Option<u64>,
    /// data directory holding the certificates (default: $QNETD_NSSDB_DIR or /etc/corosync/qnetd/nssdb)
    #[argh(option)]
    pub dir: Option<PathBuf>,
    /// seconds to wait for the daemon's answer (default 10)
    #[argh(option, default = "10")]
    pub timeout: u64,
}

/// What `qnetd health` learnt from the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Health {
    clients: u64,
    clusters: u64,
    /// `None` when the daemon does not report it (a C qnetd answers text).
    idle: Option<Option<u64>>,
}

/// Ask for `status json`. A daemon that answers text instead (the C qnetd
/// ignores the `json` word) is still healthy; only the idle time is then unknown.
fn query_health(path: &Path, timeout: Duration) -> Result<Health, String> {
    let mut sock = connect(path).map_err(|e| format!("cannot connect to {}: {}", path.display(), strerror(&e)))?;
    let _ = sock.set_read_timeout(Some(timeout));
    let _ = sock.set_write_timeout(Some(timeout));
    let req = Request { operation: Operation::Status, verbose: false, cluster: None, json: true };
    sock.write_all(&req.line()).map_err(|e| format!("cannot send to {}: {}", path.display(), strerror(&e)))?;
    let mut reply = Vec::new();
    // The reply is small; cap it so a confused peer cannot make us hoard memory.
    (&mut sock)
        .take(1 << 20)
        .read_to_end(&mut reply)
        .map_err(|e| format!("no answer on {}: {}", path.display(), strerror(&e)))?;
    let Some(body) = reply.strip_prefix(b"OK\n") else {
        let first = reply.split(|&c| c == b'\n').take(2).map(|l| String::from_utf8_lossy(l).into_owned());
        let text: Vec<String> = first.collect();
        return Err(if reply.is_empty() {
            format!("daemon on {} closed without an answer", path.display())
        } else {
            format!("daemon on {} answered: {}", path.display(), text.join(": ").trim_end())
        });
    };
    let body = String::from_utf8_lossy(body);
    if let Ok(v) = json::parse(&body) {
        let num = |k: &str| v.get(k).and_then(json::Value::as_u64);
        let (Some(clients), Some(clusters)) = (num("connected_clients"), num("connected_clusters")) else {
            return Err(format!("daemon on {} sent an incomplete status", path.display()));
        };
        let idle = v.get("seconds_without_clients").map(|x| x.as_u64());
        return Ok(Health { clients, clusters, idle });
    }
    // Text form: "Connected clients:\t\t2".
    let field =
        |name: &str| body.lines().find_map(|l| l.strip_prefix(name)).and_then(|rest| rest.trim().parse::<u64>().ok());
    match (field("Connected clients:"), field("Connected clusters:")) {
        (Some(clients), Some(clusters)) => Ok(Health { clients, clusters, idle: None }),
        _ => Err(format!("daemon on {} sent an unreadable status", path.display())),
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

use crate::pki::cert_expiry;

/// `(CA notAfter, server notAfter)` in Unix seconds, or why they could not be read.
type CertExpiry = Result<(i64, i64), String>;

/// Whole days left until `not_after` (negative once expired), rounded down.
fn days_left(not_after: i64, now: i64) -> i64 {
    (not_after - now).div_euclid(86_400)
}

/// Evaluate the certificate rule; `Err` is the unhealthy reason.
fn cert_check(ca: i64, server: i64, now: i64, min_days: u64) -> Result<String, String> {
    let limit = i64::try_from(min_days).unwrap_or(i64::MAX / 86_400).saturating_mul(86_400);
    let mut problems = Vec::new();
    for (what, t) in [("CA", ca), ("server certificate", server)] {
        if t <= now {
            problems.push(format!("{what} expired {} days ago", days_left(now, t)));
        } else if t - now < limit {
            problems.push(format!("{what} expires in {} days (limit {min_days})", days_left(t, now)));
        }
    }
    if problems.is_empty() {
        Ok(format!("CA valid {} days, server certificate valid {} days", days_left(ca, now), days_left(server, now)))
    } else {
        Err(problems.join("; "))
    }
}

/// The health verdict: (healthy, line without the newline).
fn health_report(
    status: Result<Health, String>,
    max_idle: Option<u64>,
    certs: Option<(u64, CertExpiry)>,
    now: i64,
) -> (bool, String) {
    let mut facts = Vec::new();
    let mut problems = Vec::new();
    match status {
        Ok(h) => {
            let mut clients = plural(h.clients, "client");
            if let Some(Some(idle)) = h.idle {
                clients.push_str(&format!(" (none for {idle} s)"));
            }
            facts.push(clients);
            facts.push(plural(h.clusters, "cluster"));
            match (max_idle, h.idle) {
                (Some(limit), Some(Some(idle))) if idle >= limit => {
                    problems.push(format!("no client connected for {idle} s (limit {limit})"))
                }
                (Some(_), None) => problems.push("daemon does not report its idle time (not a qnetd of ours?)".into()),
                _ => {}
            }
        }
        Err(e) => problems.push(e),
    }
    if let Some((days, res)) = certs {
        match res {
            Ok((ca, server)) => match cert_check(ca, server, now, days) {
                Ok(f) => facts.push(f),
                Err(p) => problems.push(p),
            },
            Err(e) => problems.push(format!("cannot read certificates: {e}")),
        }
    }
    if problems.is_empty() {
        (true, format!("healthy: {}", facts.join(", ")))
    } else {
        (false, format!("unhealthy: {}", problems.join("; ")))
    }
}

/// Run `qnetd health`: print the verdict line, return the exit code (0 healthy,
/// 1 unhealthy).
pub fn health_main(args: HealthArgs) -> i32 {
    let (code, line) = health_check(&args);
    println!("{line}");
    code
}

/// The `qnetd health` verdict without printing it: exit code and the line.
pub fn health_check(args: &HealthArgs) -> (i32, String) {
    let socket = args.socket.clone().unwrap_or_else(default_socket_path);
    let status = query_health(&socket, Duration::from_secs(args.timeout.max(1)));
    let certs = args.cert_days.map(|days| {
        let dir = args.dir.clone().unwrap_or_else(default_nssdb_dir);
        (days, cert_expiry(&dir).map_err(|e| e.to_string()))
    });
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (healthy, line) = health_report(status, args.max_idle, certs, now);
    (if healthy { 0 } else { 1 }, line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn parse(args: &[&str]) -> (Result<CArgs, i32>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let r = parse_c_args("./corosync-qnetd-tool", &s(args), &mut out, &mut err);
        (r, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn req(args: &[&str]) -> (Request, PathBuf) {
        match parse(args).0 {
            Ok(a) => (a.request, a.socket),
            Err(c) => panic!("{args:?} -> exit {c}"),
        }
    }

    fn line(args: &[&str]) -> String {
        String::from_utf8(req(args).0.line()).unwrap()
    }

    #[test]
    fn request_lines_match_the_c_tool() {
        assert_eq!(line(&["-s"]), "status \n");
        assert_eq!(line(&["-sv"]), "status verbose \n");
        assert_eq!(line(&["-l"]), "list \n");
        assert_eq!(line(&["-lv", "-c", "c1"]), "list verbose cluster \"c1\" \n");
        assert_eq!(line(&["-lvcc1"]), "list verbose cluster \"c1\" \n");
        assert_eq!(line(&["-H"]), "shutdown \n");
        // -c is sent with every operation.
        assert_eq!(line(&["-H", "-c", "x"]), "shutdown cluster \"x\" \n");
        assert_eq!(line(&["-s", "-c", "we\"ird\\name"]), "status cluster \"we\\\"ird\\\\name\" \n");
        assert_eq!(line(&["-c", "a b", "-l"]), "list cluster \"a b\" \n");
        // Last operation and last -c win.
        assert_eq!(line(&["-s", "-l", "-H", "-s"]), "status \n");
        assert_eq!(line(&["-l", "-c", "a", "-c", "b"]), "list cluster \"b\" \n");
        // Our extension.
        assert_eq!(line(&["-lv", "--json", "-c", "c1"]), "list json verbose cluster \"c1\" \n");
        assert_eq!(line(&["--json", "-s"]), "status json \n");
    }

    #[test]
    fn getopt_details() {
        // Option arguments: glued or next word (even if it looks like an option).
        assert_eq!(req(&["-l", "-p/tmp/x.sock"]).1, PathBuf::from("/tmp/x.sock"));
        assert_eq!(req(&["-l", "-p", "-s"]).1, PathBuf::from("-s"));
        assert_eq!(req(&["-lp", "/a"]).1, PathBuf::from("/a"));
        assert_eq!(req(&["-lc", "-v"]).0.cluster.as_deref(), Some(&b"-v"[..]));
        assert!(!req(&["-lc", "-v"]).0.verbose);
        // Non-options are skipped (glibc permutes them away), `--` ends options.
        assert_eq!(req(&["foo", "-s", "-", "bar"]).0.operation, Operation::Status);
        let (r, out, err) = parse(&["--", "-s"]);
        assert_eq!((r, out.as_str(), err.as_str()), (Err(1), USAGE, ""));
    }

    #[test]
    fn usage_and_getopt_errors() {
        for args in [&["-h"][..], &[], &["-v"], &["-c", "x"], &["-s", "-h"], &["-h", "-s"]] {
            let (r, out, err) = parse(args);
            assert_eq!((r, out.as_str(), err.as_str()), (Err(1), USAGE, ""), "{args:?}");
        }
        let (r, out, err) = parse(&["-s", "-x"]);
        assert_eq!((r, out.as_str(), err.as_str()), (Err(1), USAGE, "./corosync-qnetd-tool: invalid option -- 'x'\n"));
        let (r, out, err) = parse(&["-s", "-c"]);
        assert_eq!(
            (r, out.as_str(), err.as_str()),
            (Err(1), USAGE, "./corosync-qnetd-tool: option requires an argument -- 'c'\n")
        );
        let (r, _, err) = parse(&["--status"]);
        assert_eq!((r, err.as_str()), (Err(1), "./corosync-qnetd-tool: invalid option -- '-'\n"));
    }

    static N: AtomicUsize = AtomicUsize::new(0);

    fn temp_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "qnetd-tool-ut-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A one-shot server with a canned reply; returns the socket path and a handle
    /// yielding the request it read.
    fn canned(reply: &'static [u8]) -> (PathBuf, std::thread::JoinHandle<Vec<u8>>) {
        let path = temp_dir().join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            let mut b = [0u8; 256];
            while !crate::ipc::request_complete(&buf) {
                let n = c.read(&mut b).unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&b[..n]);
            }
            c.write_all(reply).unwrap();
            buf
        });
        (path, h)
    }

    fn run(args: &[&str], reply: &'static [u8]) -> (i32, String, String, String) {
        let (path, h) = canned(reply);
        let mut a = s(args);
        a.push("-p".into());
        a.push(path.to_string_lossy().into_owned());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = c_main_with("/usr/sbin/corosync-qnetd-tool", &a, &mut out, &mut err);
        let sent = String::from_utf8(h.join().unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap(), sent)
    }

    #[test]
    fn reply_handling() {
        let r = run(&["-sv"], b"OK\nbody\nmore\n");
        assert_eq!(r, (0, "body\nmore\n".into(), "".into(), "status verbose \n".into()));
        let r = run(&["-l"], b"ok\r\n");
        assert_eq!((r.0, r.1, r.2), (0, "".into(), "".into()));
        let r = run(&["-l", "-c", "nosuch"], b"Error\nUnknown thing\n");
        assert_eq!((r.0, r.1, r.2), (4, "".into(), "Error: Unknown thing\n".into()));
        // CRs anywhere in the status line are ignored, case does not matter.
        assert_eq!(run(&["-s"], b"e\rRrOR\r\nx").0, 4);
        let r = run(&["-s"], b"Okay\nbody\n");
        assert_eq!(
            (r.0, r.1, r.2),
            (3, "".into(), "corosync-qnetd-tool: Unknown status line returned by IPC server\n".into())
        );
        // A status line cut short by EOF: no output, success (as the C tool).
        let r = run(&["-s"], b"OK");
        assert_eq!((r.0, r.1, r.2), (0, "".into(), "".into()));
        // NUL ends the status line as a C string.
        assert_eq!(run(&["-s"], b"OK\0junk\nbody").1, "body");
    }

    #[test]
    fn connect_failures() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let dir = temp_dir();
        let missing = dir.join("none.sock");
        let code = c_main_with("corosync-qnetd-tool", &s(&["-s", "-p", missing.to_str().unwrap()]), &mut out, &mut err);
        assert_eq!(code, 3);
        assert!(out.is_empty());
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "corosync-qnetd-tool: Can't connect to qnetd socket (is QNetd running?): No such file or directory\n"
        );
        for p in ["".to_string(), format!("/{}", "x".repeat(107))] {
            let mut err = Vec::new();
            assert_eq!(c_main_with("t", &s(&["-s", "-p", &p]), &mut Vec::new(), &mut err), 3);
            assert_eq!(
                String::from_utf8(err).unwrap(),
                "t: Can't connect to qnetd socket (is QNetd running?): File name too long\n"
            );
        }
        // A plain file: connection refused.
        let f = dir.join("plain");
        std::fs::write(&f, b"").unwrap();
        let mut err = Vec::new();
        assert_eq!(c_main_with("t", &s(&["-s", "-p", f.to_str().unwrap()]), &mut Vec::new(), &mut err), 3);
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "t: Can't connect to qnetd socket (is QNetd running?): Connection refused\n"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn tool_args_map_to_requests() {
        use argh::FromArgs;
        let a = ToolArgs::from_args(&["tool"], &["-l", "-v", "--json", "-c", "c1", "-p", "/x"]).unwrap();
        assert!(a.list && a.verbose && a.json && !a.status && !a.shutdown);
        assert_eq!(a.cluster.as_deref(), Some("c1"));
        assert_eq!(a.socket.as_deref(), Some(Path::new("/x")));
        assert_eq!(tool_main(ToolArgs::from_args(&["tool"], &["-v"]).unwrap()), EXIT_USAGE);
        assert_eq!(tool_main(ToolArgs::from_args(&["tool"], &["-s", "-l"]).unwrap()), EXIT_USAGE);
        let h = HealthArgs::from_args(&["health"], &["--max-idle", "600", "--cert-days", "30", "--dir", "/d"]).unwrap();
        assert_eq!((h.max_idle, h.cert_days, h.timeout), (Some(600), Some(30), 10));
        assert_eq!(h.dir.as_deref(), Some(Path::new("/d")));
    }

    fn health(clients: u64, clusters: u64, idle: Option<Option<u64>>) -> Result<Health, String> {
        Ok(Health { clients, clusters, idle })
    }

    #[test]
    fn health_verdicts() {
        const DAY: i64 = 86_400;
        let now = 1_700_000_000;
        assert_eq!(
            health_report(health(2, 1, Some(None)), Some(600), None, now),
            (true, "healthy: 2 clients, 1 cluster".into())
        );
        assert_eq!(
            health_report(health(0, 0, Some(Some(599))), Some(600), None, now),
            (true, "healthy: 0 clients (none for 599 s), 0 clusters".into())
        );
        assert_eq!(
            health_report(health(0, 0, Some(Some(3600))), Some(600), None, now),
            (false, "unhealthy: no client connected for 3600 s (limit 600)".into())
        );
        // Without --max-idle, idleness is only reported.
        assert!(health_report(health(0, 0, Some(Some(3600))), None, None, now).0);
        // A daemon that does not report idleness cannot pass --max-idle.
        assert!(!health_report(health(1, 1, None), Some(600), None, now).0);
        assert!(health_report(health(1, 1, None), None, None, now).0);
        assert_eq!(
            health_report(Err("cannot connect to /x: No such file or directory".into()), None, None, now),
            (false, "unhealthy: cannot connect to /x: No such file or directory".into())
        );
        let certs = |ca: i64, srv: i64| Some((30u64, Ok((now + ca, now + srv))));
        assert_eq!(
            health_report(health(2, 1, Some(None)), None, certs(36500 * DAY + 5, 36500 * DAY), now),
            (true, "healthy: 2 clients, 1 cluster, CA valid 36500 days, server certificate valid 36500 days".into())
        );
        assert_eq!(
            health_report(health(1, 1, Some(None)), None, certs(30 * DAY, 29 * DAY + 10), now),
            (false, "unhealthy: server certificate expires in 29 days (limit 30)".into())
        );
        assert_eq!(
            health_report(health(1, 1, Some(None)), None, certs(-2 * DAY, 0), now),
            (false, "unhealthy: CA expired 2 days ago; server certificate expired 0 days ago".into())
        );
        // Every problem is on the one line.
        let (ok, line) = health_report(Err("daemon down".into()), Some(1), Some((30, Err("no such dir".into()))), now);
        assert!(!ok);
        assert_eq!(line, "unhealthy: daemon down; cannot read certificates: no such dir");
    }

    #[test]
    fn health_queries_status_json() {
        let (path, h) =
            canned(b"OK\n{\"connected_clients\":0,\"connected_clusters\":0,\"seconds_without_clients\":42}\n");
        let got = query_health(&path, Duration::from_secs(5));
        assert_eq!(h.join().unwrap(), b"status json \n");
        assert_eq!(got, Ok(Health { clients: 0, clusters: 0, idle: Some(Some(42)) }));
        let cleanup = |p: &Path| std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
        cleanup(&path);
        // The C daemon answers text.
        let (path, _h) = canned(b"OK\nQNetd address:\t\t\t*:5403\nTLS:\t\t\t\tSupported\nConnected clients:\t\t3\nConnected clusters:\t\t2\n");
        assert_eq!(query_health(&path, Duration::from_secs(5)), Ok(Health { clients: 3, clusters: 2, idle: None }));
        cleanup(&path);
        let (path, _h) = canned(b"Error\nUnknown command 'status'\n");
        assert_eq!(
            query_health(&path, Duration::from_secs(5)),
            Err(format!("daemon on {} answered: Error: Unknown command 'status'", path.display()))
        );
        cleanup(&path);
        let (path, _h) = canned(b"");
        assert!(query_health(&path, Duration::from_secs(5)).unwrap_err().contains("closed without an answer"));
        cleanup(&path);
    }
}
