//! `tessera data ...`: look at a dataset before training on it.

use std::path::PathBuf;

use anyhow::Context;
use tessera_data::{Dataset, FolderDataset, FolderOptions, Mnist, Scenes, ScenesConfig, preview_grid};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Write a labelled grid of a dataset's images, one row per class.
    Preview(PreviewArgs),
}

#[derive(clap::Args, Debug)]
pub struct PreviewArgs {
    /// `mnist`, `scenes`, or a folder with one subfolder of pictures per class (or a .zip of one).
    #[arg(long, value_name = "mnist|scenes|PATH")]
    dataset: DatasetSource,
    /// Where to write the grid (PNG).
    #[arg(long, default_value = "grid.png")]
    out: PathBuf,
    /// Images per class (columns).
    #[arg(long, default_value_t = 8, value_parser = super::positive)]
    per_class: usize,
    /// Each image pixel becomes scale x scale pixels in the grid.
    #[arg(long, default_value_t = 3, value_parser = super::positive)]
    scale: usize,
    /// MNIST: the held-out split instead of the training split.
    #[arg(long)]
    heldout: bool,
    /// Scenes and folders: image height (and folder width) in pixels.
    #[arg(long, default_value_t = 32, value_parser = super::positive)]
    resolution: usize,
    /// Scenes: image width in pixels (default: the resolution). Scenes work at any width.
    #[arg(long, value_parser = super::positive)]
    width: Option<usize>,
    /// Scenes: seed of the generated set.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Where a dataset comes from, as the CLI spells it.
#[derive(Clone, Debug)]
pub enum DatasetSource {
    Mnist,
    Scenes,
    Folder(PathBuf),
}

impl std::str::FromStr for DatasetSource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "mnist" => Self::Mnist,
            "scenes" => Self::Scenes,
            path => Self::Folder(PathBuf::from(path)),
        })
    }
}

/// A folder (or `.zip`) of the user's pictures at `resolution`, with a progress bar while the files
/// are decoded, and the skipped files listed on stderr.
pub fn open_pictures(path: &std::path::Path, resolution: usize) -> anyhow::Result<FolderDataset> {
    let options = FolderOptions { resolution, ..Default::default() };
    let bar = indicatif::ProgressBar::new(0).with_message("reading pictures");
    bar.set_style(indicatif::ProgressStyle::with_template("{msg} {bar:30.cyan/blue} {pos}/{len} files").expect("a valid template"));
    let opened = FolderDataset::open_with_progress(path, options, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let (dataset, skipped) = opened.with_context(|| format!("reading the pictures in {}", path.display()))?;
    if !skipped.is_empty() {
        eprintln!("skipped {} file(s) that are not usable pictures:", skipped.len());
        for s in &skipped {
            eprintln!("  {s}");
        }
    }
    Ok(dataset)
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Preview(args) => preview(args),
    }
}

fn preview(args: PreviewArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.per_class >= 1, "--per-class must be at least 1");
    anyhow::ensure!((1..=16).contains(&args.scale), "--scale must be 1 to 16");
    let dataset: Box<dyn Dataset> = match &args.dataset {
        DatasetSource::Mnist if args.heldout => Box::new(Mnist::heldout()),
        DatasetSource::Mnist => Box::new(Mnist::train()),
        DatasetSource::Scenes => {
            let width = args.width.unwrap_or(args.resolution);
            let classes = tessera_data::SceneClass::ALL.len();
            Box::new(Scenes::new(ScenesConfig { height: args.resolution, width, len: classes * args.per_class, seed: args.seed })?)
        }
        DatasetSource::Folder(path) => Box::new(open_pictures(path, args.resolution)?),
    };
    let grid = preview_grid(dataset.as_ref(), args.per_class, args.scale);
    grid.save(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: {} images in {} classes ({}), {}x{}x{}; grid written to {}",
        dataset.name(),
        dataset.len(),
        dataset.class_names().len(),
        dataset.class_names().join(", "),
        dataset.channels(),
        dataset.height(),
        dataset.width(),
        args.out.display()
    );
    Ok(())
}
