//! RAR against the official fixtures (`shared/fixtures/rar`, made with bytedance/1d-tokenizer):
//! the MaskGIT-VQGAN tokenizer, the teacher-forced transformer in raster and random orders, and
//! greedy generation with the KV cache and guidance schedules.

mod common;

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;
use tessera_models::parity::{CaseOutcome, run_case, run_fixture_dir};

use common::{case_passes, fixtures};

#[test]
fn tokenizer_matches_the_official_maskgit_vqgan_including_exact_codes() {
    case_passes("rar", "tokenizer");
}

#[test]
fn generator_matches_the_official_forward_in_raster_and_random_orders() {
    case_passes("rar", "generator");
}

#[test]
fn greedy_generation_with_the_kv_cache_matches_the_official_loop() {
    case_passes("rar", "generation");
}

/// Copies the RAR fixtures into a temporary folder, rewriting each config with `edit`.
fn rewritten(edit: impl Fn(&str, &mut Value)) -> tempfile::TempDir {
    let src = fixtures().join("rar");
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let dest = tmp.path().join(&name);
        if let Some(case) = name.strip_suffix(".config.json") {
            let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            edit(case, &mut config);
            std::fs::write(dest, config.to_string()).unwrap();
        } else {
            std::fs::copy(&path, dest).unwrap();
        }
    }
    tmp
}

#[test]
fn a_config_given_as_the_bare_omegaconf_object_passes_too() {
    // `{"model": {...}}` at the top of the constructor section instead of under `RAR(config)`.
    let tmp = rewritten(|case, config| {
        if case == "generator" {
            let model = config["constructor"]["RAR(config)"]["model"].clone();
            config["constructor"] = serde_json::json!({ "model": model });
        }
    });
    for report in run_fixture_dir(tmp.path(), &Device::flex()).unwrap() {
        println!("{report}");
        assert!(report.passed(), "{report}");
    }
}

#[test]
fn a_missing_argument_or_a_misshapen_input_fails_its_case_with_a_reason() {
    let tmp = rewritten(|case, config| {
        if case == "generator" {
            let generator = config["constructor"]["RAR(config)"]["model"]["generator"].as_object_mut().unwrap();
            generator.remove("intermediate_size");
        }
    });
    match run_case(&tmp.path().join("generator.config.json"), &Device::flex()).outcome {
        CaseOutcome::Failed(why) => assert!(why.contains("intermediate_size"), "{why}"),
        other => panic!("expected a failure naming intermediate_size, got {other:?}"),
    }

    // Inputs for another sequence length: a clear failure, not a panic.
    let tmp = rewritten(|case, config| {
        if case == "generator" {
            config["constructor"]["RAR(config)"]["model"]["generator"]["image_seq_len"] = 25.into();
        }
    });
    match run_case(&tmp.path().join("generator.config.json"), &Device::flex()).outcome {
        CaseOutcome::Failed(why) => assert!(why.contains("input_ids") || why.contains("pos_embed"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn generation_without_its_generator_case_says_where_the_constructor_is_missing() {
    let tmp = rewritten(|_, _| {});
    std::fs::remove_file(tmp.path().join("generator.config.json")).unwrap();
    match run_case(&Path::new(tmp.path()).join("generation.config.json"), &Device::flex()).outcome {
        CaseOutcome::Failed(why) => assert!(why.contains("no constructor"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}
