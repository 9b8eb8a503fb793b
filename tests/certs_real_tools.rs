//! Our CA, enrolment and server identity checked with the real Debian tools:
//! `corosync-qdevice-net-certutil` (client side of the enrolment), NSS `certutil`
//! (chain validation as the qdevice daemon's NSS does it), NSS `tstclnt` (a real
//! NSS TLS client against a rustls server holding our identity, as the daemon
//! will) and the C `corosync-qnetd-certutil` (migration from its NSS database).
//!
//! Skipped, with the reason printed, only when the tools or mount namespaces
//! are unavailable.

mod certs_common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use certs_common::*;
use qnetd::pki;

/// Sign through the command-line front-end, as pcs does, and take the path from
/// its `Certificate stored in` line.
fn sign_with_certutil(store: &Path) -> impl FnMut(&Path, &str) -> Result<PathBuf, String> + '_ {
    move |crq, cluster| {
        let args: Vec<String> =
            ["-s", "-c", crq.to_str().unwrap(), "-n", cluster].iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = qnetd::certutil::run_c("corosync-qnetd-certutil", &args, store, &mut out, &mut err);
        let out = String::from_utf8_lossy(&out).into_owned();
        if code != 0 {
            return Err(format!("our -s failed ({}): {}{}", code, out, String::from_utf8_lossy(&err)));
        }
        stored_path(&out, "Certificate stored in ").ok_or_else(|| format!("no path in {:?}", out))
    }
}

fn init_with_certutil(store: &Path) -> String {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = qnetd::certutil::run_c("corosync-qnetd-certutil", &["-i".to_string()], store, &mut out, &mut err);
    assert_eq!(code, 0, "our -i failed: {}", String::from_utf8_lossy(&err));
    String::from_utf8(out).unwrap()
}

macro_rules! skip_without_tools {
    () => {
        if let Some(reason) = real_tools_missing() {
            eprintln!("SKIPPED: {}", reason);
            return;
        }
    };
}

#[test]
fn real_client_tools_enrol_against_our_ca() {
    skip_without_tools!();
    let t = TempDir::new("enrol");
    let store = t.path().join("qnetd/nssdb");
    let out = init_with_certutil(&store);
    let export = pki::ca_export_path(&store);
    assert!(out.contains(&format!("QNetd CA certificate is exported as {}", export.display())));

    // Node 1: -i, -r, our -s, -M.
    let node1 = enrol_first_node(&export, "labcluster", &t.path().join("node1"), &mut sign_with_certutil(&store))
        .unwrap_or_else(|e| panic!("{}", e));
    assert_eq!(node1.cluster_cert, store.join("cluster-labcluster.crt"));
    assert!(node1.p12.is_file());
    // Node 2: -i, -m of the p12.
    let node2 = t.path().join("node2");
    enrol_other_node(&export, &node1.p12, &node2).unwrap_or_else(|e| panic!("{}", e));

    for node in [&node1.etc, &node2] {
        let db = node_db(node);
        let list = nss_list(&db).unwrap();
        let trust = |nick: &str| {
            list.lines()
                .find(|l| l.starts_with(nick))
                .map(|l| l[nick.len()..].trim().to_string())
                .unwrap_or_else(|| panic!("{} missing in\n{}", nick, list))
        };
        assert_eq!(trust(CA_NICKNAME), "CT,c,c");
        assert_eq!(trust(CLUSTER_NICKNAME), "u,u,u");
        // The client certificate chains to our CA for SSL client use (NSS's own check).
        let v = nss_verify(&db, CLUSTER_NICKNAME, "C").unwrap_or_else(|e| panic!("{}", e));
        assert!(v.contains("certificate is valid"), "{}", v);
    }

    // Server certificate: valid for SSL server in a database trusting our CA as
    // the qdevice client does ...
    let scratch = t.path().join("scratch");
    scratch_db_trusting(&scratch, &export).unwrap();
    nss_add_cert(&scratch, "QNetd Cert", &store.join(pki::SERVER_CERT_FILE)).unwrap();
    let v = nss_verify(&scratch, "QNetd Cert", "V").unwrap_or_else(|e| panic!("{}", e));
    assert!(v.contains("certificate is valid"), "{}", v);
    // ... and (control) a server certificate of another CA is not. (Its own
    // database: NSS refuses two certificates with the same issuer name and serial,
    // and every fresh store's server certificate is "CN=QNet CA" #102.)
    let other = t.path().join("other/nssdb");
    pki::init(&other, true).unwrap();
    let scratch2 = t.path().join("scratch2");
    scratch_db_trusting(&scratch2, &export).unwrap();
    nss_add_cert(&scratch2, "Foreign Cert", &other.join(pki::SERVER_CERT_FILE)).unwrap();
    let err = nss_verify(&scratch2, "Foreign Cert", "V").expect_err("foreign server cert must not verify");
    assert!(err.contains("invalid signature"), "{}", err);

    // The certificate NSS holds for the node is the one we issued, subject from the request.
    let names = pki::cert_names(&std::fs::read(&node1.cluster_cert).unwrap()).unwrap();
    assert_eq!(names.common_names, vec!["labcluster".to_string()]);
    assert!(names.dns_names.is_empty());
    // Serials: CA 101, server 102, this cluster 103 (C tool sequence).
    assert_eq!(std::fs::read_to_string(store.join(pki::SERIAL_FILE)).unwrap(), "103\n");
}

