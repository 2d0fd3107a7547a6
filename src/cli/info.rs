//! `tessera info`: what will compute, and what it can do.

use tessera_kernels::device::Preference;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let compute = super::compute(preference)?;
    if args.json {
        let json = serde_json::json!({
            "device": compute.describe(),
            "gpu": compute.is_gpu(),
            "adapter": compute.adapter,
            "notice": compute.notice,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!("tessera {}", env!("CARGO_PKG_VERSION"));
    match &compute.adapter {
        Some(report) => println!("{report}"),
        None => println!("device         CPU (burn flex backend): no wgpu adapter in use"),
    }
    Ok(())
}
