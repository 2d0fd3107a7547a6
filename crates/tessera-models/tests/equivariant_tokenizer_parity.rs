//! The equivariant column tokenizer against the official fixture (`shared/fixtures/equivariant`,
//! made with drx-code/EquivariantModeling): encode (posterior mode), decode with the semantic
//! decoder, a wider image giving more tokens; and the same case from rewritten configs.

mod common;

use burn::prelude::*;
use serde_json::{Value, json};
use tessera_models::parity::{CaseOutcome, CaseReport, run_case};

use common::{case_passes, fixtures};

#[test]
fn tokenizer_matches_the_official_column_tokenizer_also_on_a_wider_image() {
    case_passes("equivariant", "tokenizer");
}

/// The tokenizer case in a temporary folder, its config rewritten with `edit`, run on the CPU.
fn run_rewritten(edit: impl Fn(&mut Value)) -> CaseReport {
    let src = fixtures().join("equivariant");
    let tmp = tempfile::tempdir().unwrap();
    for name in ["tokenizer.io.safetensors", "tokenizer.weights.safetensors"] {
        std::fs::copy(src.join(name), tmp.path().join(name)).unwrap();
    }
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer.config.json")).unwrap()).unwrap();
    edit(&mut config);
    let path = tmp.path().join("tokenizer.config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let report = run_case(&path, &Device::flex());
    println!("{report}");
    report
}

#[test]
fn the_official_yaml_layout_target_and_params_passes_too() {
    let report = run_rewritten(|config| {
        let args = config["constructor"]["EquivariantTokenizer"].clone();
        config["constructor"] = json!({
            "model": { "target": "tokenizer.models.tokenizer.EquivariantTokenizer", "params": args }
        });
    });
    assert!(report.passed(), "{report}");
}

#[test]
fn without_the_semantic_branch_everything_else_still_matches() {
    let report = run_rewritten(|config| {
        config["constructor"]["EquivariantTokenizer"].as_object_mut().unwrap().remove("sematicconfig");
        config["io_tensors"].as_object_mut().unwrap().remove("semantic_dec");
    });
    assert!(report.passed(), "{report}");
    let CaseOutcome::Ran(outputs) = &report.outcome else { unreachable!() };
    assert_eq!(outputs.len(), 7);
}

#[test]
fn a_missing_required_key_fails_the_case_naming_it() {
    let report = run_rewritten(|config| {
        config["constructor"]["EquivariantTokenizer"]["ddconfig"].as_object_mut().unwrap().remove("z_channels");
    });
    match report.outcome {
        CaseOutcome::Failed(why) => assert!(why.contains("ddconfig") && why.contains("z_channels"), "{why}"),
        other => panic!("expected a failure naming z_channels, got {other:?}"),
    }

    // Weights for another layout: a failure naming the tensor, not a panic.
    let report = run_rewritten(|config| {
        config["constructor"]["EquivariantTokenizer"]["ddconfig"]["ch_mult"] = json!([1, 1, 1]);
    });
    match report.outcome {
        CaseOutcome::Failed(why) => assert!(why.contains("encoder.down.1.block.0"), "{why}"),
        other => panic!("expected a weight-shape failure, got {other:?}"),
    }
}