/// A real NSS TLS client (`tstclnt`) with an enrolled node database talks to a
/// rustls server holding our identity and requiring client certificates from our
/// CA. Without SNI and with the client's certificate check overridden (`-o`),
/// so that this holds with any rustls: NSS handshakes with our ECDSA P-256
/// server key in TLS 1.3 and 1.2, and rustls/webpki accepts the extension-less
/// RSA cluster certificate NSS presents. (The chain itself is checked by
/// `certutil -V -e -u V` above; the faithful client is the next test.)
#[test]
fn nss_tls_client_and_rustls_server_accept_each_other() {
    skip_without_tools!();
    if which("tstclnt").is_none() {
        eprintln!("SKIPPED: tstclnt (libnss3-tools) is not installed");
        return;
    }
    let t = TempDir::new("tls");
    let (identity, db) = enrolled_node_db(&t, "tlscluster");
    for versions in ["tls1.3:tls1.3", "tls1.2:tls1.2"] {
        let (port, server) = serve_once(&identity);
        let result = tstclnt(&db, port, None, versions);
        let seen = server.join().unwrap();
        let out = result.unwrap_or_else(|e| panic!("{}: {}\nserver side: {:?}", versions, e, seen));
        assert!(out.contains("pong"), "{}: {}", versions, out);
        let names = seen.unwrap_or_else(|e| panic!("{}: server side: {}", versions, e));
        assert_eq!(names.common_names, vec!["tlscluster".to_string()], "{}", versions);
    }
}

/// The handshake exactly as corosync-qdevice makes it: NSS with the server name
/// "Qnetd Server" (`net_nss_qnetd_cn`), which is both the SNI it sends and the
/// name it checks against our certificate's CN, with full chain validation.
/// Stock rustls 0.23 aborts on that SNI (not a DNS name) with illegal_parameter;
/// this passes with the invalid-SNI-tolerant rustls the daemon builds with.
#[test]
fn qdevice_style_tls_handshake_with_server_name_check() {
    skip_without_tools!();
    if which("tstclnt").is_none() {
        eprintln!("SKIPPED: tstclnt (libnss3-tools) is not installed");
        return;
    }
    let t = TempDir::new("tlssni");
    let (identity, db) = enrolled_node_db(&t, "snicluster");
    for versions in ["tls1.3:tls1.3", "tls1.2:tls1.2"] {
        let (port, server) = serve_once(&identity);
        let result = tstclnt(&db, port, Some("Qnetd Server"), versions);
        let seen = server.join().unwrap();
        if let Err(e) = &seen {
            assert!(
                !e.contains("ServerNameMustContainOneHostName"),
                "this rustls refuses the SNI \"Qnetd Server\" that every real qdevice client \
                 sends; build with the patched rustls (Cargo.toml [patch.crates-io])"
            );
        }
        let out = result.unwrap_or_else(|e| panic!("{}: {}\nserver side: {:?}", versions, e, seen));
        assert!(out.contains("pong"), "{}: {}", versions, out);
        let names = seen.unwrap_or_else(|e| panic!("{}: server side: {}", versions, e));
        assert_eq!(names.common_names, vec!["snicluster".to_string()], "{}", versions);
    }
    // Control: the client's name check is live.
    let (port, server) = serve_once(&identity);
    let result = tstclnt(&db, port, Some("Wrong Name"), "tls1.2:tls1.3");
    let _ = server.join();
    let err = result.expect_err("a wrong expected server name must fail");
    assert!(err.contains("SSL_ERROR_BAD_CERT_DOMAIN"), "{}", err);
}

