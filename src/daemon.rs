//! `corosync-qnetd` / `qnetd run`: command line → settings → start-up in the C
//! order (tool-and-files.md §3) → the smol server.
//!
//! Start-up: parse (errors exit 1) → logging → server identity (unless `-s off`)
//! → daemonize (unless foreground) → lock file → IPC socket → TCP listener →
//! signal handlers → `sd_notify READY=1` → run. Everything that can fail before
//! `run` is reported as one `error` line and exit status 1.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;

use log::{error, info, LevelFilter};

use crate::server::{self, Runtime};
use crate::settings::{self, Cli, CliError, Settings, TlsMode};

/// Exit status for every start-up failure, as in C.
const EXIT_FAILURE: i32 = 1;

/// Entry point of `corosync-qnetd`: `prog` is argv\[0\] as invoked (getopt
/// diagnostics print it as is, like glibc), `args` the arguments after it.
/// Returns the exit status.
pub fn c_main(prog: &str, args: &[String]) -> i32 {
    let mut warnings = Vec::new();
    let parsed = settings::parse_qnetd_args(args, &mut warnings);
    for w in &warnings {
        eprintln!("corosync-qnetd: {w}");
    }
    match parsed {
        Ok(Cli::Help) => {
            print!("{}", settings::USAGE);
            EXIT_FAILURE
        }
        Ok(Cli::Version) => {
            print!("{}", settings::version_text());
            EXIT_FAILURE
        }
        Err(CliError::Usage(m)) => {
            eprintln!("{prog}: {m}");
            print!("{}", settings::USAGE);
            EXIT_FAILURE
        }
        Err(CliError::Invalid(m)) => {
            eprintln!("corosync-qnetd: {m}");
            EXIT_FAILURE
        }
        Ok(Cli::Run(s)) => start(*s),
    }
}

