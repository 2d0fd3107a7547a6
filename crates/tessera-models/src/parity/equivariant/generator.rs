//! The `generator` case (`forward_encoder` in eval: class and null conditions, the blocks' input
//! and outputs, the RoPE table and the window mask) and the `flowhead` case (`diffloss.net`:
//! velocity, time embedding, `forward_with_cfg`, Euler sampling with and without guidance).
//!
//! Both are built from the `EquivariantGenerativeModel` constructor arguments, found wherever the
//! config's `constructor` section puts them (directly, or under a `generator` entry as in the
//! `sample` case). The sizes and the window are required: the official defaults
//! (`token_num=128`, width 1024, `cond_length=0`, …) only fit the official ImageNet models, so a
//! config without them is incomplete. Arguments that do not shape an eval run fall back to the
//! official defaults, and `norm_layer` to `nn.LayerNorm` (eps 1e-5) as the constructor would.

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;

use crate::Result;
use crate::generators::equivariant::{Equivariant, EquivariantConfig, freqs_cis};
use crate::generators::flow_head::{FREQUENCY_EMBEDDING_SIZE, timestep_embedding};
use crate::parity::{Computed, Io, f32_of, fixture_err, i64_of};
use crate::weights::StateDict;

/// Official class whose constructor arguments the config records.
const CLASS: &str = "EquivariantGenerativeModel";

/// The constructor arguments of `EquivariantGenerativeModel`, wherever the config puts them.
fn constructor<'a>(config_path: &Path, config: &'a Value) -> Result<&'a serde_json::Map<String, Value>> {
    fn find(v: &Value, depth: usize) -> Option<&serde_json::Map<String, Value>> {
        let obj = v.as_object()?;
        if let Some(args) = obj.get(CLASS).and_then(Value::as_object) {
            return Some(args);
        }
        if obj.contains_key("encoder_embed_dim") {
            return Some(obj);
        }
        if depth == 0 {
            return None;
        }
        obj.values().find_map(|child| find(child, depth - 1))
    }
    find(&config["constructor"], 3).ok_or_else(|| fixture_err(config_path, format!("the constructor has no `{CLASS}` arguments")))
}

/// `norm_layer` as the official constructor receives it: `partial(nn.LayerNorm, eps=…)` or
/// `nn.LayerNorm` (PyTorch's eps 1e-5; also the constructor's default when the key is missing).
fn norm_eps(config_path: &Path, value: Option<&Value>) -> Result<f64> {
    let Some(value) = value else { return Ok(1e-5) };
    let text = value.as_str().ok_or_else(|| fixture_err(config_path, "`norm_layer` is not a string"))?;
    if !text.contains("LayerNorm") {
        return Err(fixture_err(config_path, format!("`norm_layer` {text:?}: only LayerNorm is supported")));
    }
    match keyword(text, "eps") {
        Some(eps) => Ok(eps),
        None if text.contains("eps") => Err(fixture_err(config_path, format!("`norm_layer` {text:?}: cannot read its eps"))),
        None => Ok(1e-5),
    }
}

/// The number after `key=` in a call written out as text (`N=4`, `cfg_scale=2.5`); `key` must
/// not be the tail of a longer name.
fn keyword(text: &str, key: &str) -> Option<f64> {
    let pattern = format!("{key}=");
    let mut from = 0;
    while let Some(at) = text[from..].find(&pattern).map(|i| from + i) {
        let boundary = text[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        let tail = &text[at + pattern.len()..];
        let end = tail.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))).unwrap_or(tail.len());
        if boundary && let Ok(v) = tail[..end].parse() {
            return Some(v);
        }
        from = at + pattern.len();
    }
    None
}

