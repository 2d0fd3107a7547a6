//! The equivariant generator against the official fixtures (`shared/fixtures/equivariant`, made
//! with drx-code/EquivariantModeling): the windowed causal transformer with RoPE and
//! cross-attention, and the flow-matching head with guidance and Euler sampling.

mod common;

use burn::prelude::*;
use serde_json::Value;
use tessera_models::parity::{CaseOutcome, run_case};

use common::{case_passes, fixtures};

#[test]
fn generator_matches_the_official_forward_encoder_with_class_and_null_conditions() {
    case_passes("equivariant", "generator");
}

#[test]
fn the_whole_sample_loop_through_the_bounded_cache_matches_the_official_full_reruns() {
    case_passes("equivariant", "sample");
}

#[test]
fn flow_head_matches_the_official_velocity_guidance_and_euler_sampler() {
    case_passes("equivariant", "flowhead");
}

/// Copies the `generator` case (config, io and weights) into a temporary folder, rewriting the
/// config with `edit`.
fn rewritten(case: &str, edit: impl Fn(&mut Value)) -> tempfile::TempDir {
    let src = fixtures().join("equivariant");
    let tmp = tempfile::tempdir().unwrap();
    for file in [format!("{case}.io.safetensors"), "generator.weights.safetensors".to_string()] {
        std::fs::copy(src.join(&file), tmp.path().join(&file)).unwrap();
    }
    let path = src.join(format!("{case}.config.json"));
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(tmp.path().join(format!("{case}.config.json")), config.to_string()).unwrap();
    tmp
}

fn outcome(tmp: &tempfile::TempDir, case: &str) -> CaseOutcome {
    run_case(&tmp.path().join(format!("{case}.config.json")), &Device::flex()).outcome
}

#[test]
fn constructor_arguments_nested_under_the_generator_entry_pass_too() {
    // The `sample` case's layout: `constructor.generator.EquivariantGenerativeModel`.
    for case in ["generator", "flowhead"] {
        let tmp = rewritten(case, |config| {
            let args = config["constructor"].clone();
            config["constructor"] = serde_json::json!({ "generator": args });
        });
        let report = run_case(&tmp.path().join(format!("{case}.config.json")), &Device::flex());
        println!("{report}");
        assert!(report.passed(), "{report}");
    }
}

#[test]
fn a_missing_argument_or_a_config_that_disagrees_with_the_weights_fails_with_a_reason() {
    let tmp = rewritten("generator", |config| {
        config["constructor"]["EquivariantGenerativeModel"].as_object_mut().unwrap().remove("cond_length");
    });
    match outcome(&tmp, "generator") {
        CaseOutcome::Failed(why) => assert!(why.contains("cond_length"), "{why}"),
        other => panic!("expected a failure naming cond_length, got {other:?}"),
    }

    // Three blocks: the weights hold two.
    let tmp = rewritten("generator", |config| {
        config["constructor"]["EquivariantGenerativeModel"]["decoder_depth"] = 2.into();
    });
    match outcome(&tmp, "generator") {
        CaseOutcome::Failed(why) => assert!(why.contains("encoder_blocks.2"), "{why}"),
        other => panic!("expected a failure naming encoder_blocks.2, got {other:?}"),
    }

    // Another condition buffer: the slot embedding does not fit.
    let tmp = rewritten("generator", |config| {
        config["constructor"]["EquivariantGenerativeModel"]["buffer_size"] = 6.into();
    });
    match outcome(&tmp, "generator") {
        CaseOutcome::Failed(why) => assert!(why.contains("encoder_pos_embed_learned"), "{why}"),
        other => panic!("expected a failure naming encoder_pos_embed_learned, got {other:?}"),
    }
}

#[test]
fn another_window_is_built_and_shows_in_the_outputs() {
    // cond_length 2: the same weights load, but the mask and the outputs differ from the fixture.
    let tmp = rewritten("generator", |config| {
        config["constructor"]["EquivariantGenerativeModel"]["cond_length"] = 2.into();
    });
    let CaseOutcome::Ran(outputs) = outcome(&tmp, "generator") else { panic!("the case should run") };
    let of = |name: &str| outputs.iter().find(|o| o.name == name).unwrap();
    assert!(!of("window_mask").passed && of("window_mask").mismatches == 16 - 3);
    assert!(of("class_embedding").passed && of("blocks_in").passed && of("freqs_cis").passed);
    assert!(!of("outputs").passed);
}

/// Every equivariant case (and RAR's) through the WGSL kernels on the wgpu device: the windowed
/// self-attention with the bounded cache and the cross-attention in the transformer, the
/// reflect-padded convolutions, GroupNorm + SiLU, pixel shuffle and attention in the column
/// tokenizer, against the official outputs.
#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn every_case_passes_through_the_wgsl_kernels_too() {
    use tessera_kernels::device::{Preference, create_blocking};
    let gpu = match create_blocking(Preference::Gpu) {
        Ok(c) => c.device,
        Err(e) => panic!("no wgpu adapter ({e}); install lavapipe (`apt-get install mesa-vulkan-drivers libvulkan1`, as scripts/setup.sh does)"),
    };
    assert!(tessera_kernels::kernels_enabled(&gpu), "the wgpu device must take the kernel path");
    for family in ["equivariant", "rar"] {
        let reports = tessera_models::parity::run_fixture_dir(&fixtures().join(family), &gpu).unwrap();
        assert!(reports.len() >= 3, "{family}: {} cases", reports.len());
        for report in reports {
            println!("{report}");
            assert!(report.passed(), "{report}");
        }
    }
}
