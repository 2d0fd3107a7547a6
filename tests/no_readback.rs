//! Everything the web build compiles runs in the browser, where reading a tensor back
//! synchronously panics (`into_data()`, `into_scalar`, ...) and `sort` / `argsort` /
//! `mask_select` / `one_hot` read back secretly. This scans the non-test source of all of it (the
//! app and its web entry, and the kernels, models, training and evaluation crates) for those
//! calls; the async forms (`into_data_async`) are the allowed ones. Native-only files are left
//! out: the CLI (`src/cli/`, `src/main.rs`) and the fixture runner (`parity/`).

use std::path::{Path, PathBuf};

const READBACKS: [&str; 11] = [
    "into_data()",
    "to_data()",
    "into_scalar",
    "try_into_vec",
    "try_to_vec",
    ".sort(",
    "sort_with_indices",
    "argsort",
    ".sync(",
    "mask_select(",
    "one_hot",
];

/// Every `.rs` file under `dir`, minus the native-only ones.
fn web_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "cli" && name != "parity" {
                web_sources(&path, out);
            }
        } else if name.ends_with(".rs") && name != "main.rs" {
            out.push(path);
        }
    }
}

#[test]
fn web_code_never_reads_a_tensor_back_synchronously() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "crates/tessera-kernels/src", "crates/tessera-models/src", "crates/tessera-train/src", "crates/tessera-eval/src"] {
        let before = files.len();
        web_sources(&root.join(dir), &mut files);
        assert!(files.len() > before, "nothing to scan in {dir}");
    }
    assert!(files.iter().any(|f| f.ends_with("app/generation.rs")), "the app's generation code is scanned");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests sit at the bottom and may read back.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap();
            for call in READBACKS {
                assert!(!line.contains(call), "{}:{}: `{call}` reads back: {line}", path.display(), n + 1);
            }
        }
    }
}
