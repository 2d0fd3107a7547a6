//! VAR against the official fixtures (`shared/fixtures/var`, made with FoundationVision/VAR).
//!
//! Fixtures are read from `../shared/fixtures` next to the workspace, or from `$TESSERA_FIXTURES`;
//! without them each test says so and returns. Everything runs on the CPU (`Device::flex()`).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use tessera_models::parity::{CaseOutcome, run_case, run_fixture_dir};

fn fixtures() -> Option<PathBuf> {
    let dir = match std::env::var_os("TESSERA_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    };
    if dir.join("var").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: no fixtures at {} (set TESSERA_FIXTURES)",
            dir.display()
        );
        None
    }
}

fn case_passes(case: &str) {
    let Some(dir) = fixtures() else { return };
    let report = run_case(
        &dir.join("var").join(format!("{case}.config.json")),
        &Device::flex(),
    );
    println!("{report}");
    assert!(report.passed(), "{report}");
}

#[test]
fn resize_matches_pytorch_interpolate() {
    case_passes("resize");
}

#[test]
fn tokenizer_matches_the_official_vqvae_including_exact_indices() {
    case_passes("tokenizer");
}

#[test]
fn generator_matches_the_official_teacher_forced_forward() {
    case_passes("generator");
}

#[test]
fn greedy_sampling_matches_the_official_sampler_with_and_without_guidance() {
    case_passes("sampling");
}

#[test]
fn other_families_are_reported_as_not_supported_yet() {
    let Some(dir) = fixtures() else { return };
    for family in ["rar", "equivariant"] {
        if !dir.join(family).is_dir() {
            continue;
        }
        for report in run_fixture_dir(&dir.join(family), &Device::flex()).unwrap() {
            assert!(
                matches!(report.outcome, CaseOutcome::Unsupported(_)),
                "{report}"
            );
        }
    }
}

#[test]
fn a_config_that_disagrees_with_its_weights_fails_naming_the_tensor() {
    let Some(dir) = fixtures() else { return };
    let src = dir.join("var");
    let tmp = std::env::temp_dir().join(format!("tessera-parity-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for file in ["generator.io.safetensors", "generator.weights.safetensors"] {
        std::fs::copy(src.join(file), tmp.join(file)).unwrap();
    }
    // Another VAR (a larger vocabulary): the shipped weights cannot fit its head.
    let text = std::fs::read_to_string(src.join("generator.config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["constructor"]["build_vae_var"]["V"] = 96.into();
    std::fs::write(tmp.join("generator.config.json"), config.to_string()).unwrap();
    let report = run_case(&tmp.join("generator.config.json"), &Device::flex());
    std::fs::remove_dir_all(&tmp).ok();
    match report.outcome {
        CaseOutcome::Failed(why) => assert!(why.contains("head.weight"), "{why}"),
        _ => panic!("expected a failure: {report}"),
    }
}
