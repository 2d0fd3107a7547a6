//! The `tessera` binary as a user runs it: headless commands, and the bare command without a display.

use std::process::Command;

fn tessera() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.env_remove("TESSERA_DEVICE");
    cmd
}

fn gpu_required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("TESSERA_REQUIRE_GPU").is_some()
}

#[test]
fn bare_command_without_a_display_explains_and_points_to_headless_commands() {
    let out = tessera().env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no display"), "{stderr}");
    assert!(stderr.contains("tessera info") && stderr.contains("build-web.sh"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn info_names_the_adapter_and_says_when_it_is_software() {
    let out = tessera().args(["info", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    if json["gpu"] == false {
        assert!(!gpu_required(), "CI has lavapipe, but info fell back to the CPU: {json}");
        assert!(json["notice"].as_str().unwrap().contains("CPU"), "{json}");
        return;
    }
    let adapter = &json["adapter"];
    assert!(!adapter["name"].as_str().unwrap().is_empty(), "{json}");
    for key in ["backend", "device_type", "max_storage_buffer_binding_size", "max_compute_workgroup_storage_size",
        "max_compute_invocations_per_workgroup", "shader_f16", "subgroups"] {
        assert!(!adapter[key].is_null(), "missing {key} in {json}");
    }
    if gpu_required() && std::env::var_os("TESSERA_EXPECT_HARDWARE_GPU").is_none() {
        assert_eq!(adapter["is_software"], true, "{json}");
        let text = tessera().arg("info").output().unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("software adapter"), "{text}");
        assert!(text.contains("llvmpipe") || text.contains("lavapipe"), "{text}");
    }
}

#[test]
fn info_on_the_cpu_says_so() {
    let out = tessera().args(["--device", "cpu", "info"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("CPU (burn flex backend)"));
    let bad = tessera().args(["--device", "tpu", "info"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("auto, gpu or cpu"));
}

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

#[test]
fn data_preview_writes_a_grid_for_each_source() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist.png");
    let out = tessera().args(["data", "preview", "--dataset", "mnist", "--per-class", "4", "--out"]).arg(&mnist).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("9000 images in 10 classes"), "{stdout}");
    let (w4, h) = png_size(&mnist);
    let out = tessera().args(["data", "preview", "--dataset", "mnist", "--per-class", "8", "--out"]).arg(&mnist).output().unwrap();
    assert!(out.status.success());
    let (w8, h8) = png_size(&mnist);
    assert!(w8 > w4 && h8 == h, "more images per class widen the grid: {w4}x{h} -> {w8}x{h8}");

    let scenes = dir.path().join("scenes.png");
    let out = tessera().args(["data", "preview", "--dataset", "scenes", "--width", "96", "--out"]).arg(&scenes).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3x32x96"));

    // A user's folder with two classes and one file that is not an image.
    let root = dir.path().join("pictures");
    for (class, colour) in [("cats", [200u8, 120, 40]), ("dogs", [40, 90, 200])] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..3u8 {
            let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([colour[0], colour[1].wrapping_add((x + y) as u8 * i), colour[2]]));
            img.save(root.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(root.join("cats").join("notes.png"), b"this is not a picture").unwrap();
    let grid = dir.path().join("folder.png");
    let out = tessera().args(["data", "preview", "--dataset"]).arg(&root).arg("--out").arg(&grid).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("notes.png") && stderr.contains("not an image"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 images in 2 classes (cats, dogs)"));
    assert!(png_size(&grid).0 > 0);

    // The same folder as a .zip (as zipped by most tools: the folder at the top).
    let archive = dir.path().join("pictures.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
    for class in ["cats", "dogs"] {
        for entry in std::fs::read_dir(root.join(class)).unwrap() {
            let entry = entry.unwrap();
            zip.start_file(format!("pictures/{class}/{}", entry.file_name().to_string_lossy()), zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut zip, &std::fs::read(entry.path()).unwrap()).unwrap();
        }
    }
    zip.finish().unwrap();
    let out = tessera().args(["data", "preview", "--dataset"]).arg(&archive).arg("--out").arg(&grid).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pictures: 6 images in 2 classes (cats, dogs)"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.png"));

    // One class only: a clear error, not a crash.
    std::fs::remove_dir_all(root.join("dogs")).unwrap();
    let out = tessera().args(["data", "preview", "--dataset"]).arg(&root).arg("--out").arg(&grid).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("class") && !stderr.contains("panicked"), "{stderr}");
}

/// The fixtures made by the official implementations live beside the checkout, never in it. They
/// are always there in CI, so a missing folder fails the test instead of letting it pass unchecked.
fn fixtures_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("TESSERA_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    assert!(dir.join("var").is_dir(), "no fixtures at {}: set TESSERA_FIXTURES to the shared fixtures folder", dir.display());
    dir
}

#[test]
fn parity_passes_on_the_official_var_fixtures_and_fails_on_a_tampered_copy() {
    let fixtures = fixtures_dir();
    let out = tessera().args(["--device", "cpu", "parity"]).arg(fixtures.join("var")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for case in ["var/generator", "var/resize", "var/sampling", "var/tokenizer"] {
        assert!(stdout.lines().any(|l| l.starts_with(case) && l.contains("PASS")), "{case} did not pass:\n{stdout}");
    }
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");

    // The same generator case with one logit changed must fail, and the exit code must say so.
    let dir = tempfile::tempdir().unwrap();
    for name in ["generator.config.json", "generator.weights.safetensors"] {
        std::fs::copy(fixtures.join("var").join(name), dir.path().join(name)).unwrap();
    }
    let io = std::fs::read(fixtures.join("var/generator.io.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&io).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.dtype(), view.shape().to_vec(), view.data().to_vec()))
        .collect();
    let logits = tensors.iter_mut().find(|t| t.0 == "logits").unwrap();
    let v = f32::from_le_bytes(logits.3[0..4].try_into().unwrap()) + 0.5;
    logits.3[0..4].copy_from_slice(&v.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.path().join("generator.io.safetensors")).unwrap();
    let out = tessera().args(["--device", "cpu", "parity"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a tampered fixture passed:\n{stdout}");
    assert!(stdout.contains("FAIL") && stdout.contains("logits"), "{stdout}");
}

#[test]
fn train_sample_and_edit_a_tiny_var_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let cpu = ["--device", "cpu"];
    let ok = |args: &[&str]| {
        let out = tessera().args(cpu).args(args).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
        stdout
    };
    let run_s = run.to_str().unwrap();
    // A zero save interval is refused with a clear message before anything trains.
    for flag in ["--save-every", "--save-every-minutes"] {
        let out = tessera().args(cpu).args(["train", "var-tokenizer", "--dataset", "mnist", flag, "0", "--out", run_s]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(flag) && stderr.contains("must be") && !stderr.contains("panicked"), "{stderr}");
    }
    ok(&["train", "var-tokenizer", "--dataset", "mnist", "--steps", "6", "--batch", "8", "--sample-every", "0", "--out", run_s]);
    // The resumable checkpoint records the last loss and the training time (eval reports it).
    let saved = tessera_train::Checkpoint::load(&run.join("tokenizer.ckpt")).unwrap();
    assert_eq!(saved.header.step, 6);
    assert!(saved.header.metrics["loss"] > 0.0 && saved.header.metrics["train_seconds"] > 0.0, "{:?}", saved.header.metrics);
    let tok = run.join("tokenizer.weights.ckpt");
    ok(&["train", "var", "--dataset", "mnist", "--tokenizer", tok.to_str().unwrap(), "--steps", "6", "--batch", "8", "--sample-every", "0", "--out", run_s]);
    let var = run.join("var.weights.ckpt");
    let models = ["--checkpoint", var.to_str().unwrap(), "--tokenizer", tok.to_str().unwrap()];

    let samples = dir.path().join("samples");
    ok(&[&["sample", "var", "--class", "7", "--n", "2", "--steps", "--out", samples.to_str().unwrap()][..], &models[..]].concat());
    assert_eq!(png_size(&samples.join("7/0.png")), (32, 32));
    assert!(samples.join("7/1_scale0_1x1.png").exists());

    let edits = dir.path().join("edits");
    let stdout = ok(&[&["edit", "var", "--input", "heldout:5", "--mode", "inpaint", "--box", "8,8,24,24", "--n", "2",
        "--out", edits.to_str().unwrap()][..], &models[..]].concat());
    assert!(stdout.contains("2 edit(s)"), "{stdout}");
    for f in ["source.png", "edit_0.png", "edit_1.png"] {
        assert_eq!(png_size(&edits.join(f)), (32, 32), "{f}");
    }
    let mask = image::open(edits.join("mask.png")).unwrap().to_luma8();
    assert_eq!(mask.get_pixel(16, 16).0[0], 0, "the box is regenerated");
    assert_eq!(mask.get_pixel(2, 2).0[0], 255, "outside the box is kept");
    // Out-painting keeps the box and redraws around it; class editing redraws the box as another digit.
    for (mode, extra) in [("outpaint", vec![]), ("class", vec!["--class", "3"])] {
        let dir = dir.path().join(mode);
        let stdout = ok(&[&["edit", "var", "--input", "heldout:5", "--mode", mode, "--box", "8,8,24,24", "--n", "1",
            "--out", dir.to_str().unwrap()][..], &extra[..], &models[..]].concat());
        assert!(stdout.contains("1 edit(s)"), "{mode}: {stdout}");
        assert_eq!(png_size(&dir.join("edit_0.png")), (32, 32), "{mode}");
        let mask = image::open(dir.join("mask.png")).unwrap().to_luma8();
        let inside_kept = mask.get_pixel(16, 16).0[0] == 255;
        assert_eq!(inside_kept, mode == "outpaint", "{mode}: which side of the box is kept");
    }

    // Bad input: clear errors, no panics.
    for (args, expect) in [
        (vec!["sample", "var", "--class", "10"], "out of range"),
        (vec!["edit", "var", "--input", "heldout:5", "--mode", "class", "--box", "8,8,24,24"], "--mode class needs --class"),
        (vec!["edit", "var", "--input", "heldout:5", "--box", "8,8,40,24"], "model's resolution"),
    ] {
        let out = tessera().args(cpu).args(&args).args(models).args(["--out", dir.path().join("x").to_str().unwrap()]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expect) && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let garbage = dir.path().join("garbage.ckpt");
    std::fs::write(&garbage, b"not a checkpoint at all").unwrap();
    let out = tessera().args(cpu).args(["sample", "var", "--class", "1", "--checkpoint"]).arg(&garbage)
        .args(["--tokenizer", tok.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("garbage.ckpt") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn train_and_sample_a_tiny_rar_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    run_ok(&["train", "rar-tokenizer", "--dataset", "mnist", "--steps", "4", "--batch", "8", "--sample-every", "0", "--out", run_s]);
    let tok = run.join("tokenizer.weights.ckpt");
    let stdout = run_ok(&["train", "rar", "--dataset", "mnist", "--tokenizer", tok.to_str().unwrap(), "--steps", "4", "--batch", "8",
        "--random-ratio", "1", "--sample-every", "0", "--out", run_s]);
    assert!(stdout.contains("r = 1 throughout"), "{stdout}");
    let saved = tessera_train::Checkpoint::load(&run.join("rar.ckpt")).unwrap();
    assert_eq!((saved.header.kind, saved.header.step), (tessera_train::ModelKind::Rar, 4));
    assert_eq!(saved.header.metrics["random_ratio"], 1.0, "{:?}", saved.header.metrics);
    let rar = run.join("rar.weights.ckpt");
    let models = ["--checkpoint", rar.to_str().unwrap(), "--tokenizer", tok.to_str().unwrap()];

    // Spiral order, with the partial decodes: one per row of the 8x8 token map.
    let samples = dir.path().join("samples");
    run_ok(&[&["sample", "rar", "--class", "4", "--n", "2", "--steps", "--order", "spiral", "--out", samples.to_str().unwrap()][..], &models[..]]
        .concat());
    assert_eq!(png_size(&samples.join("4/1.png")), (32, 32));
    assert!(samples.join("4/0_token7_8x8.png").exists() && samples.join("4/0_token63_8x8.png").exists());
    assert!(!samples.join("4/0_token8_8x8.png").exists(), "no decode inside a row");

    // Bad input: clear errors, no panics.
    for (args, expect) in [
        (vec!["sample", "rar", "--class", "1", "--order", "zigzag"], "unknown order"),
        (vec!["sample", "var", "--class", "1", "--order", "spiral"], "one order only"),
        (vec!["sample", "var", "--class", "1"], "not a VAR one"),
    ] {
        let models = if args[1] == "var" && expect != "not a VAR one" { vec![] } else { models.to_vec() };
        let out = tessera().args(["--device", "cpu"]).args(&args).args(&models).args(["--out", dir.path().join("x").to_str().unwrap()]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expect) && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let out = tessera().args(["--device", "cpu", "train", "rar", "--dataset", "mnist", "--tokenizer", tok.to_str().unwrap(), "--random-ratio", "0.5", "--out"])
        .arg(dir.path().join("r")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("anneal, 0 or 1"), "{stderr}");
}

fn run_ok(args: &[&str]) -> String {
    let out = tessera().args(["--device", "cpu"]).args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn train_a_judge_then_evaluate_the_shipped_model_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("judge");
    let stdout = run_ok(&["train", "judge", "--dataset", "mnist", "--steps", "3", "--batch", "8", "--out", out.to_str().unwrap()]);
    assert!(stdout.contains("held-out accuracy"), "{stdout}");
    let judge = out.join("judge.weights.ckpt");
    assert!(judge.exists());

    let json = run_ok(&["eval", "--json", "--per-class", "4", "--judge", judge.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let accuracy = report["judge"]["heldout_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{report}");
    let model = &report["models"][0];
    assert_eq!(model["generator"], "var", "{report}");
    assert_eq!(model["steps"], 7, "one forward pass per scale of 1,2,3,4,5,6,8: {report}");
    assert!(model["params"].as_u64().unwrap() > 100_000, "{report}");
    assert_eq!(model["images"], 40, "{report}");
    for field in ["class_accuracy", "precision", "recall", "distinct"] {
        let v = model[field].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{field} = {v}");
    }
    assert!(model["fid"].as_f64().unwrap() >= 0.0 && model["images_per_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(model.get("train_seconds").is_some(), "{report}");
    let sanity = report["sanity"].as_array().unwrap();
    assert_eq!(sanity.len(), 2, "{report}");

    // A judge that is not a judge: a clear error.
    let tokenizer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/var-tiny/tokenizer.ckpt");
    let out = tessera().args(["--device", "cpu", "eval", "--per-class", "4", "--judge"]).arg(&tokenizer).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("expected a judge classifier") && !stderr.contains("panicked"), "{stderr}");

    // A judge of another dataset (3-channel scenes): a clear error, not a shape panic.
    let scenes = dir.path().join("scenes");
    run_ok(&["train", "judge", "--dataset", "scenes", "--steps", "1", "--batch", "4", "--out", scenes.to_str().unwrap()]);
    let out = tessera().args(["--device", "cpu", "eval", "--per-class", "4", "--judge"]).arg(scenes.join("judge.weights.ckpt")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("3-channel") && !stderr.contains("panicked"), "{stderr}");
}

/// The shipped judge and the shipped VAR together: issue 3's quality bar (at least 95% of the
/// samples judged the asked digit, no collapse), on 20 samples per digit with the eval's seed.
#[test]
fn the_shipped_var_draws_the_asked_digits_by_the_shipped_judges_verdict() {
    // The wide-image rows have their own test; here the training width only.
    let json = run_ok(&["eval", "--json", "--quick", "--widths", "1"]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(report["judge"]["heldout_accuracy"].as_f64().unwrap() >= 0.985, "{report}");
    let floor = report["sanity"][0]["fid"].as_f64().unwrap();
    let noise = report["sanity"][1]["fid"].as_f64().unwrap();
    // Every shipped family: VAR, RAR, then the column generator.
    let models = report["models"].as_array().unwrap();
    let generators: Vec<&str> = models.iter().map(|m| m["generator"].as_str().unwrap()).collect();
    assert_eq!(generators, ["var", "rar", "equivariant"], "{report}");
    for model in models {
        assert!(model["class_accuracy"].as_f64().unwrap() >= 0.95, "{model}");
        assert!(model["distinct"].as_f64().unwrap() >= 0.99, "{model}");
        let fid = model["fid"].as_f64().unwrap();
        assert!(floor < fid && fid < noise / 10.0, "FID {fid} should sit between real images {floor} and noise {noise}: {model}");
    }
    assert_eq!(models[1]["steps"], 64, "one forward pass per token of the 8x8 map: {report}");
}

/// The shipped landscapes (`columns-scenes`): by the shipped scenes judge, at the training width,
/// the asked kind of scenery (issue 15's bar: 90%), and `sample --model` draws them in colour,
/// far wider than trained.
#[test]
fn the_shipped_scenes_pair_draws_the_asked_scenery_by_the_scenes_judge() {
    // Guidance 6 on the app's scale (official 7): 90.8% on 600 images, 89.8% at 4 (BENCHMARKS.md,
    // "The column generator's landscapes").
    let json = run_ok(&["eval", "--json", "--quick", "--dataset", "scenes", "--widths", "1", "--guidance", "6"]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["judge"]["dataset"], "scenes", "{report}");
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "only the colour pair fits the scenes judge: {report}");
    assert_eq!(models[0]["name"], "columns-scenes", "{report}");
    assert!(models[0]["class_accuracy"].as_f64().unwrap() >= 0.90, "{report}");
    assert!(models[0]["distinct"].as_f64().unwrap() >= 0.9, "{report}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    run_ok(&["sample", "equivariant", "--model", "columns-scenes", "--class", "2", "--n", "1", "--width", "32", "--out", out]);
    let png = image::open(dir.path().join("2").join("0.png")).unwrap();
    assert_eq!((png.width(), png.height(), png.color().channel_count()), (128, 32, 3));
    for (args, says) in [
        (vec!["sample", "var", "--model", "columns-scenes", "--class", "0"], "no shipped VAR model is called \"columns-scenes\""),
        (vec!["sample", "equivariant", "--model", "columns-scenes", "--class", "6"], "out of range"),
    ] {
        let out = tessera().args(["--device", "cpu"]).args(&args).args(["--out", out]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says) && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// `eval --claims`: VAR, its raster-order baseline (same tokenizer, about the same size, far
/// fewer forward passes for VAR) and RAR; VAR's six sampler settings; RAR annealed against r held
/// at 0 and at 1; RAR's orders for the annealed and the random-only model; the column
/// generator's attention, long-image and half-the-columns claims. The FIDs themselves need 100
/// images per digit; BENCHMARKS.md has that run.
#[test]
fn eval_claims_compares_var_raster_and_rar_and_rar_s_randomness_and_orders() {
    let json = run_ok(&["eval", "--claims", "--json", "--per-class", "2", "--widths", "1,4"]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 21, "{report}");
    let (var, ar, rar) = (&models[0], &models[1], &models[2]);
    let generators: Vec<&str> = [var, ar, rar].iter().map(|m| m["generator"].as_str().unwrap()).collect();
    assert_eq!(generators, ["var", "raster-ar", "rar"], "{report}");
    let steps: Vec<u64> = [var, ar, rar].iter().map(|m| m["steps"].as_u64().unwrap()).collect();
    assert_eq!(steps, [7, 155, 64], "one pass per scale vs per token: {report}");
    let (pv, pa) = (var["params"].as_f64().unwrap(), ar["params"].as_f64().unwrap());
    assert!((pv - pa).abs() / pv < 0.05, "similar sizes: {pv} vs {pa}");
    assert!(ar["class_accuracy"].as_f64().unwrap() > 0.5, "the shipped baseline draws digits: {ar}");
    assert!(models[3..9].iter().all(|m| m["generator"] == "var" && m["steps"] == 7), "{report}");
    let names: Vec<&str> = models[9..18].iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names[..3], ["rar-tiny r annealed", "rar-tiny r = 0", "rar-tiny r = 1"], "{report}");
    assert!(models[9..18].iter().all(|m| m["generator"] == "rar" && m["steps"] == 64), "{report}");
    let orders: Vec<&str> = models[12..18].iter().map(|m| m["sampler"].as_str().unwrap()).collect();
    for (i, order) in ["random", "spiral", "centre-out"].iter().cycle().take(6).enumerate() {
        assert!(orders[i].ends_with(&format!("order {order}")), "{orders:?}");
    }
    // The column generator: windowed against full causal attention, named with the keys each
    // reads (8 columns: 26 against 36), and the run on the first half of the columns only.
    let columns: Vec<&str> = models[18..].iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(columns[0].starts_with("columns-mnist (window 3: 26 attention keys"), "{columns:?}");
    assert!(columns[1].starts_with("columns-mnist full causal (window 0: 36 attention keys"), "{columns:?}");
    assert_eq!(columns[2], "columns-mnist trained on columns 1-4 of 8");
    assert!(models[18..].iter().all(|m| m["generator"] == "equivariant" && m["class_accuracy"].as_f64().unwrap() > 0.3), "{report}");
    // Long images with and without the RoPE shift, at the asked widths.
    let wide: Vec<(&str, u64)> =
        report["wide"].as_array().unwrap().iter().map(|w| (w["name"].as_str().unwrap(), w["width_multiple"].as_u64().unwrap())).collect();
    assert_eq!(wide, [("columns-mnist", 1), ("columns-mnist", 4), ("columns-mnist no RoPE shift", 1), ("columns-mnist no RoPE shift", 4)]);
}

#[test]
fn bench_quick_reports_rows_with_their_device() {
    for (kind, generator) in [("sample", Some("var")), ("train", None)] {
        let json = run_ok(&[&["bench", kind][..], generator.as_slice(), &["--quick", "--json"]].concat());
        let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
        let rows = rows.as_array().unwrap();
        assert!(rows.len() >= 2, "{json}");
        for row in rows {
            assert_eq!(row["bench"], kind, "{row}");
            assert!(row["images_per_s"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["device"].as_str().unwrap().contains("CPU"), "--device cpu: {row}");
            assert_eq!(row["ops"], "cpu-kernels", "the CPU kernels on the CPU backend: {row}");
        }
    }
}

/// `bench kernels`: every family has rows in the issue's JSON shape, the kernel and the plain ops
/// agree, and on the CPU backend (no kernels) it is a clear error.
#[test]
fn bench_kernels_compares_each_kernel_with_the_plain_ops() {
    let cpu = tessera().args(["--device", "cpu", "bench", "kernels", "--quick"]).output().unwrap();
    assert!(!cpu.status.success());
    let stderr = String::from_utf8_lossy(&cpu.stderr);
    assert!(stderr.contains("wgpu device") && !stderr.contains("panicked"), "{stderr}");

    let out = tessera().args(["--device", "gpu", "bench", "kernels", "--quick", "--json"]).output().unwrap();
    if !out.status.success() {
        assert!(!gpu_required(), "CI has lavapipe: {}", String::from_utf8_lossy(&out.stderr));
        eprintln!("skipped: no wgpu adapter here ({})", String::from_utf8_lossy(&out.stderr));
        return;
    }
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    for family in ["attention", "quantize", "decode"] {
        assert!(rows.iter().any(|r| r["kernel"].as_str().unwrap().starts_with(family)), "no {family} row: {rows:?}");
    }
    for row in rows {
        for key in ["custom_ms", "reference_ms"] {
            assert!(row[key].as_f64().unwrap() > 0.0, "{row}");
        }
        assert!(!row["case"].as_str().unwrap().is_empty() && !row["device"].as_str().unwrap().is_empty(), "{row}");
        // Single kernels match to 1e-4 (the issue's bar); a whole decoder adds up a dozen layers' roundings.
        let bar = if row["kernel"] == "decode" { 1e-3 } else { 1e-4 };
        assert!(row["max_abs_diff"].as_f64().unwrap() <= bar, "{row}");
    }
}

/// `bench sample equivariant`: the column generator's official anchor (random weights), tokens
/// only and decoded, with the official figure beside the batch-1 row; it needs no shipped model.
#[test]
fn bench_sample_equivariant_times_the_official_anchor() {
    let json = run_ok(&["bench", "sample", "equivariant", "--quick", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = rows.as_array().unwrap();
    let find = |model: &str, batch: u64| rows.iter().find(|r| r["model"] == model && r["batch"] == batch);
    for batch in [1, 4] {
        for model in ["equivariant anchor (tokens only)", "equivariant anchor (decoded)"] {
            let row = find(model, batch).unwrap_or_else(|| panic!("no {model} row at batch {batch}: {json}"));
            assert!(row["images_per_s"].as_f64().unwrap() > 0.0 && row["device"].as_str().unwrap().contains("CPU"), "{row}");
        }
    }
    assert_eq!(find("equivariant anchor (tokens only)", 1).unwrap()["official_images_per_s"], 2.7, "{json}");
    assert!(find("equivariant anchor (decoded)", 1).unwrap()["official_images_per_s"].is_null(), "the official code decodes nothing");
    assert!(rows.iter().all(|r| r["bench"] == "sample" && !r["model"].as_str().unwrap().starts_with("rar")), "columns only: {json}");
}

/// `eval --checkpoint --tokenizer` on a tiny random-weight column pair trained for two steps:
/// the model row, and the wide-image rows at 1, 4, 8 and 16 times the training width, window by
/// window; the 1x row measures the model row's own images.
#[test]
fn eval_of_a_column_model_reports_the_wide_windows() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    run_ok(&["train", "columns-tokenizer", "--dataset", "mnist", "--steps", "2", "--batch", "4", "--sample-every", "0", "--out", run_s]);
    let tok = run.join("tokenizer.weights.ckpt");
    run_ok(&["train", "equivariant", "--dataset", "mnist", "--tokenizer", tok.to_str().unwrap(), "--steps", "2", "--batch", "4",
        "--sample-every", "0", "--out", run_s]);
    let model = run.join("equivariant.weights.ckpt");
    let pair = ["--checkpoint", model.to_str().unwrap(), "--tokenizer", tok.to_str().unwrap()];

    let json = run_ok(&[&["eval", "--json", "--quick", "--per-class", "2"][..], &pair[..]].concat());
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["judge"]["dataset"], "mnist", "grey images: the MNIST judge");
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "the named pair only: {report}");
    assert_eq!((models[0]["name"].as_str().unwrap(), models[0]["generator"].as_str().unwrap()), ("equivariant", "equivariant"));
    assert_eq!((models[0]["images"].as_u64(), models[0]["steps"].as_u64()), (Some(20), Some(8)), "{report}");
    assert_eq!(report["sanity"].as_array().unwrap().len(), 2, "{report}");

    let wide = report["wide"].as_array().unwrap();
    let widths: Vec<u64> = wide.iter().map(|w| w["width_multiple"].as_u64().unwrap()).collect();
    assert_eq!(widths, [1, 4, 8, 16], "{report}");
    for w in wide {
        let multiple = w["width_multiple"].as_u64().unwrap();
        assert_eq!(w["window_px"], 32, "{w}");
        // ceil(2 / W) images of each of 10 digits, W windows each.
        assert_eq!(w["wide_images"].as_u64().unwrap(), 10 * 2u64.div_ceil(multiple), "{w}");
        assert_eq!(w["images"].as_u64().unwrap(), w["wide_images"].as_u64().unwrap() * multiple, "{w}");
        assert_eq!(w["position_accuracy"].as_array().unwrap().len() as u64, multiple, "{w}");
        for field in ["class_accuracy", "precision", "recall", "distinct"] {
            assert!((0.0..=1.0).contains(&w[field].as_f64().unwrap()), "{field}: {w}");
        }
        assert!(w["fid"].as_f64().unwrap() >= 0.0 && w["fid_ratio"].as_f64().unwrap() >= 0.0, "{w}");
    }
    assert_eq!(wide[0]["fid_ratio"], 1.0, "{report}");
    for field in ["class_accuracy", "fid"] {
        assert_eq!(wide[0][field], models[0][field], "the 1x windows are the model row's images: {report}");
    }

    // A judge of other images: a clear error before anything is sampled.
    let out = tessera().args(["--device", "cpu", "eval", "--per-class", "2", "--dataset", "scenes"]).args(pair).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("scenes judge cannot judge") && !stderr.contains("panicked"), "{stderr}");
}

/// On a software adapter `sample` works on the CPU backend and says so; `--device gpu` keeps it on
/// the adapter. Needs a software adapter (lavapipe in CI); elsewhere it says why it checks nothing.
#[test]
fn sample_leaves_a_software_adapter_for_the_cpu_unless_asked() {
    let info = tessera().args(["info", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    if json["adapter"]["is_software"] != true {
        assert!(!gpu_required() || std::env::var_os("TESSERA_EXPECT_HARDWARE_GPU").is_some(), "CI has lavapipe: {json}");
        eprintln!("skipped: no software adapter here ({json}); the rule only applies to one");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sample = |device: Option<&str>| {
        let mut cmd = tessera();
        if let Some(d) = device {
            cmd.args(["--device", d]);
        }
        let out = cmd.args(["sample", "var", "--class", "3", "--n", "1", "--out", dir.path().to_str().unwrap()]).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(out.status.success(), "{device:?}:\n{stdout}\n{stderr}");
        (stdout, stderr)
    };
    let (stdout, stderr) = sample(None);
    assert!(stderr.contains("computing on the CPU backend") && stderr.contains("--device gpu"), "{stderr}");
    assert!(stdout.contains("on CPU (burn flex backend)"), "{stdout}");
    let (stdout, stderr) = sample(Some("gpu"));
    assert!(!stderr.contains("computing on the CPU backend"), "{stderr}");
    assert!(stdout.contains("software"), "sampled on the adapter: {stdout}");
}
