//! `corosync-qnetd-certutil`: the qnetd-side certificate tool, command-line
//! compatible with the C package's shell script (tool-and-files.md §6), backed by
//! the PEM store of [`crate::pki`] instead of an NSS database.
//!
//! Scripts drive this tool (pcs, `corosync-qdevice-net-certutil -Q`, crmsh), so
//! the option syntax (bash `getopts ":Ghisc:n:"`: combined flags such as `-iG`,
//! `-sn NAME`, `-cFILE`; options end at the first non-option or `--`), the stdout
//! lines they parse (`Certificate stored in <path>`, `QNetd CA certificate is
//! exported as <path>`), the stderr messages and the exit codes are the C ones:
//!
//! | situation | exit |
//! |---|---|
//! | success, `-h`, or no operation (usage on stdout) | 0 |
//! | invalid option / option without its argument | 1 |
//! | `-i` when a store or an NSS database already exists | 1 |
//! | `-s` without an initialised store | 1 |
//! | `-s` with a missing `-c` file or without `-n` | 2 |
//! | `-s` failure while signing (bad request, I/O) | 1 (the C script printed success and exited 0) |
//!
//! The store directory is the C tool's fixed `/etc/corosync/qnetd/nssdb`, unless
//! the environment variable `QNETD_NSSDB_DIR` names another one (tests, and
//! containers that keep state elsewhere). `qnetd certutil` ([`CertutilArgs`]) is
//! the same tool with long options and `--dir`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use argh::FromArgs;

use crate::pki::{self, PkiError};

/// Environment variable overriding the store directory.
pub const DIR_ENV: &str = "QNETD_NSSDB_DIR";

/// The store directory: `$QNETD_NSSDB_DIR` if set and non-empty, else the C path.
pub fn store_dir() -> PathBuf {
    match std::env::var_os(DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(pki::DEFAULT_DIR),
    }
}

/// Entry point for the `corosync-qnetd-certutil` name. `prog` is argv\[0\] (shown
/// in messages like the script's `$0`), `args` the arguments after it.
pub fn c_main(prog: &str, args: &[String]) -> i32 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    run_c(prog, args, &store_dir(), &mut stdout.lock(), &mut stderr.lock())
}

/// [`c_main`] with the directory and output streams given (testable).
pub fn run_c(prog: &str, args: &[String], dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let opts = match parse_getopts(args) {
        Ok(o) => o,
        Err(Stop::Help) => return usage(prog, out),
        Err(Stop::Invalid(c)) => {
            let _ = writeln!(err, "Invalid option: -{}", c);
            return 1;
        }
        Err(Stop::MissingArgument(c)) => {
            let _ = writeln!(err, "Option -{} requires an argument.", c);
            return 1;
        }
    };
    match opts.op {
        None => usage(prog, out),
        Some(Op::Init) => do_init(dir, opts.group_write, out, err),
        Some(Op::Sign) => do_sign(prog, dir, &opts.crq, &opts.name, opts.group_write, out, err),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Init,
    Sign,
}

#[derive(Debug, PartialEq, Eq)]
struct Opts {
    /// The last of `-i` / `-s` wins, as in the script.
    op: Option<Op>,
    crq: String,
    name: String,
    group_write: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Help,
    Invalid(char),
    MissingArgument(char),
}

/// bash `getopts ":Ghisc:n:"`, processed left to right: `-h` stops with the usage
/// at once, an unknown option or a missing argument stops with an error.
fn parse_getopts(args: &[String]) -> Result<Opts, Stop> {
    let mut opts = Opts { op: None, crq: String::new(), name: String::new(), group_write: true };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let Some(flags) = arg.strip_prefix('-') else {
            break;
        };
        if flags.is_empty() {
            break;
        }
        for (pos, c) in flags.char_indices() {
            match c {
                'G' => opts.group_write = false,
                'h' => return Err(Stop::Help),
                'i' => opts.op = Some(Op::Init),
                's' => opts.op = Some(Op::Sign),
                'c' | 'n' => {
                    let rest = &flags[pos + c.len_utf8()..];
                    let value = if !rest.is_empty() {
                        rest.to_string()
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].clone()
                    } else {
                        return Err(Stop::MissingArgument(c));
                    };
                    if c == 'c' {
                        opts.crq = value;
                    } else {
                        opts.name = value;
                    }
                    break;
                }
                other => return Err(Stop::Invalid(other)),
            }
        }
    }
    Ok(opts)
}