/// A fresh store and the first node of `cluster` enrolled against it; returns
/// the daemon identity and the node's NSS database.
fn enrolled_node_db(t: &TempDir, cluster: &str) -> (pki::Identity, PathBuf) {
    let store = t.path().join("qnetd/nssdb");
    let (identity, created) = pki::ensure_initialized(&store).unwrap();
    assert!(created);
    let node = enrol_first_node(
        &pki::ca_export_path(&store),
        cluster,
        &t.path().join("node1"),
        &mut |crq: &Path, name: &str| {
            pki::sign_request(&store, &std::fs::read(crq).unwrap(), name, true).map_err(|e| e.to_string())
        },
    )
    .unwrap_or_else(|e| panic!("{}", e));
    (identity, node_db(&node.etc))
}

/// Run `tstclnt` against 127.0.0.1:`port` presenting "Cluster Cert". With
/// `server_name`, NSS sends it as SNI and checks the server certificate against
/// it (as qdevice does); without, no SNI is sent and the server certificate check
/// is overridden (`-o`). Sends "ping", returns what the server answered.
fn tstclnt(db: &Path, port: u16, server_name: Option<&str>, versions: &str) -> Result<String, String> {
    let mut cmd = Command::new("tstclnt");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-d"]).arg(format!("sql:{}", db.display())).args([
        "-n",
        CLUSTER_NICKNAME,
        "-V",
        versions,
    ]);
    match server_name {
        Some(name) => cmd.args(["-a", name]),
        None => cmd.arg("-o"),
    };
    // stdin from a regular file, not a pipe: once the server has closed,
    // tstclnt waits for stdin to read as EOF, and an exhausted pipe only polls
    // as POLLHUP, on which it spins forever.
    let input = db.join(format!("ping-{}.txt", port));
    std::fs::write(&input, b"ping\n").map_err(|e| e.to_string())?;
    let stdin = std::fs::File::open(&input).map_err(|e| e.to_string())?;
    let out = cmd
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && !stderr.contains("failed") {
        Ok(stdout)
    } else {
        Err(format!("tstclnt {} ({}):\n{}\n{}", versions, out.status, stdout, stderr))
    }
}

/// A one-connection rustls server (what the daemon will configure): our server
/// certificate + CA as the chain, client certificates required and verified
/// against our CA. Returns the port and a handle yielding the peer's names.
fn serve_once(identity: &pki::Identity) -> (u16, std::thread::JoinHandle<Result<qnetd::session::CertNames, String>>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(identity.ca_cert_der.clone())).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![
                CertificateDer::from(identity.server_cert_der.clone()),
                CertificateDer::from(identity.ca_cert_der.clone()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.server_key_der.clone())),
        )
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || -> Result<qnetd::session::CertNames, String> {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(20))).ok();
        let conn = rustls::ServerConnection::new(Arc::new(config)).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut line = String::new();
        BufReader::new(&mut tls).read_line(&mut line).map_err(|e| format!("handshake/read: {}", e))?;
        if line.trim() != "ping" {
            return Err(format!("unexpected {:?}", line));
        }
        let peer = tls.conn.peer_certificates().and_then(|c| c.first()).ok_or("no client certificate")?.to_vec();
        tls.write_all(b"pong\n").map_err(|e| e.to_string())?;
        tls.conn.send_close_notify();
        let _ = tls.flush();
        pki::cert_names(&peer).map_err(|e| e.to_string())
    });
    (port, handle)
}

