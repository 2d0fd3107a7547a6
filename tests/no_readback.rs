//! The app runs in the browser, where reading a tensor back synchronously panics (`into_data`,
//! `into_scalar`, ...) and `sort` / `argsort` read back secretly. This scans the non-test source
//! of everything the web build compiles (the app, model loading, the web entry; not `cli/`) for
//! those calls; `into_data_async` is the allowed form.

use std::path::{Path, PathBuf};

const READBACKS: [&str; 9] = [
    "into_data()",
    "to_data()",
    "into_scalar",
    "try_into_vec",
    "try_to_vec",
    ".sort(",
    "sort_with_indices",
    "argsort",
    ".sync(",
];

#[test]
fn web_code_never_reads_a_tensor_back_synchronously() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<PathBuf> = ["lib.rs", "web.rs", "gpu_setup.rs", "var_models.rs"].iter().map(|f| src.join(f)).collect();
    files.extend(std::fs::read_dir(src.join("app")).unwrap().map(|e| e.unwrap().path()));
    assert!(files.len() >= 12, "scanned {} files", files.len());
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
