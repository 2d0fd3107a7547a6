//! VAR against the official fixtures (`shared/fixtures/var`, made with FoundationVision/VAR).

mod common;

use burn::prelude::*;
use serde_json::Value;
use tessera_models::parity::{CaseOutcome, run_case, run_fixture_dir};

use common::{case_passes, fixtures};

fn var_case_passes(case: &str) {
    case_passes("var", case);
}

#[test]
fn resize_matches_pytorch_interpolate() {
    var_case_passes("resize");
}

#[test]
fn tokenizer_matches_the_official_vqvae_including_exact_indices() {
    var_case_passes("tokenizer");
}

#[test]
fn generator_matches_the_official_teacher_forced_forward() {
    var_case_passes("generator");
}

#[test]
fn greedy_sampling_matches_the_official_sampler_with_and_without_guidance() {
    var_case_passes("sampling");
}

#[test]
fn a_family_the_runner_does_not_know_is_skipped_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("x.config.json"), r#"{"family": "MaskGIT", "case": "x"}"#).unwrap();
    let reports = run_fixture_dir(tmp.path(), &Device::flex()).unwrap();
    assert_eq!(reports.len(), 1);
    match &reports[0].outcome {
        CaseOutcome::Unsupported(why) => assert!(why.contains("MaskGIT"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(!reports[0].failed());
}

#[test]
fn a_config_that_disagrees_with_its_weights_fails_naming_the_tensor() {
    let dir = fixtures();
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

/// The fixtures as a config that names the official classes instead of `build_vae_var` would give
/// them: `VQVAE` and `VAR` with the arguments the builder passed (as recorded beside it), less
/// those equal to the class defaults, which the runner must then supply.
fn direct_layout(config: &mut Value) {
    let Some(derived) = config["constructor"]
        .get("derived_by_build_vae_var")
        .cloned()
    else {
        return; // `resize` constructs nothing
    };
    let mut var = derived["VAR"].clone();
    let var_args = var.as_object_mut().unwrap();
    for default in ["mlp_ratio", "norm_eps", "cond_drop_rate"] {
        assert!(var_args.remove(default).is_some(), "{default} not recorded");
    }
    config["constructor"] = serde_json::json!({ "VQVAE": derived["VQVAE"], "VAR": var });
}

#[test]
fn configs_that_construct_vqvae_and_var_directly_pass_every_case() {
    let src = fixtures().join("var");
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let dest = tmp.path().join(path.file_name().unwrap());
        if path.to_string_lossy().ends_with(".config.json") {
            let mut config: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            direct_layout(&mut config);
            std::fs::write(dest, config.to_string()).unwrap();
        } else {
            std::fs::copy(&path, dest).unwrap();
        }
    }
    let reports = run_fixture_dir(tmp.path(), &Device::flex()).unwrap();
    let cases: Vec<&str> = reports.iter().map(|r| r.case.as_str()).collect();
    assert_eq!(cases, ["generator", "resize", "sampling", "tokenizer"]);
    for report in &reports {
        println!("{report}");
        assert!(report.passed(), "{report}");
    }

    // Without its VQVAE, VAR lacks the one argument that has no default.
    let path = tmp.path().join("generator.config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["constructor"]
        .as_object_mut()
        .unwrap()
        .remove("VQVAE");
    std::fs::write(&path, config.to_string()).unwrap();
    match run_case(&path, &Device::flex()).outcome {
        CaseOutcome::Failed(why) => assert!(why.contains("vae_local"), "{why}"),
        other => panic!("expected a failure naming vae_local, got {other:?}"),
    }
}
