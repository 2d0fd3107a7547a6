//! `tessera edit <family>` (VAR's edits): zero-shot editing of an existing image (VAR paper §7): in-painting,
//! out-painting and class-conditional editing, with no training for the task.
//!
//! The source image is tokenized; at every scale the codes where the mask keeps the source are
//! forced to the source's codes and the rest are sampled, so the model fills the hole consistently
//! with what it keeps. In- and out-painting sample with the null class (unconditional), class
//! editing with the class asked for, as the official notebook does.

use std::path::PathBuf;

use anyhow::{Context, bail, ensure};
use tessera_data::{Dataset, Image, Mnist};
use tessera_kernels::device::Preference;
use tessera_models::family::Family;
use tessera_models::generator::{Edit, EditKind, SampleRequest};

use super::sample::{ModelArgs, images, write_png};

/// What to regenerate.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Regenerate the region (the hole), keep the rest.
    Inpaint,
    /// Keep the region, regenerate everything around it.
    Outpaint,
    /// Regenerate the region as the class given by --class, keep the rest.
    Class,
}

impl Mode {
    fn kind(self) -> EditKind {
        match self {
            Mode::Inpaint => EditKind::Inpaint,
            Mode::Outpaint => EditKind::Outpaint,
            Mode::Class => EditKind::Class,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The generator family (`var`: the one whose models offer edits).
    #[arg(value_name = "FAMILY")]
    family: Family,
    /// The image to edit: a picture file, or `heldout:N` for held-out MNIST digit N.
    #[arg(long)]
    input: String,
    #[arg(long, value_enum, default_value_t = Mode::Inpaint)]
    mode: Mode,
    /// The region, in pixels of the model's resolution: x0,y0,x1,y1 (x1, y1 exclusive).
    #[arg(long, value_name = "X0,Y0,X1,Y1", conflicts_with = "mask")]
    r#box: Option<String>,
    /// The region as a picture: white (> 50 %) pixels are the region. Resized to the model's resolution.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Class for --mode class.
    #[arg(long)]
    class: Option<usize>,
    /// Number of edits (each a different draw).
    #[arg(long, default_value_t = 4, value_parser = super::positive)]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder: source.png, mask.png and edit_<i>.png.
    #[arg(long, default_value = "edits")]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Classifier-free guidance for --mode class.
    #[arg(long, default_value_t = 2.0, value_parser = super::finite)]
    guidance: f64,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0.0, value_parser = super::finite)]
    top_p: f64,
}

/// The region, row-major `side × side`, true inside.
fn region_mask(args: &Args, side: usize) -> anyhow::Result<Vec<bool>> {
    let region: Vec<bool> = match (&args.r#box, &args.mask) {
        (Some(spec), None) => {
            let v: Vec<usize> = spec
                .split(',')
                .map(|s| s.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .with_context(|| format!("--box {spec:?}: expected four whole numbers x0,y0,x1,y1"))?;
            let [x0, y0, x1, y1] = v[..] else { bail!("--box {spec:?}: expected four numbers x0,y0,x1,y1") };
            ensure!(x0 < x1 && y0 < y1 && x1 <= side && y1 <= side,
                "--box {spec:?} must satisfy x0 < x1 <= {side} and y0 < y1 <= {side} (the model's resolution)");
            (0..side * side).map(|i| (x0..x1).contains(&(i % side)) && (y0..y1).contains(&(i / side))).collect()
        }
        (None, Some(path)) => {
            let img = image::open(path).with_context(|| format!("reading the mask {}", path.display()))?;
            let gray = img.resize_exact(side as u32, side as u32, image::imageops::FilterType::Triangle).to_luma8();
            gray.pixels().map(|p| p.0[0] > 127).collect()
        }
        _ => bail!("give the region with --box x0,y0,x1,y1 or --mask PICTURE"),
    };
    Ok(region)
}

fn source_image(input: &str, channels: usize, side: usize) -> anyhow::Result<Image> {
    if let Some(n) = input.strip_prefix("heldout:") {
        let heldout = Mnist::heldout();
        let n: usize = n.parse().with_context(|| format!("--input {input}: expected heldout:N"))?;
        ensure!(n < heldout.len(), "--input {input}: the held-out set has digits 0 to {}", heldout.len() - 1);
        let digit = heldout.get(n).image;
        ensure!(digit.channels == channels && digit.height == side,
            "this model works on {channels}x{side}x{side} images, MNIST digits are 1x32x32");
        return Ok(digit);
    }
    let img = image::open(input).with_context(|| format!("reading {input}"))?;
    let img = img.resize_to_fill(side as u32, side as u32, image::imageops::FilterType::Lanczos3);
    Ok(Image::from_dynamic_image(&img, channels))
}

pub fn run(args: Args, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    ensure!(args.n >= 1, "--n must be at least 1");
    let (device, described) = super::work_device(preference, "edit")?;
    let generator = args.model.load(args.family, &device)?;
    let kind = args.mode.kind();
    ensure!(generator.controls().edits.contains(&kind), "{} models do not offer {:?} edits", args.family, args.mode);
    let info = generator.info();
    let (channels, side) = (info.channels, info.height);
    let class = match (args.mode, args.class) {
        (Mode::Class, Some(c)) => c,
        (Mode::Class, None) => bail!("--mode class needs --class C"),
        (_, Some(_)) => bail!("--class only applies to --mode class (in- and out-painting are unconditional)"),
        (_, None) => 0,
    };
    let region = region_mask(&args, side)?;
    let source = source_image(&args.input, channels, side)?;
    let edit = Edit { source: source.pixels.clone(), region, kind };
    let request =
        SampleRequest { classes: vec![class; args.n], seed: args.seed, guidance: args.guidance, top_k: args.top_k, top_p: args.top_p, ..Default::default() };
    let mut run = generator.start(&request, Some(&edit))?;
    while run.step().is_some() {}

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    write_png(&source, &args.out.join("source.png"))?;
    write_png(&Image::new(1, side, side, kind.keep(&edit.region)), &args.out.join("mask.png"))?;
    for (i, image) in images(run.images()).iter().enumerate() {
        write_png(image, &args.out.join(format!("edit_{i}.png")))?;
    }
    println!("{} edit(s) ({:?}) written to {} on {}", args.n, args.mode, args.out.display(), described);
    Ok(())
}
