//! The equivariant column generator's parity cases (drx-code/EquivariantModeling):
//! `tokenizer` (column tokenizer encode / decode, also a wider image), `generator`
//! (`forward_encoder`: windowed causal self-attention with RoPE, cross-attention to the
//! condition slots), `flowhead` (the flow-matching MLP head, guidance, Euler sampling) and
//! `sample` (the whole `sample_tokens` loop with the given noise, then decoding).

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;

use super::{CaseOutcome, Io};
use crate::Result;

mod generator;
mod sample;
mod tokenizer;

/// Runs one equivariant case: builds what it needs from the config's constructor arguments and
/// computes every output the runner knows for it.
pub(super) fn run_case(config_path: &Path, config: &Value, case: &str, device: &Device) -> Result<CaseOutcome> {
    let mut io = Io::open(config_path, config, case)?;
    let computed = match case {
        "tokenizer" => tokenizer::run(config_path, config, &mut io, device)?,
        "generator" => generator::generator(config_path, config, &mut io, device)?,
        "flowhead" => generator::flowhead(config_path, config, &mut io, device)?,
        "sample" => sample::run(config_path, config, &mut io, device)?,
        other => {
            return Ok(CaseOutcome::Unsupported(format!(
                "equivariant case `{other}` is not known to the runner"
            )));
        }
    };
    Ok(CaseOutcome::Ran(io.compare(config, computed)))
}
