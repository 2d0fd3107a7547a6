//! `tessera sample var`: draw images of one class from a trained VAR (the shipped tiny MNIST
//! checkpoints in `assets/var-tiny/` unless told otherwise).
//!
//! Writes `OUT/<class>/<i>.png` at the tokenizer's native resolution (MNIST: the 32x32 padded
//! digits the models train on, not the 28x28 crop), and with `--steps` also
//! `OUT/<class>/<i>_scale<k>_<pn>x<pn>.png`: the image decoded from the scales sampled so far.

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use burn::prelude::*;
use tessera_data::Image;
use tessera_kernels::device::Preference;
use tessera_models::sampling::var::{VarSamplerConfig, sample};

use crate::var_models::VarModels;

/// The checkpoints `tessera sample` uses when none is named.
pub const SHIPPED_VAR: &str = "assets/var-tiny/var.ckpt";
pub const SHIPPED_TOKENIZER: &str = "assets/var-tiny/tokenizer.ckpt";

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Sample images of one class from a VAR transformer and its tokenizer.
    Var(VarArgs),
}

#[derive(clap::Args, Debug)]
pub struct VarArgs {
    /// Class to draw (0-based label, e.g. the digit for MNIST).
    #[arg(long)]
    class: usize,
    /// Number of images.
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// Seed of the sampling stream: the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder; images go to OUT/<class>/<i>.png.
    #[arg(long, default_value = "samples")]
    out: PathBuf,
    /// The transformer checkpoint (default: the shipped tiny MNIST model).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The tokenizer checkpoint (default: the shipped tiny MNIST tokenizer).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Classifier-free guidance (0 = none; the official demo uses 4, FID runs 1.5).
    #[arg(long, default_value_t = 2.0)]
    guidance: f64,
    /// Keep only the K most likely codes (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling: keep the most likely codes up to this probability mass (0 = off).
    #[arg(long, default_value_t = 0.0)]
    top_p: f64,
    /// Divide the logits by this before sampling (1 = as trained).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Also write the partial image after every scale.
    #[arg(long)]
    steps: bool,
}

pub fn run(command: Command, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    match command {
        Command::Var(args) => sample_var(args, preference),
    }
}

/// A shipped asset: relative to the working directory, else to the source tree.
pub(crate) fn shipped(relative: &str) -> PathBuf {
    let here = PathBuf::from(relative);
    if here.exists() { here } else { Path::new(env!("CARGO_MANIFEST_DIR")).join(relative) }
}

fn sample_var(args: VarArgs, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    ensure!(args.n >= 1, "--n must be at least 1");
    ensure!(args.temperature > 0.0, "--temperature must be positive");
    ensure!((0.0..=1.0).contains(&args.top_p), "--top-p must be in [0, 1]");
    let compute = super::compute(preference)?;
    let device = compute.device.clone();
    let models = load_var_models(args.checkpoint.as_deref(), args.tokenizer.as_deref(), &device)?;
    models.check_class(args.class)?;
    let (var, vae, var_config, classes) = (&models.var, &models.vae, &models.var_config, &models.class_names);

    let labels = Tensor::<1, Int>::full([args.n], args.class as i64, &device);
    let config = VarSamplerConfig::new()
        .with_guidance(args.guidance)
        .with_top_k(args.top_k)
        .with_top_p(args.top_p)
        .with_temperature(args.temperature)
        .with_seed(args.seed);
    let run = sample(var, vae, labels, config, args.steps);

    let dir = args.out.join(args.class.to_string());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, image) in images(run.image).iter().enumerate() {
        write_png(image, &dir.join(format!("{i}.png")))?;
    }
    for step in &run.steps {
        let pn = var_config.patch_nums[step.si];
        let partial = (vae.decode(step.f_hat.clone()) + 1.0) * 0.5;
        for (i, image) in images(partial).iter().enumerate() {
            write_png(image, &dir.join(format!("{i}_scale{}_{pn}x{pn}.png", step.si)))?;
        }
    }
    let name = classes.get(args.class).map(|n| format!(" ({n})")).unwrap_or_default();
    println!(
        "{} image(s) of class {}{name} written to {} on {}{}",
        args.n,
        args.class,
        dir.display(),
        compute.describe(),
        if args.steps { format!(", with {} partial decodes each", run.steps.len()) } else { String::new() }
    );
    Ok(())
}

/// `[B, C, H, W]` in `[0, 1]` → images.
pub(crate) fn images(t: Tensor<4>) -> Vec<Image> {
    let [b, c, h, w] = t.dims();
    let values = t.clamp(0.0, 1.0).into_data().try_to_vec::<f32>().expect("f32 images");
    values.chunks(c * h * w).take(b).map(|px| Image::new(c, h, w, px.to_vec())).collect()
}

pub(crate) fn write_png(image: &Image, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, image.to_png_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Loads the named checkpoints, or the shipped tiny MNIST pair (from `assets/`, so a retrained
/// file there is picked up without a rebuild).
pub(crate) fn load_var_models(checkpoint: Option<&Path>, tokenizer: Option<&Path>, device: &Device) -> anyhow::Result<VarModels> {
    let var_path = checkpoint.map(Path::to_path_buf).unwrap_or_else(|| shipped(SHIPPED_VAR));
    let tok_path = tokenizer.map(Path::to_path_buf).unwrap_or_else(|| shipped(SHIPPED_TOKENIZER));
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let (var_bytes, tok_bytes) = (read(&var_path)?, read(&tok_path)?);
    let models = VarModels::from_bytes(&var_bytes, &tok_bytes, device)
        .with_context(|| format!("loading {} with {}", var_path.display(), tok_path.display()))?;
    if let Some(warning) = &models.warning {
        eprintln!("warning: {warning} ({} with {})", var_path.display(), tok_path.display());
    }
    Ok(models)
}