/// Logging: stderr (simple_logger's format) always, plus syslog (ident
/// `corosync-qnetd`, facility daemon) when `syslog` is set, as the C daemon
/// does. `-d` enables debug. rustls's own messages are kept to errors (it warns
/// about the real client's SNI "Qnetd Server" on every connection) unless `-d`
/// is given twice.
///
/// Stderr stays useful after daemonizing only until stdio is detached, which
/// happens once start-up succeeded; from then on syslog is the daemon's log.
pub fn init_logging(debug: u8, syslog: bool) {
    let level = if debug > 0 { LevelFilter::Debug } else { LevelFilter::Info };
    let rustls_level = if debug > 1 { LevelFilter::Debug } else { LevelFilter::Error };
    let stderr = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_module_level("rustls", rustls_level)
        .with_module_level("polling", LevelFilter::Info)
        .with_module_level("async_io", LevelFilter::Info)
        .with_utc_timestamps();
    if syslog {
        // SAFETY: the ident is a static C string, as openlog requires.
        unsafe { libc::openlog(c"corosync-qnetd".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
    }
    let max = stderr.max_level();
    let logger: &'static Logger = Box::leak(Box::new(Logger { stderr, syslog }));
    // A second init (tests calling start twice) keeps the first logger.
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

/// simple_logger for stderr (and for the level filter), syslog beside it.
struct Logger {
    stderr: simple_logger::SimpleLogger,
    syslog: bool,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.stderr.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        self.stderr.log(record);
        if self.syslog {
            let prio = match record.level() {
                log::Level::Error => libc::LOG_ERR,
                log::Level::Warn => libc::LOG_WARNING,
                log::Level::Info => libc::LOG_INFO,
                log::Level::Debug | log::Level::Trace => libc::LOG_DEBUG,
            };
            let text = record.args().to_string().replace('\0', " ");
            if let Ok(c) = std::ffi::CString::new(text) {
                // SAFETY: constant format string with one %s and a valid C string.
                unsafe { libc::syslog(prio, c"%s".as_ptr(), c.as_ptr()) };
            }
        }
    }

    fn flush(&self) {
        self.stderr.flush();
    }
}

/// Run the daemon with parsed settings. Returns the exit status.
pub fn start(s: Settings) -> i32 {
    init_logging(s.shell.debug, s.shell.syslog);
    match start_inner(s) {
        Ok(()) => 0,
        Err(e) => {
            error!("{e}");
            EXIT_FAILURE
        }
    }
}

fn start_inner(s: Settings) -> Result<(), String> {
    let tls = if s.core.tls == TlsMode::Off {
        None
    } else {
        let (id, created) = crate::pki::ensure_initialized(&s.shell.nss_db_dir).map_err(|e| e.to_string())?;
        if created {
            info!(
                "Created QNetd CA and server certificate; CA certificate exported as {}",
                crate::pki::ca_export_path(&s.shell.nss_db_dir).display()
            );
        }
        let config = crate::tls::server_config(
            &id.ca_cert_der,
            &id.server_cert_der,
            &id.server_key_der,
            s.core.client_cert_required,
        )
        .map_err(|e| format!("Can't set up TLS: {e}"))?;
        Some(config)
    };

    let ready = if s.shell.foreground { None } else { Some(daemonize()?) };

    let _lock = lock_file(&s.shell.lock_file)?;
    let ipc = ipc_listener(&s)?;
    let (tcp, bound) = match tcp_listener(&s) {
        Ok(x) => x,
        Err(e) => {
            let _ = fs::remove_file(&s.shell.local_socket_file);
            return Err(e);
        }
    };
    let signals = install_signals().map_err(|e| format!("Can't install signal handlers: {e}"))?;

    info!(
        "QNetd listening on {} (TLS {:?}, client certificate {}), IPC socket {}",
        bound,
        s.core.tls,
        if s.core.client_cert_required { "required" } else { "not required" },
        s.shell.local_socket_file.display()
    );
    if let Some(ready) = ready {
        ready.done();
    }
    sd_notify_ready();

    let rt = Runtime {
        core: s.core.clone(),
        tls,
        listen_addr: s.shell.listen_addr.clone().unwrap_or_else(|| "*".to_string()),
        port: bound.port(),
        ipc_path: s.shell.local_socket_file.clone(),
        ipc_max_clients: s.shell.ipc_max_clients,
        ipc_max_receive_size: s.shell.ipc_max_receive_size,
        ipc_max_send_size: s.shell.ipc_max_send_size,
    };
    server::run(rt, tcp, ipc, signals).map_err(|e| format!("Server failed: {e}"))
}

// ---------------------------------------------------------------- daemonize

/// The child's promise to tell the waiting parent that start-up finished.
struct Ready {
    pipe: File,
}

impl Ready {
    /// Start-up succeeded: release the parent (exit 0) and detach stdio.
    fn done(mut self) {
        let _ = self.pipe.write_all(b"1");
        redirect_stdio_to_null();
    }
}

/// fork + setsid like the C daemon. Deviation: the parent waits until the child
/// has its lock and sockets and exits 1 if the child failed (C exits 0 at once),
/// and the child keeps stderr until then so start-up errors reach the terminal.
fn daemonize() -> Result<Ready, String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("Can't create pipe: {}", io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (rd, wr) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: single-threaded at this point (no executor, no helper threads).
    match unsafe { libc::fork() } {
        -1 => Err(format!("Can't fork: {}", io::Error::last_os_error())),
        0 => {
            drop(rd);
            // SAFETY: plain syscall in the child.
            unsafe { libc::setsid() };
            Ok(Ready { pipe: wr })
        }
        _child => {
            drop(wr);
            let mut byte = [0u8; 1];
            let ok = matches!(io::Read::read(&mut &rd, &mut byte), Ok(1));
            std::process::exit(if ok { 0 } else { EXIT_FAILURE });
        }
    }
}

fn redirect_stdio_to_null() {
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

// ---------------------------------------------------------------- lock file

/// Why the lock file could not be taken.
#[derive(Debug)]
pub enum LockError {
    AlreadyRunning,
    Io(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::AlreadyRunning => write!(f, "another instance is running"),
            LockError::Io(e) => f.write_str(e),
        }
    }
}

/// Create the parent directory (0770) if missing, open/create the file (0640),
/// take an exclusive fcntl write lock and write `<pid>\n`. The lock dies with the
/// process (even SIGKILL), so a stale file never blocks a restart. Keep the
/// returned file open for the life of the daemon.
pub fn take_lock(path: &Path) -> Result<File, LockError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o770)
            .create(dir)
            .map_err(|e| LockError::Io(format!("Can't create directory {}: {e}", dir.display())))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .open(path)
        .map_err(|e| LockError::Io(format!("Can't open lock file {}: {e}", path.display())))?;
    // SAFETY: zeroed flock is valid; fields set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    // SAFETY: valid descriptor and flock pointer.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == -1 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EAGAIN) => LockError::AlreadyRunning,
            _ => LockError::Io(format!("Can't lock {}: {e}", path.display())),
        });
    }
    file.set_len(0)
        .and_then(|_| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .map_err(|e| LockError::Io(format!("Can't write lock file {}: {e}", path.display())))?;
    Ok(file)
}