/// `EquivariantGenerativeModel(**args)` as the config constructs it.
pub(super) fn generator_config(config_path: &Path, config: &Value) -> Result<EquivariantConfig> {
    let args = constructor(config_path, config)?;
    let required = |key: &str| -> Result<usize> {
        args.get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| fixture_err(config_path, format!("{CLASS}: `{key}` is missing or not a whole number")))
    };
    let number = |key: &str, default: f64| -> Result<f64> {
        match args.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| fixture_err(config_path, format!("{CLASS}: `{key}` is not a number"))),
        }
    };
    // `num_sampling_steps` is a string in the official code (`int()` when sampling).
    let steps = match args.get("num_sampling_steps") {
        None => 100,
        Some(Value::String(s)) => s.trim().parse().map_err(|_| fixture_err(config_path, format!("{CLASS}: `num_sampling_steps` {s:?} is not an integer")))?,
        Some(v) => v.as_u64().ok_or_else(|| fixture_err(config_path, format!("{CLASS}: `num_sampling_steps` {v} is not an integer")))? as usize,
    };
    let embed_dim = required("encoder_embed_dim")?;
    let decoder_dim = required("decoder_embed_dim")?;
    if decoder_dim != embed_dim {
        // The head's condition input is sized by decoder_embed_dim but fed the encoder's outputs.
        return Err(fixture_err(config_path, format!("{CLASS}: decoder_embed_dim {decoder_dim} != encoder_embed_dim {embed_dim}: the official forward cannot run")));
    }
    let shift_num = match args.get("shift_num") {
        None => 16,
        Some(Value::Null) => required("token_num")?, // official: `seq_len if shift_num is None`
        Some(_) => required("shift_num")?,
    };
    let config = EquivariantConfig::new(
        required("token_num")?,
        required("vae_embed_dim")?,
        embed_dim,
        required("encoder_depth")? + required("decoder_depth")?,
        required("encoder_num_heads")?,
        required("class_num")?,
    )
    .with_mlp_ratio(number("mlp_ratio", 4.0)?)
    .with_buffer_size(required("buffer_size")?)
    .with_window(required("cond_length")?)
    .with_shift_num(shift_num)
    .with_label_drop_prob(number("label_drop_prob", 0.1)?)
    .with_dropout(number("proj_dropout", 0.1)?)
    .with_head_width(required("diffloss_w")?)
    .with_head_depth(required("diffloss_d")?)
    .with_num_sampling_steps(steps)
    .with_diffusion_batch_mul(number("diffusion_batch_mul", 4.0)? as usize)
    .with_norm_eps(norm_eps(config_path, args.get("norm_layer"))?);
    config.validate()?;
    Ok(config)
}

/// The generator with the config's weights (every tensor of the file must be used).
pub(super) fn load_generator(config_path: &Path, config: &Value, device: &Device) -> Result<Equivariant> {
    let generator = generator_config(config_path, config)?;
    let w = &config["weights"];
    let file = w["files"]["generator"].as_str().or_else(|| w["file"].as_str());
    let file = file.ok_or_else(|| fixture_err(config_path, "no weight file for the generator"))?;
    let mut sd = StateDict::from_file(&config_path.with_file_name(file))?;
    let model = generator.init(device).load_official(&mut sd)?;
    sd.finish().map(|()| model)
}

/// The shape of input `name`, which must have `rank` axes.
fn input_shape(io: &Io, name: &str, rank: usize) -> Result<Vec<usize>> {
    match io.tensors.shape(name) {
        Some(s) if s.len() == rank => Ok(s.to_vec()),
        Some(s) => Err(fixture_err(&io.path, format!("`{name}` has shape {s:?}, expected {rank} axes"))),
        None => Err(fixture_err(&io.path, format!("no input `{name}`"))),
    }
}

fn expect(io: &Io, name: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(fixture_err(&io.path, format!("`{name}` has shape {got:?}, the config implies {want:?}")))
    }
}

/// Class labels, checked against the number of classes before any lookup.
pub(super) fn read_labels(io: &mut Io, classes: usize, device: &Device) -> Result<Tensor<1, Int>> {
    let (shape, values) = io.tensors.i64("labels", None)?;
    if shape.len() != 1 {
        return Err(fixture_err(&io.path, format!("`labels` has shape {shape:?}, expected (B,)")));
    }
    if let Some(bad) = values.iter().find(|&&l| l < 0 || l as usize >= classes) {
        return Err(fixture_err(&io.path, format!("label {bad} is outside the model's {classes} classes")));
    }
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}

