//! The headless commands of the `tessera` binary, and the window when there is no command.

mod bench;
mod bench_kernels;
mod data;
mod edit;
mod eval;
mod info;
mod parity;
mod sample;
mod train;
mod window;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_kernels::device::{self, Compute, Preference};

#[derive(Parser, Debug)]
#[command(name = "tessera", version, about = "Train small autoregressive image generators and watch them generate.",
    long_about = "Train small autoregressive image generators and watch them generate.\n\n\
    With no command, opens the app window. The commands below work headless (no display needed).")]
struct Cli {
    /// Which device computes: auto (best GPU, else a software adapter, else the CPU), gpu, or cpu.
    /// Defaults to $TESSERA_DEVICE, else auto.
    #[arg(long, global = true, value_name = "auto|gpu|cpu")]
    device: Option<Preference>,
    /// Run everything on plain burn ops instead of the WGSL kernels (attention, quantizer,
    /// decoder), to compare speed or results.
    #[arg(long, global = true)]
    reference_ops: bool,
    /// Open the window with the settings of a shared link, e.g.
    /// '?generator=var&class=3&seed=1&autorun=1' (the part of the web app's URL after the '?').
    #[arg(long, value_name = "QUERY")]
    link: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the compute device: adapter, backend, type, limits and optional features.
    Info(info::Args),
    /// Inspect datasets.
    #[command(subcommand)]
    Data(data::Command),
    /// Check the models against fixtures made by the official implementations; non-zero exit on any FAIL.
    Parity(parity::Args),
    /// Train a model: `var-tokenizer` first, then `var` on its token maps.
    #[command(subcommand)]
    Train(train::Command),
    /// Draw images from a trained generator of a family (its shipped tiny MNIST model by default).
    Sample(sample::Args),
    /// Zero-shot editing: in-paint, out-paint, or re-generate a region as another class.
    Edit(edit::Args),
    /// Measure the shipped models with the judge: class accuracy, FID, precision/recall, speed.
    Eval(eval::Args),
    /// Throughput of sampling and training on this device.
    #[command(subcommand)]
    Bench(bench::Command),
}

/// Entry point of the desktop binary.
pub fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    tessera_kernels::set_reference_ops(cli.reference_ops);
    let result = match cli.command {
        None => window::run(cli.link),
        Some(Command::Info(args)) => info::run(args, preference(cli.device)),
        Some(Command::Data(cmd)) => data::run(cmd),
        Some(Command::Parity(args)) => parity::run(args, preference(cli.device)),
        Some(Command::Train(cmd)) => train::run(cmd, preference(cli.device)),
        Some(Command::Sample(args)) => sample::run(args, preference(cli.device)),
        Some(Command::Edit(args)) => edit::run(args, preference(cli.device)),
        Some(Command::Eval(args)) => eval::run(args, preference(cli.device)),
        Some(Command::Bench(cmd)) => bench::run(cmd, preference(cli.device)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn preference(flag: Option<Preference>) -> anyhow::Result<Preference> {
    match flag {
        Some(p) => Ok(p),
        None => Ok(Preference::from_env()?),
    }
}

/// The device for a headless command; says once, on stderr, when it had to fall back to the CPU.
pub(crate) fn compute(preference: anyhow::Result<Preference>) -> anyhow::Result<Compute> {
    let compute = device::create_blocking(preference?)?;
    if let Some(notice) = &compute.notice {
        eprintln!("note: {notice}");
    }
    Ok(compute)
}