fn usage(prog: &str, out: &mut dyn Write) -> i32 {
    let _ = write!(
        out,
        "{prog}: [-i|-s] [-c certificate] [-G] [-n cluster_name]\n\
         \n\
         \x20-i                  Initialize QNetd CA and generate server certificate\n\
         \x20-s                  Sign cluster certificate (needs cluster certificate)\n\
         \x20-c certificate      CRQ certificate file name\n\
         \x20-G                  Do not set group write bit for new files\n\
         \x20-n cluster_name     Name of cluster (for -s operation)\n",
        prog = prog
    );
    0
}

fn do_init(dir: &Path, group_write: bool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let existed = dir.exists();
    match pki::init(dir, group_write) {
        Ok(_) => {
            if !existed {
                let _ = writeln!(out, "Creating {}", dir.display());
            }
            let _ = writeln!(out, "Created new CA ({}) and server certificate ({})", pki::CA_CN, pki::SERVER_CN);
            let _ = writeln!(out, "QNetd CA certificate is exported as {}", pki::ca_export_path(dir).display());
            0
        }
        Err(e) => {
            let _ = writeln!(err, "{}", e);
            1
        }
    }
}

fn do_sign(
    prog: &str,
    dir: &Path,
    crq: &str,
    name: &str,
    group_write: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    // Same order of checks as the script: request file, name, then the store.
    if crq.is_empty() || !Path::new(crq).exists() {
        let _ = writeln!(err, "Can't open certificate file {}", crq);
        return 2;
    }
    if name.is_empty() {
        let _ = writeln!(err, "You have to specify cluster name");
        return 2;
    }
    match pki::check_initialized(dir) {
        Ok(()) => {}
        Err(PkiError::NotInitialized { .. }) => {
            let _ = writeln!(err, "Certificate database doesn't exists. Use {} -i to create it", prog);
            return 1;
        }
        // A C qnetd NSS database (says what to do), or an unreadable directory.
        Err(e) => {
            let _ = writeln!(err, "{}", e);
            return 1;
        }
    }
    let _ = writeln!(out, "Signing cluster certificate");
    let request = match std::fs::read(crq) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "Can't open certificate file {}: {}", crq, e);
            return 1;
        }
    };
    match pki::sign_request(dir, &request, name, group_write) {
        Ok(path) => {
            let _ = writeln!(out, "Certificate stored in {}", path.display());
            0
        }
        Err(e @ PkiError::BadRequest { .. }) => {
            let _ = writeln!(err, "{}: {}", crq, e);
            1
        }
        Err(e) => {
            let _ = writeln!(err, "{}", e);
            1
        }
    }
}

/// `qnetd certutil`: the same operations with long options.
#[derive(FromArgs, Debug, PartialEq, Eq)]
#[argh(
    subcommand,
    name = "certutil",
    description = "initialise the QNetd CA or sign a cluster's certificate request (corosync-qnetd-certutil)",
    note = "The store directory defaults to $QNETD_NSSDB_DIR, else /etc/corosync/qnetd/nssdb."
)]
pub struct CertutilArgs {
    /// initialize the QNetd CA and generate the server certificate
    #[argh(switch, short = 'i')]
    pub init: bool,
    /// sign a cluster certificate request (needs --crq and --name)
    #[argh(switch, short = 's')]
    pub sign: bool,
    /// certificate request to sign (DER or PEM, from corosync-qdevice-net-certutil -r)
    #[argh(option, short = 'c')]
    pub crq: Option<PathBuf>,
    /// cluster name: the output is cluster-NAME.crt in the store directory
    #[argh(option, short = 'n')]
    pub name: Option<String>,
    /// do not set the group write bit on new files
    #[argh(switch, short = 'G')]
    pub no_group_write: bool,
    /// store directory (default $QNETD_NSSDB_DIR or /etc/corosync/qnetd/nssdb)
    #[argh(option)]
    pub dir: Option<PathBuf>,
}