pub(super) fn generator(config_path: &Path, config: &Value, io: &mut Io, device: &Device) -> Result<Vec<(String, Computed)>> {
    let model = load_generator(config_path, config, device)?;
    let shape = input_shape(io, "x", 3)?;
    let (b, n) = (shape[0], shape[1]);
    expect(io, "x", &shape, &[b, n.max(1), model.token_dim()])?;
    let x = io.f32::<3>("x", device)?;
    let labels = read_labels(io, model.class_num(), device)?;
    if labels.dims() != [b] {
        return Err(fixture_err(&io.path, format!("`labels` has shape {:?}, `x` has batch {b}", labels.dims())));
    }
    let class = model.class_embedding(labels);
    let (outputs, trace) = model.forward_traced(x.clone(), class.clone(), 0);
    let head_dim = model.head_dim();
    let mask = model.attention_mask();
    let window: Vec<i64> = (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).map(|(i, j)| mask.allows(i, j) as i64).collect();
    let mut out = vec![
        ("class_embedding".to_string(), f32_of(class)),
        ("outputs".to_string(), f32_of(outputs)),
        ("outputs_uncond".to_string(), f32_of(model.forward(x, model.null_condition(b), 0))),
        ("blocks_in".to_string(), f32_of(trace.blocks_in)),
        ("freqs_cis".to_string(), f32_of(freqs_cis(0, n, head_dim, device))),
        ("window_mask".to_string(), i64_of(Tensor::<2, Int>::from_data(TensorData::new(window, [n, n]), device))),
    ];
    for (i, block) in trace.block_outs.into_iter().enumerate() {
        out.push((format!("block{i}_out"), f32_of(block)));
    }
    Ok(out)
}

/// The guidance scale and step count of the call an output records (`cfg_scale=…`, `N=…` in its
/// meaning), the steps defaulting to the constructor's `num_sampling_steps` as `DiffLoss.sample`.
fn recorded_call(config_path: &Path, config: &Value, output: &str, key: &str) -> Result<f64> {
    let meaning = config["io_tensors"][output]["meaning"].as_str().unwrap_or("");
    keyword(meaning, key).ok_or_else(|| fixture_err(config_path, format!("`{output}`: its meaning records no `{key}=`")))
}

