//! The training code must run in the browser, where reading a tensor back synchronously panics
//! (`into_data`, `into_scalar`, ...) and `sort` / `argsort` read back secretly. This scans the
//! non-test source for those calls (the async forms, `into_data_async`, are the allowed ones).

use std::path::Path;

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

#[test]
fn training_code_never_reads_a_tensor_back_synchronously() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        files += 1;
        // Unit tests sit at the bottom and may read back.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap();
            for call in READBACKS {
                assert!(!line.contains(call), "{}:{}: `{call}` reads back: {line}", path.display(), n + 1);
            }
        }
    }
    assert!(files >= 8, "scanned {files} files");
}