fn lock_file(path: &Path) -> Result<File, String> {
    take_lock(path).map_err(|e| match e {
        LockError::AlreadyRunning => format!("Can't acquire lock {}: another instance is running", path.display()),
        LockError::Io(m) => m,
    })
}

// ---------------------------------------------------------------- sockets

/// IPC socket: parent dir created if missing, stale path unlinked (we hold the
/// lock, so it is not another instance's), optional umask while binding,
/// optional group, `local_socket_backlog`.
fn ipc_listener(s: &Settings) -> Result<UnixListener, String> {
    let path = &s.shell.local_socket_file;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o770)
            .create(dir)
            .map_err(|e| format!("Can't create directory {}: {e}", dir.display()))?;
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("Can't remove old IPC socket {}: {e}", path.display())),
    }
    // SAFETY: umask is process-wide, and we are single-threaded here.
    let old_umask = s.shell.local_socket_umask.map(|m| unsafe { libc::umask(m as libc::mode_t) });
    let bound = UnixListener::bind(path);
    if let Some(old) = old_umask {
        // SAFETY: as above.
        unsafe { libc::umask(old) };
    }
    let listener = bound.map_err(|e| format!("Can't create IPC socket {}: {e}", path.display()))?;
    if let Some(gid) = s.shell.local_socket_gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| format!("Can't set group {gid} on IPC socket {}: {e}", path.display()))?;
    }
    // Re-listening updates the backlog std chose.
    // SAFETY: valid listening descriptor.
    unsafe { libc::listen(listener.as_raw_fd(), s.shell.local_socket_backlog) };
    listener.set_nonblocking(true).map_err(|e| format!("IPC socket: {e}"))?;
    Ok(listener)
}

/// TCP listener (tool-and-files.md §3.1): without `-l` the wildcard of an IPv6
/// dual-stack socket (IPv4 peers appear as `::ffff:a.b.c.d`), or IPv4 with `-4`;
/// with `-l` the first resolved address of the allowed family that binds.
fn tcp_listener(s: &Settings) -> Result<(TcpListener, SocketAddr), String> {
    let port = s.shell.port;
    let candidates: Vec<SocketAddr> = match &s.shell.listen_addr {
        None if s.shell.ipv4_only => vec![SocketAddr::from(([0, 0, 0, 0], port))],
        None => vec![SocketAddr::from(([0u16; 8], port))],
        Some(host) => (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("Can't resolve listen address {host}: {e}"))?
            .filter(|a| (!s.shell.ipv4_only || a.is_ipv4()) && (!s.shell.ipv6_only || a.is_ipv6()))
            .collect(),
    };
    let mut last_err = format!("no usable address for {}", s.shell.listen_addr.as_deref().unwrap_or("*"));
    for addr in candidates {
        match bind_tcp(addr, s.shell.listen_backlog) {
            Ok(l) => {
                let local = l.local_addr().map_err(|e| format!("Can't read bound address: {e}"))?;
                return Ok((l, local));
            }
            Err(e) => last_err = format!("Can't bind to {addr}: {e}"),
        }
    }
    Err(last_err)
}

/// socket + SO_REUSEADDR (+ IPV6_V6ONLY=0 for IPv6) + bind + listen(backlog).
fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket creation; the descriptor is owned right away.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let zero: libc::c_int = 0;
    let setopt = |level, name, val: &libc::c_int| {
        // SAFETY: valid descriptor and option pointer/length.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                level,
                name,
                (val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    setopt(libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)?;
    if addr.is_ipv6() {
        setopt(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &zero)?;
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes.
    if unsafe { libc::bind(sock.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: valid bound descriptor.
    if unsafe { libc::listen(sock.as_raw_fd(), backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpListener::from(sock))
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

// ---------------------------------------------------------------- signals, systemd

/// SIGINT/SIGTERM write a byte into a socket pair; the server reads the other end.
fn install_signals() -> io::Result<UnixStream> {
    let (rd, wr) = UnixStream::pair()?;
    wr.set_nonblocking(true)?;
    rd.set_nonblocking(true)?;
    let wr2 = wr.try_clone()?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, wr)?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, wr2)?;
    Ok(rd)
}

/// `READY=1` to `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
/// Failures are logged and otherwise ignored: systemd would time us out anyway.
pub fn sd_notify_ready() {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let result = (|| -> io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(b"READY=1", &addr)?;
        } else {
            sock.send_to(b"READY=1", Path::new(&target))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        log::warn!("sd_notify to {}: {e}", target.to_string_lossy());
    }
}