pub(super) fn flowhead(config_path: &Path, config: &Value, io: &mut Io, device: &Device) -> Result<Vec<(String, Computed)>> {
    let model = load_generator(config_path, config, device)?;
    let head = model.head();
    let (c, d) = (model.token_dim(), model.embed_dim());
    let m = input_shape(io, "x_t", 2)?[0];
    for (name, width) in [("x_t", c), ("z", d), ("z_uncond", d), ("noise", c)] {
        let shape = input_shape(io, name, 2)?;
        expect(io, name, &shape, &[m, width])?;
    }
    expect(io, "t", &input_shape(io, "t", 1)?, &[m])?;
    let x_t = io.f32::<2>("x_t", device)?;
    let t = io.f32::<1>("t", device)?;
    let z = io.f32::<2>("z", device)?;
    let z_uncond = io.f32::<2>("z_uncond", device)?;
    let noise = io.f32::<2>("noise", device)?;
    // `forward_with_cfg`'s input: the recorded one, or `[x_t ; x_t.flip(0)]` as the fixture made it.
    let cfg_x = if io.tensors.contains("cfg_x") {
        expect(io, "cfg_x", &input_shape(io, "cfg_x", 2)?, &[2 * m, c])?;
        io.f32::<2>("cfg_x", device)?
    } else {
        Tensor::cat(vec![x_t.clone(), x_t.clone().flip([0])], 0)
    };
    let steps = match recorded_call(config_path, config, "ode_sample", "N") {
        Ok(n) if n >= 1.0 && n.fract() == 0.0 => n as usize,
        _ => model.num_sampling_steps(),
    };
    let zz = Tensor::cat(vec![z.clone(), z_uncond.clone()], 0);
    let tt = Tensor::cat(vec![t.clone(), t.clone()], 0);
    let mut out = vec![
        ("v".to_string(), f32_of(head.velocity(x_t, t.clone(), z.clone()))),
        ("t_freq".to_string(), f32_of(timestep_embedding(t, FREQUENCY_EMBEDDING_SIZE))),
        ("cfg_x".to_string(), f32_of(cfg_x.clone())),
        ("ode_sample".to_string(), f32_of(head.sample_euler(noise.clone(), z.clone(), None, 1.0, steps))),
    ];
    if config["io_tensors"].get("v_cfg").is_some() {
        let scale = recorded_call(config_path, config, "v_cfg", "cfg_scale")?;
        out.push(("v_cfg".to_string(), f32_of(head.velocity_with_cfg(cfg_x, tt, zz, scale))));
    }
    if config["io_tensors"].get("ode_cfg_sample").is_some() {
        let scale = recorded_call(config_path, config, "ode_cfg_sample", "cfg_scale")?;
        let s = head.sample_euler(noise, z, Some(z_uncond), scale, steps);
        // The official sampler returns both halves, equal.
        out.push(("ode_cfg_sample".to_string(), f32_of(Tensor::cat(vec![s.clone(), s], 0))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parity::read_json;

    fn fixture(case: &str) -> std::path::PathBuf {
        let dir = match std::env::var_os("TESSERA_FIXTURES") {
            Some(dir) => std::path::PathBuf::from(dir),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
        };
        dir.join("equivariant").join(format!("{case}.config.json"))
    }

    #[test]
    fn keywords_are_read_from_recorded_calls() {
        let text = "sample_ode_generative(net.forward_with_cfg, [noise;noise], N=4, model_kwargs=dict(c=[z;z_uncond], cfg_scale=3.0))";
        assert_eq!(keyword(text, "N"), Some(4.0));
        assert_eq!(keyword(text, "cfg_scale"), Some(3.0));
        assert_eq!(keyword("for i=N..1: t=i/N", "N"), None);
        assert_eq!(keyword("functools.partial(torch.nn.LayerNorm, eps=1e-6)", "eps"), Some(1e-6));
    }

    #[test]
    fn norm_layer_is_read_as_the_constructor_would() {
        let p = Path::new("x");
        assert_eq!(norm_eps(p, Some(&"functools.partial(torch.nn.LayerNorm, eps=1e-6)".into())).unwrap(), 1e-6);
        assert_eq!(norm_eps(p, Some(&"torch.nn.LayerNorm".into())).unwrap(), 1e-5);
        assert_eq!(norm_eps(p, None).unwrap(), 1e-5);
        assert!(norm_eps(p, Some(&"torch.nn.RMSNorm".into())).is_err());
    }

    /// The sampling cache, one column at a time, against the official teacher-forced outputs.
    #[test]
    fn cached_sampling_steps_reproduce_the_official_outputs() {
        let path = fixture("generator");
        let config = read_json(&path).unwrap();
        let device = Device::flex();
        let model = load_generator(&path, &config, &device).unwrap();
        let mut io = Io::open(&path, &config, "generator").unwrap();
        let x = io.f32::<3>("x", &device).unwrap();
        let labels = io.i64::<1>("labels", &device).unwrap();
        let [b, n, _] = x.dims();
        let d = model.embed_dim();
        let atol = config["tolerances"]["outputs"]["suggested_atol"].as_f64().unwrap() as f32;
        for (cond, name) in [(model.class_embedding(labels), "outputs"), (model.null_condition(b), "outputs_uncond")] {
            let (_, want) = io.tensors.f32(name, None).unwrap();
            let want = Tensor::<3>::from_data(TensorData::new(want, [b, n, d]), &device);
            let mut cache = model.start(cond);
            let mut got = vec![model.next(&mut cache, None)];
            for i in 0..n - 1 {
                got.push(model.next(&mut cache, Some(x.clone().narrow(1, i, 1))));
            }
            let got = Tensor::stack::<3>(got, 1);
            let diff = (got - want).abs().max().into_scalar::<f32>();
            assert!(diff <= atol, "{name}: cached max diff {diff} > {atol}");
        }
    }
}