/// The migration recipe of the `pki` module docs, on a database made by the
/// real C `corosync-qnetd-certutil -i`: refused as it is, usable after the
/// export, and a node enrolled against the old CA still validates.
#[test]
fn c_qnetd_database_is_refused_then_migrated_by_the_documented_recipe() {
    skip_without_tools!();
    for tool in ["corosync-qnetd-certutil", "openssl"] {
        if which(tool).is_none() {
            eprintln!("SKIPPED: {} is not installed", tool);
            return;
        }
    }
    let t = TempDir::new("migrate");
    let etc = t.path().join("qnetd-host");
    in_corosync_ns(&etc, "mkdir -p /etc/corosync/qnetd && corosync-qnetd-certutil -i >/dev/null", &[])
        .unwrap_or_else(|e| panic!("{}", e));
    let old = etc.join("qnetd/nssdb");
    assert!(old.join("cert9.db").is_file());

    // As it is: a distinct, explanatory error, and nothing written.
    let before = std::fs::read_dir(&old).unwrap().count();
    match pki::ensure_initialized(&old) {
        Err(e @ pki::PkiError::ForeignNssDatabase { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("pk12util") && msg.contains("mv "), "{}", msg);
        }
        other => panic!("expected ForeignNssDatabase, got {:?}", other),
    }
    assert_eq!(std::fs::read_dir(&old).unwrap().count(), before);

    // The recipe, verbatim from the module docs (paths substituted).
    let recipe = r#"
OLD="$1"; NEW="$OLD.new"; cd "$2"; mkdir -m 0750 $NEW
pk12util -o ca.p12 -n "QNet CA" -d $OLD -W "" -k $OLD/pwdfile.txt
pk12util -o srv.p12 -n "QNetd Cert" -d $OLD -W "" -k $OLD/pwdfile.txt
openssl pkcs12 -in ca.p12 -passin pass: -nokeys -clcerts | openssl x509 -out $NEW/qnetd-ca.pem
openssl pkcs12 -in ca.p12 -passin pass: -nocerts -nodes | openssl pkcs8 -topk8 -nocrypt -out $NEW/qnetd-ca.key
openssl pkcs12 -in srv.p12 -passin pass: -nokeys -clcerts | openssl x509 -out $NEW/qnetd-server.pem
openssl pkcs12 -in srv.p12 -passin pass: -nocerts -nodes | openssl pkcs8 -topk8 -nocrypt -out $NEW/qnetd-server.key
cp $OLD/serial.txt $OLD/qnetd-cacert.crt $NEW/
echo '# qnetd certificate store' > $NEW/pkcs11.txt
chmod 0640 $NEW/*.key; mv $OLD $OLD.nss; mv $NEW $OLD
"#;
    run(Command::new("sh").args(["-ec", recipe, "sh"]).arg(&old).arg(t.path())).unwrap_or_else(|e| panic!("{}", e));

    let identity = pki::load(&old).unwrap_or_else(|e| panic!("{}", e));
    let (_, ca) = x509_parser::parse_x509_certificate(&identity.ca_cert_der).unwrap();
    assert_eq!(ca.subject().to_string(), "CN=QNet CA");
    // A node enrolled with the old export and our signature (RSA CA key) validates.
    let node = enrol_first_node(
        &pki::ca_export_path(&old),
        "oldcluster",
        &t.path().join("node1"),
        &mut sign_with_certutil(&old),
    )
    .unwrap_or_else(|e| panic!("{}", e));
    let v = nss_verify(&node_db(&node.etc), CLUSTER_NICKNAME, "C").unwrap_or_else(|e| panic!("{}", e));
    assert!(v.contains("certificate is valid"), "{}", v);
    // The C tool's serial sequence continues: CA 101, server 102, ours 103.
    let der = std::fs::read(&node.cluster_cert).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(c.raw_serial(), &[103]);
}
