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

    // One class only: a clear error, not a crash.
    std::fs::remove_dir_all(root.join("dogs")).unwrap();
    let out = tessera().args(["data", "preview", "--dataset"]).arg(&root).arg("--out").arg(&grid).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("class") && !stderr.contains("panicked"), "{stderr}");
}
