//! Multi-call entry point: the program name decides the personality
//! (`corosync-qnetd`, `corosync-qnetd-certutil`, `corosync-qnetd-tool`, as the
//! packages install them, e.g. as symlinks); anything else is `qnetd <subcommand>`.

use std::path::PathBuf;

use argh::FromArgs;
use qnetd::daemon;
use qnetd::settings::{CliError, FriendlyPaths, Settings};

fn main() {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let name = std::path::Path::new(&argv0).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let code = match name.as_str() {
        "corosync-qnetd" => daemon::c_main(&argv0, &rest),
        "corosync-qnetd-certutil" => qnetd::certutil::c_main(&argv0, &rest),
        "corosync-qnetd-tool" => qnetd::tool::c_main(&argv0, &rest),
        _ => qnetd_main(&rest),
    };
    std::process::exit(code);
}

/// Corosync QNetd quorum arbitrator (one binary; also answers to the names
/// corosync-qnetd, corosync-qnetd-certutil and corosync-qnetd-tool).
#[derive(FromArgs)]
struct Top {
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    #[argh(subcommand)]
    cmd: Option<Sub>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Sub {
    Run(RunArgs),
    Certutil(qnetd::certutil::CertutilArgs),
    Tool(qnetd::tool::ToolArgs),
    Health(qnetd::tool::HealthArgs),
}

/// Run the daemon (in the foreground unless --daemonize). Options mirror
/// corosync-qnetd's.
#[derive(FromArgs)]
#[argh(subcommand, name = "run")]
struct RunArgs {
    /// fork into the background like corosync-qnetd without -f
    #[argh(switch)]
    daemonize: bool,
    /// debug logging
    #[argh(switch, short = 'd')]
    debug: bool,
    /// also log to syslog (ident corosync-qnetd, facility daemon)
    #[argh(switch)]
    syslog: bool,
    /// listen address or host name (default: all, dual-stack)
    #[argh(option, short = 'l')]
    listen_addr: Option<String>,
    /// TCP port (default 5403; 0 = any free port, see the log)
    #[argh(option, short = 'p')]
    port: Option<String>,
    /// IPv4 only
    #[argh(switch, short = '4')]
    ipv4: bool,
    /// IPv6 socket
    #[argh(switch, short = '6')]
    ipv6: bool,
    /// TLS mode: on, off, req (or required)
    #[argh(option, short = 's')]
    tls: Option<String>,
    /// require a client certificate with TLS: on/yes/1 or off/no/0
    #[argh(option, short = 'c')]
    client_cert: Option<String>,
    /// maximum simultaneous clients, 0 = unlimited
    #[argh(option, short = 'm')]
    max_clients: Option<String>,
    /// advanced settings, name=value[,name=value...] (repeatable), as corosync-qnetd -S
    #[argh(option, short = 'S')]
    set: Vec<String>,
    /// certificate directory (the nss_db_dir setting)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// lock/PID file (the lock_file setting)
    #[argh(option)]
    lock_file: Option<PathBuf>,
    /// IPC socket path (the local_socket_file setting)
    #[argh(option)]
    socket: Option<PathBuf>,
    /// ms allowed from connect to a completed INIT, 0 = no limit (our extension)
    #[argh(option)]
    handshake_timeout: Option<u64>,
}

fn qnetd_main(rest: &[String]) -> i32 {
    let strs: Vec<&str> = rest.iter().map(String::as_str).collect();
    let top = match Top::from_args(&["qnetd"], &strs) {
        Ok(t) => t,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    0
                }
                Err(()) => {
                    eprintln!("{}", early.output);
                    1
                }
            }
        }
    };
    if top.version {
        println!("qnetd {}", env!("QNETD_BUILD_INFO"));
        return 0;
    }
    match top.cmd {
        None => {
            eprintln!("qnetd: no subcommand given; try qnetd --help");
            1
        }
        Some(Sub::Run(r)) => match run_settings(r) {
            Ok(s) => daemon::start(s),
            Err(e) => {
                eprintln!("qnetd run: {e}");
                1
            }
        },
        Some(Sub::Certutil(mut a)) => {
            if a.dir.is_none() && std::env::var_os(qnetd::certutil::DIR_ENV).is_none() {
                a.dir = Some(FriendlyPaths::from_env().data_dir);
            }
            qnetd::certutil::run(&a)
        }
        Some(Sub::Tool(mut a)) => {
            if a.socket.is_none() && std::env::var_os(qnetd::tool::SOCKET_ENV).is_none() {
                a.socket = Some(FriendlyPaths::from_env().socket);
            }
            qnetd::tool::tool_main(a)
        }
        Some(Sub::Health(mut a)) => {
            let friendly = FriendlyPaths::from_env();
            if a.socket.is_none() && std::env::var_os(qnetd::tool::SOCKET_ENV).is_none() {
                a.socket = Some(friendly.socket);
            }
            if a.dir.is_none() && std::env::var_os(qnetd::tool::NSSDB_ENV).is_none() {
                a.dir = Some(friendly.data_dir);
            }
            qnetd::tool::health_main(a)
        }
    }
}

/// Build settings through the same per-option code as corosync-qnetd, so values
/// are validated identically (only `--port 0` is extra).
fn run_settings(r: RunArgs) -> Result<Settings, CliError> {
    let mut s = Settings::default();
    // Our own default places first; -S and the path options below override them.
    let friendly = FriendlyPaths::from_env();
    s.shell.nss_db_dir = friendly.data_dir;
    s.shell.lock_file = friendly.lock_file;
    s.shell.local_socket_file = friendly.socket;
    s.shell.foreground = !r.daemonize;
    s.shell.syslog = r.syslog;
    let mut warnings = Vec::new();
    if r.debug {
        s.apply_option('d', "", true, &mut warnings)?;
    }
    if r.ipv4 {
        s.apply_option('4', "", true, &mut warnings)?;
    }
    if r.ipv6 {
        s.apply_option('6', "", true, &mut warnings)?;
    }
    let opts = [('l', r.listen_addr), ('p', r.port), ('s', r.tls), ('c', r.client_cert), ('m', r.max_clients)];
    for (c, v) in opts {
        if let Some(v) = v {
            s.apply_option(c, &v, true, &mut warnings)?;
        }
    }
    for list in &r.set {
        s.apply_option('S', list, true, &mut warnings)?;
    }
    for w in &warnings {
        eprintln!("qnetd run: {w}");
    }
    if let Some(d) = r.data_dir {
        s.shell.nss_db_dir = d;
    }
    if let Some(p) = r.lock_file {
        s.shell.lock_file = p;
    }
    if let Some(p) = r.socket {
        s.shell.local_socket_file = p;
    }
    if let Some(t) = r.handshake_timeout {
        s.core.handshake_timeout = t;
    }
    Ok(s)
}
