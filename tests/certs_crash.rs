//! Crash safety of the certificate store: a child process initialises the store,
//! signs requests and forces re-initialisations in a loop, and is SIGKILLed at
//! random moments. After every kill, every file in the store must be whole
//! (parse), and the store must either load as it is or be completed by
//! `ensure_initialized` — never corrupt, never a half-written file.
//!
//! The child is this test binary re-executed with `QNETD_CERTS_CRASH_CHILD` set
//! (the `crash_child` test does nothing without it). The random sequence is
//! printed and can be replayed with `QNETD_CRASH_SEED`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use qnetd::pki::{self, PkiError};
use x509_parser::prelude::{FromDer, X509Certificate};

const CHILD_ENV: &str = "QNETD_CERTS_CRASH_CHILD";
const CSR_ENV: &str = "QNETD_CERTS_CRASH_CSR";
const CHAINS: usize = 15;
const TRIALS_PER_CHAIN: usize = 8;

/// The child's work loop (only when re-executed by the parent test).
#[test]
fn crash_child() {
    let (Some(dir), Some(csr)) = (std::env::var_os(CHILD_ENV), std::env::var_os(CSR_ENV)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let csr = fs::read(csr).expect("request file");
    loop {
        pki::ensure_initialized(&dir).unwrap_or_else(|e| panic!("child: ensure_initialized: {}", e));
        for i in 0..3 {
            pki::sign_request(&dir, &csr, &format!("c{}", i), i % 2 == 0)
                .unwrap_or_else(|e| panic!("child: sign_request: {}", e));
        }
        // Make the next round a fresh initialisation (as `rm pkcs11.txt` would),
        // so that kills also land in the middle of init.
        fs::remove_file(dir.join(pki::MARKER_FILE)).expect("child: remove marker");
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[derive(Default, Debug)]
struct Seen {
    missing_dir: usize,
    loaded_as_is: usize,
    completed_by_ensure: usize,
    leftover_temp_files: usize,
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_broken_store() {
    let seed = std::env::var("QNETD_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1
    });
    println!("QNETD_CRASH_SEED={}", seed);
    let mut rng = Rng(seed);

    let base = std::env::temp_dir().join(format!("qnetd-crash-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).unwrap();
    let csr_path = base.join("req.der");
    fs::write(&csr_path, request_der()).unwrap();
    let exe = std::env::current_exe().unwrap();

    let mut seen = Seen::default();
    for chain in 0..CHAINS {
        let dir = base.join(format!("chain{}/nssdb", chain));
        for trial in 0..TRIALS_PER_CHAIN {
            let log = base.join(format!("child-{}-{}.log", chain, trial));
            let mut child = Command::new(&exe)
                .args(["--exact", "crash_child", "--nocapture", "--test-threads=1", "-q"])
                .env(CHILD_ENV, &dir)
                .env(CSR_ENV, &csr_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            // 0..80 ms: covers start-up, directory creation, init and signing.
            std::thread::sleep(Duration::from_micros(rng.next() % 80_000));
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "chain {} trial {}: child exited by itself ({}):\n{}",
                    chain,
                    trial,
                    status,
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            check_store(&dir, &mut seen).unwrap_or_else(|e| panic!("chain {} trial {}: {}", chain, trial, e));
        }
    }
    println!("{} trials: {:?}", CHAINS * TRIALS_PER_CHAIN, seen);
    let _ = fs::remove_dir_all(&base);
}

/// Every file whole; the store loads, or `ensure_initialized` completes it.
fn check_store(dir: &Path, seen: &mut Seen) -> Result<(), String> {
    if !dir.exists() {
        seen.missing_dir += 1;
        return Ok(());
    }
    let recorded_serial = check_files(dir, seen)?;

    match pki::load(dir) {
        Ok(id) => {
            seen.loaded_as_is += 1;
            pki::cert_expiry(dir).map_err(|e| format!("cert_expiry after load: {}", e))?;
            let (again, created) =
                pki::ensure_initialized(dir).map_err(|e| format!("ensure_initialized on a loadable store: {}", e))?;
            if created || again != id {
                return Err("ensure_initialized replaced a complete store".into());
            }
        }
        Err(PkiError::NotInitialized { .. }) => {
            seen.completed_by_ensure += 1;
            let (id, created) =
                pki::ensure_initialized(dir).map_err(|e| format!("ensure_initialized after a crash: {}", e))?;
            if !created {
                return Err("an incomplete store was reported as existing".into());
            }
            let loaded = pki::load(dir).map_err(|e| format!("load after recovery: {}", e))?;
            if loaded != id {
                return Err("load returns another identity than ensure_initialized".into());
            }
            // Serials never go backwards across a recovery.
            if let Some(before) = recorded_serial {
                let ca = serial_of(&id.ca_cert_der)?;
                if ca <= before {
                    return Err(format!("new CA serial {} reuses one up to {}", ca, before));
                }
            }
        }
        Err(e) => return Err(format!("load: {}", e)),
    }
    // After ensure_initialized nothing temporary is left, and all is whole.
    check_files(dir, seen)?;
    if let Some(t) = temp_files(dir).first() {
        return Err(format!("temporary file left after ensure_initialized: {}", t));
    }
    Ok(())
}

fn temp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| pki::is_temp_name(n))
                .collect()
        })
        .unwrap_or_default()
}

/// Parse every non-temporary file; returns the serial recorded in serial.txt.
fn check_files(dir: &Path, seen: &mut Seen) -> Result<Option<u64>, String> {
    let mut recorded = None;
    let mut cert_serials = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let data = fs::read(&path).map_err(|e| format!("{}: {}", name, e))?;
        let bad = |why: &str| format!("{} is not whole: {} ({} bytes)", name, why, data.len());
        if pki::is_temp_name(&name) {
            seen.leftover_temp_files += 1;
            continue;
        }
        match name.as_str() {
            pki::CA_KEY_FILE | pki::SERVER_KEY_FILE => {
                let der = pem_block(&data, "PRIVATE KEY").ok_or_else(|| bad("no key PEM block"))?;
                rcgen::KeyPair::try_from(der.as_slice()).map_err(|e| bad(&e.to_string()))?;
            }
            pki::CA_CERT_FILE | pki::SERVER_CERT_FILE | pki::CA_EXPORT_FILE => {
                let der = pem_block(&data, "CERTIFICATE").ok_or_else(|| bad("no certificate PEM block"))?;
                cert_serials.push(serial_of(&der).map_err(|e| bad(&e))?);
            }
            pki::SERIAL_FILE => {
                let text = String::from_utf8(data.clone()).map_err(|_| bad("not text"))?;
                if !text.ends_with('\n') {
                    return Err(bad("no final newline"));
                }
                recorded = Some(text.trim().parse::<u64>().map_err(|_| bad("not a number"))?);
            }
            pki::MARKER_FILE => {
                if !data.starts_with(pki::MARKER_MAGIC.as_bytes()) || !data.ends_with(b"\n") {
                    return Err(bad("marker content"));
                }
            }
            n if n.starts_with("cluster-") && n.ends_with(".crt") => {
                cert_serials.push(serial_of(&data).map_err(|e| bad(&e))?);
            }
            _ => return Err(format!("unexpected file {}", name)),
        }
    }
    if let (Some(r), Some(max)) = (recorded, cert_serials.iter().max()) {
        if *max > r {
            return Err(format!("certificate serial {} above serial.txt {}", max, r));
        }
    }
    Ok(recorded)
}

fn pem_block(data: &[u8], label: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    match label {
        "PRIVATE KEY" => {
            rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(data).ok().map(|k| k.secret_pkcs8_der().to_vec())
        }
        _ => rustls::pki_types::CertificateDer::from_pem_slice(data).ok().map(|c| c.to_vec()),
    }
}

fn serial_of(der: &[u8]) -> Result<u64, String> {
    match X509Certificate::from_der(der) {
        Ok(([], c)) => Ok(c.raw_serial().iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))),
        Ok(_) => Err("trailing bytes".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn request_der() -> Vec<u8> {
    let kp = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "crashcluster");
    params.serialize_request(&kp).unwrap().der().to_vec()
}
