//! The protocol core must stay sans-IO: no sockets, no async runtime, no clock
//! reads, no threads, no file system — and no `unwrap()`/`expect()`/`panic!` on
//! the data it is fed. This reads the core's source (test modules excluded) and
//! fails if any of that creeps in.

use std::path::Path;

const CORE: &[&str] = &["src/wire.rs", "src/session.rs", "src/cluster.rs", "src/algo"];
const FORBIDDEN: &[&str] = &[
    "std::net",
    "smol",
    "async_io",
    "futures_lite",
    "Instant::now",
    "SystemTime",
    "std::thread",
    "std::fs",
    "std::io",
    "rustls",
    ".unwrap()",
    ".expect(",
    "panic!(",
];

fn core_files() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for entry in CORE {
        let p = root.join(entry);
        if p.is_dir() {
            for f in std::fs::read_dir(&p).expect("core dir readable") {
                let f = f.expect("dir entry").path();
                // testutil.rs is compiled only under #[cfg(test)].
                if f.extension().is_some_and(|e| e == "rs") && !f.ends_with("testutil.rs") {
                    files.push(f);
                }
            }
        } else {
            files.push(p);
        }
    }
    files
}

/// The non-test part of a source file: everything before its `#[cfg(test)]` module.
fn non_test(src: &str) -> &str {
    match src.find("#[cfg(test)]") {
        Some(i) => &src[..i],
        None => src,
    }
}

#[test]
fn protocol_core_has_no_io_clock_or_panicking_unwraps() {
    let files = core_files();
    assert!(files.len() >= 7, "expected the core files, found {files:?}");
    let mut found = Vec::new();
    for f in &files {
        let src = std::fs::read_to_string(f).expect("core source readable");
        for (n, line) in non_test(&src).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for pat in FORBIDDEN {
                if code.contains(pat) {
                    found.push(format!("{}:{}: {pat}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "the sans-IO core must not contain these:\n{}", found.join("\n"));
}
