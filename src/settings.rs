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
