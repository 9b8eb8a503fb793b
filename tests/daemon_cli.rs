//! `corosync-qnetd` command line against the installed C binary: same stdout,
//! stderr and exit status for usage, getopt errors and every kind of bad value.
//!
//! Every case gets a trailing `-h`, so a case the C daemon unexpectedly accepts
//! prints usage instead of starting a daemon (no case ends in `-l`, which would
//! swallow it). Set `QNETD_SKIP_C=1` where the C package is not installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const C_QNETD: &str = "/usr/bin/corosync-qnetd";

fn ours() -> PathBuf {
    let dir = common::temp_dir("cli");
    let link = dir.join("corosync-qnetd");
    std::os::unix::fs::symlink(common::qnetd_bin(), &link).unwrap();
    link
}

fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin).args(args).arg("-h").stdin(Stdio::null()).output().unwrap()
}

fn skip_c() -> bool {
    if std::env::var_os("QNETD_SKIP_C").is_some() || !Path::new(C_QNETD).exists() {
        eprintln!("C corosync-qnetd not available: skipping the comparison");
        return true;
    }
    false
}

const CASES: &[&[&str]] = &[
    &[],
    &["-x"],
    &["-fx"],
    &["-p"],
    &["-p", "0"],
    &["-p", "65536"],
    &["-p", "5x"],
    &["-p", "-5"],
    &["-p", "0x10"],
    &["-p", " 5"],
    &["-p5403"],
    &["-fdp", "5403"],
    &["-m"],
    &["-m", "-1"],
    &["-m", "abc"],
    &["-m", ""],
    &["-m", "5 "],
    &["-m", "9223372036854775808"],
    &["-m", "9223372036854775807"],
    &["-s", "foo"],
    &["-s", "REQ"],
    &["-c", "2"],
    &["-c", "YES"],
    &["-S", "foo=1"],
    &["-S", " listen_backlog=5"],
    &["-S", "a=b=c"],
    &["-S", "listen_backlog"],
    &["-S", "listen_backlog=0"],
    &["-S", "LISTEN_BACKLOG=x"],
    &["-S", "listen_backlog=2147483648"],
    &["-S", "listen_backlog= 5"],
    &["-S", "listen_backlog=5 "],
    &["-S", "listen_backlog=5,,foo=1"],
    &["-S", "=1,foo=1"],
    &["-S", "dpd_interval=5"],
    &["-S", "DPD_INTERVAL=5", "-p", "0"],
    &["-S", "dpd_interval_coefficient=nan"],
    &["-S", "dpd_interval_coefficient=-nan"],
    &["-S", "dpd_interval_coefficient=inf"],
    &["-S", "dpd_interval_coefficient=1e400"],
    &["-S", "dpd_interval_coefficient=0.99"],
    &["-S", "dpd_interval_coefficient=1000.0001"],
    &["-S", "dpd_interval_coefficient=0x10"],
    &["-S", "dpd_interval_coefficient=.5e1"],
    &["-S", "dpd_interval_coefficient=1.5x"],
    &["-S", "dpd_interval_coefficient=1,5"],
    &["-S", "max_client_send_buffers=1"],
    &["-S", "max_client_send_size=15"],
    &["-S", "max_client_receive_size=15"],
    &["-S", "heartbeat_interval_min=0"],
    &["-S", "heartbeat_interval_max=4294967296"],
    &["-S", "heartbeat_interval_min=-1"],
    &["-S", "dpd_enabled=maybe"],
    &["-S", "keep_active_partition_tie_breaker=2"],
    &["-S", "local_socket_backlog=0"],
    &["-S", "ipc_max_clients=-1"],
    &["-S", "ipc_max_receive_size=1023"],
    &["-S", "ipc_max_send_size=1023"],
    &["-S", "listen_backlog=1", "-S", "listen_backlog=0"],
    &["-4", "-6"],
    &["extra", "-p", "0"],
    &["-v"],
];

#[test]
fn command_line_matches_the_c_daemon() {
    if skip_c() {
        return;
    }
    let ours = ours();
    let mut mismatches = Vec::new();
    for case in CASES {
        let c = run(Path::new(C_QNETD), case);
        let r = run(&ours, case);
        let mut c_out = String::from_utf8_lossy(&c.stdout).into_owned();
        let r_out = String::from_utf8_lossy(&r.stdout).into_owned();
        if case.contains(&"-v") {
            // Only the version differs.
            c_out = c_out.replacen(c_out.split('\'').nth(1).unwrap_or(""), r_out.split('\'').nth(1).unwrap_or(""), 1);
        }
        // getopt prints argv[0] as invoked; the paths differ.
        let c_err = String::from_utf8_lossy(&c.stderr).replace(C_QNETD, "PROG");
        let r_err = String::from_utf8_lossy(&r.stderr).replace(ours.to_str().unwrap(), "PROG");
        let same = c.status.code() == r.status.code() && c_out == r_out && c_err == r_err;
        if !same {
            mismatches.push(format!(
                "{case:?}:\n  C:    {:?} out={c_out:?} err={:?}\n  ours: {:?} out={r_out:?} err={:?}",
                c.status.code(),
                c_err,
                r.status.code(),
                r_err
            ));
        }
    }
    let _ = std::fs::remove_dir_all(ours.parent().unwrap());
    assert!(mismatches.is_empty(), "{} of {} cases differ:\n{}", mismatches.len(), CASES.len(), mismatches.join("\n"));
}

#[test]
fn deliberate_deviation_s_required_is_accepted() {
    let ours = ours();
    let r = run(&ours, &["-s", "required"]);
    // Accepted, so the trailing -h prints usage (the C daemon would reject it).
    assert_eq!(r.status.code(), Some(1));
    assert!(r.stderr.is_empty(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stdout).starts_with("usage: corosync-qnetd "));
    let _ = std::fs::remove_dir_all(ours.parent().unwrap());
}

#[test]
fn qnetd_run_reports_bad_values_and_version() {
    let out = Command::new(common::qnetd_bin()).args(["run", "-S", "bogus=1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "qnetd run: Unknown option 'bogus'\n");
    let out = Command::new(common::qnetd_bin()).args(["run", "--tls", "maybe"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "qnetd run: tls must be one of on, off, req\n");
    let out = Command::new(common::qnetd_bin()).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // build.rs stamps version, revision and target: "qnetd 0.1.0 (<rev>, <target>)".
    let v = String::from_utf8_lossy(&out.stdout).into_owned();
    let prefix = format!("qnetd {} (", env!("CARGO_PKG_VERSION"));
    assert!(v.starts_with(&prefix) && v.ends_with(")\n"), "{v:?}");
    assert!(v.contains(std::env::consts::ARCH), "target in {v:?}");
}
