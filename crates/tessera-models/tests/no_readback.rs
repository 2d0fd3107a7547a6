//! The model, tokenizer and sampler code must run in the browser, where reading a tensor back
//! synchronously panics (`into_data`, `into_scalar`, …) and `sort` / `argsort` read back
//! secretly. This scans their non-test source for those calls.

use std::path::{Path, PathBuf};

/// Every source file but the parity runner (native only, reads back on purpose).
fn browser_code(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            browser_code(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("parity.rs") {
            out.push(path);
        }
    }
}

const READBACKS: [&str; 10] = [
    "into_data",
    "to_data",
    "into_scalar",
    "try_into_vec",
    "try_to_vec",
    ".sort(",
    "sort_with_indices",
    "argsort",
    ".sync(",
    "mask_select(",
];

#[test]
fn browser_code_never_reads_a_tensor_back() {
    let mut files = Vec::new();
    browser_code(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() >= 8, "found only {files:?}");
    for path in files {
        let file = path.display();
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests sit at the bottom and may read back.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap();
            for call in READBACKS {
                assert!(
                    !line.contains(call),
                    "{file}:{}: `{call}` reads back: {line}",
                    n + 1
                );
            }
        }
    }
}