/// Run `qnetd certutil`; returns the exit code (same codes as [`c_main`]).
pub fn run(args: &CertutilArgs) -> i32 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    run_with(args, &mut stdout.lock(), &mut stderr.lock())
}

/// [`run`] with the output streams given (testable).
pub fn run_with(args: &CertutilArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let dir = args.dir.clone().unwrap_or_else(store_dir);
    let group_write = !args.no_group_write;
    match (args.init, args.sign) {
        (true, true) => {
            let _ = writeln!(err, "qnetd certutil: choose one of --init and --sign");
            1
        }
        (true, false) => do_init(&dir, group_write, out, err),
        (false, true) => {
            let crq = args.crq.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
            let name = args.name.clone().unwrap_or_default();
            do_sign("qnetd certutil", &dir, &crq, &name, group_write, out, err)
        }
        (false, false) => usage("qnetd certutil", out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn getopts_semantics() {
        let o = parse_getopts(&args(&["-sn", "clu", "-cfile.crq", "-G"])).unwrap();
        assert_eq!(o, Opts { op: Some(Op::Sign), crq: "file.crq".into(), name: "clu".into(), group_write: false });
        // Last operation wins; -c takes the next word even if it starts with '-'.
        let o = parse_getopts(&args(&["-is", "-c", "-x"])).unwrap();
        assert_eq!((o.op, o.crq.as_str()), (Some(Op::Sign), "-x"));
        // Options stop at the first non-option and after "--".
        let o = parse_getopts(&args(&["-i", "extra", "-s"])).unwrap();
        assert_eq!(o.op, Some(Op::Init));
        let o = parse_getopts(&args(&["--", "-s"])).unwrap();
        assert_eq!(o.op, None);
        let o = parse_getopts(&args(&["-", "-s"])).unwrap();
        assert_eq!(o.op, None);
        // Left to right: -h before a bad option helps, after it errors.
        assert_eq!(parse_getopts(&args(&["-h", "-x"])), Err(Stop::Help));
        assert_eq!(parse_getopts(&args(&["-x", "-h"])), Err(Stop::Invalid('x')));
        assert_eq!(parse_getopts(&args(&["-ih"])), Err(Stop::Help));
        assert_eq!(parse_getopts(&args(&["-s", "-n"])), Err(Stop::MissingArgument('n')));
        assert_eq!(parse_getopts(&args(&["-sc"])), Err(Stop::MissingArgument('c')));
    }

    struct Run {
        code: i32,
        out: String,
        err: String,
    }

    fn run_tool(dir: &Path, list: &[&str]) -> Run {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run_c("corosync-qnetd-certutil", &args(list), dir, &mut out, &mut err);
        Run { code, out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap() }
    }

    fn temp(tag: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "qnetd-certutil-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        p
    }

    fn ecdsa_csr_der() -> Vec<u8> {
        let kp = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "clu");
        params.serialize_request(&kp).unwrap().der().to_vec()
    }

    #[test]
    fn help_and_bad_options() {
        let base = temp("help");
        let dir = base.join("nssdb");
        for list in [&[][..], &["-h"][..], &["-G"][..], &["-c", "x", "-n", "y"][..]] {
            let r = run_tool(&dir, list);
            assert_eq!(r.code, 0, "{:?}", list);
            assert!(r.out.starts_with("corosync-qnetd-certutil: [-i|-s] [-c certificate] [-G] [-n cluster_name]\n\n"));
            assert!(r.out.contains(" -G                  Do not set group write bit for new files\n"));
            assert!(r.err.is_empty());
        }
        let r = run_tool(&dir, &["-x"]);
        assert_eq!((r.code, r.err.as_str()), (1, "Invalid option: -x\n"));
        let r = run_tool(&dir, &["-s", "-c"]);
        assert_eq!((r.code, r.err.as_str()), (1, "Option -c requires an argument.\n"));
        assert!(!dir.exists(), "nothing created");
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn init_then_sign_prints_what_scripts_parse() {
        let base = temp("flow");
        let dir = base.join("nssdb");
        let crq = base.join("req.crq");
        fs::write(&crq, ecdsa_csr_der()).unwrap();
        let crq_s = crq.to_str().unwrap();

        // -s before -i: store missing.
        let r = run_tool(&dir, &["-s", "-c", crq_s, "-n", "clu"]);
        assert_eq!(r.code, 1);
        assert_eq!(r.err, "Certificate database doesn't exists. Use corosync-qnetd-certutil -i to create it\n");
        // Missing request file / name: exit 2, checked before the store.
        let r = run_tool(&dir, &["-s", "-c", "/nonexistent/x.crq", "-n", "clu"]);
        assert_eq!((r.code, r.err.as_str()), (2, "Can't open certificate file /nonexistent/x.crq\n"));
        let r = run_tool(&dir, &["-s", "-c", crq_s]);
        assert_eq!((r.code, r.err.as_str()), (2, "You have to specify cluster name\n"));

        let r = run_tool(&dir, &["-i"]);
        assert_eq!(r.code, 0, "{}", r.err);
        let export = dir.join("qnetd-cacert.crt");
        assert!(r.out.starts_with(&format!("Creating {}\n", dir.display())));
        assert!(r.out.ends_with(&format!("QNetd CA certificate is exported as {}\n", export.display())));
        assert!(export.exists());

        let r = run_tool(&dir, &["-i"]);
        assert_eq!(r.code, 1);
        assert_eq!(
            r.err,
            format!("Certificate database ({}) already exists. Delete it to initialize new db\n", dir.display())
        );

        let r = run_tool(&dir, &["-sn", "clu", "-c", crq_s]);
        assert_eq!(r.code, 0, "{}", r.err);
        let out_path = dir.join("cluster-clu.crt");
        assert_eq!(r.out, format!("Signing cluster certificate\nCertificate stored in {}\n", out_path.display()));
        // pcs: ^Certificate( request)? stored in (?P<path>.+)$ then reads the file.
        let line = r.out.lines().find_map(|l| l.strip_prefix("Certificate stored in ")).unwrap();
        let der = fs::read(line).unwrap();
        assert_eq!(der[0], 0x30, "DER, not PEM");

        // A broken request: exit 1 with the file named, no success line.
        let bad = base.join("bad.crq");
        fs::write(&bad, b"not a request").unwrap();
        let r = run_tool(&dir, &["-s", "-c", bad.to_str().unwrap(), "-n", "bad"]);
        assert_eq!(r.code, 1);
        assert!(r.err.starts_with(&format!("{}: certificate request rejected: ", bad.display())), "{}", r.err);
        assert!(!r.out.contains("Certificate stored in"));
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn nss_database_directory_gets_the_c_refusal_and_an_explanation() {
        let base = temp("nss");
        let dir = base.join("nssdb");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cert9.db"), b"x").unwrap();
        let r = run_tool(&dir, &["-i"]);
        assert_eq!(r.code, 1);
        assert!(r.err.starts_with("Certificate database ("), "{}", r.err);
        let crq = base.join("req.crq");
        fs::write(&crq, ecdsa_csr_der()).unwrap();
        let r = run_tool(&dir, &["-s", "-c", crq.to_str().unwrap(), "-n", "c"]);
        assert_eq!(r.code, 1);
        assert!(r.err.contains("pk12util"), "{}", r.err);
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn argh_front_end() {
        let base = temp("argh");
        let dir = base.join("store");
        let parsed = CertutilArgs::from_args(&["certutil"], &["-i", "-G", "--dir", dir.to_str().unwrap()]).unwrap();
        assert!(parsed.init && parsed.no_group_write);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run_with(&parsed, &mut out, &mut err), 0);
        assert!(pki::is_initialized(&dir).unwrap());
        let crq = base.join("r.crq");
        fs::write(&crq, ecdsa_csr_der()).unwrap();
        let parsed = CertutilArgs::from_args(
            &["certutil"],
            &["--sign", "--crq", crq.to_str().unwrap(), "--name", "n1", "--dir", dir.to_str().unwrap()],
        )
        .unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run_with(&parsed, &mut out, &mut err), 0);
        assert!(String::from_utf8(out).unwrap().contains("Certificate stored in "));
        let both = CertutilArgs::from_args(&["certutil"], &["-i", "-s"]).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run_with(&both, &mut out, &mut err), 1);
        let _ = fs::remove_dir_all(&base);
    }
}
