//! The equivariant `tokenizer` case: the column tokenizer's encode (posterior mode) and decode,
//! with the semantic decoder, also on a wider image (more tokens), built from the config's official
//! constructor arguments.
//!
//! The tokenizer is the `EquivariantTokenizer` entry of the `constructor` section, found by class
//! name at any depth (a `module.path.` prefix and a `(…)` suffix on the key are ignored), or an
//! OmegaConf-style object whose `target` names that class and whose `params` are its arguments
//! (the layout of the official `configs/first_stage/tokenizer_config.yaml`), or a section that
//! holds a `ddconfig` itself. Its arguments are read as the official `__init__`s read them:
//! - `EquivariantTokenizer`: `ddconfig` and `embed_dim` (no defaults), `post_channels` (4096),
//!   `std` (2.5), `sematicconfig` (required by the official signature; here a missing or `null`
//!   one means a tokenizer without the semantic branch).
//! - `ddconfig` (`EquivariantTokenizerEncoder1D` / `Decoder1D`): `ch`, `out_ch`, `ch_mult`,
//!   `num_res_blocks`, `attn_resolutions`, `in_channels`, `resolution`, `z_channels` (no defaults);
//!   `double_enc` (read with `ddconfig["double_enc"]` by `EquivariantTokenizer`, so required);
//!   `len_down_scale` (required here: the official encoder defaults it to 1 and the decoder to 2,
//!   which no single tokenizer can be); `semantic_map` (`"base"`), `decoder_ch` (none).
//!   `dropout` and `resamp_with_conv` are accepted and ignored (eval mode; the shuffle resamplers
//!   always have their conv).
//! - `sematicconfig` (`EquivariantTokenizerSemanticDecoder1D`): `ch`, `out_ch`, `ch_mult`,
//!   `num_res_blocks`, `attn_resolutions`, `in_channels`, `resolution`, `z_channels` (no
//!   defaults), `downsample_scale` (0).
//!
//! A missing required key is an error naming it and where it was looked for.

use std::path::Path;

use burn::prelude::*;
use serde_json::{Map, Value};

use crate::Result;
use crate::parity::{Computed, Io, f32_of, fixture_err};
use crate::tokenizers::columns::{ColumnTokenizer, ColumnTokenizerConfig, SemanticDecoderConfig, SemanticMap};
use crate::weights::StateDict;

/// The tokenizer the config constructs (validated).
pub(super) fn tokenizer_config(config_path: &Path, config: &Value) -> Result<ColumnTokenizerConfig> {
    let constructor = &config["constructor"];
    if !constructor.is_object() {
        return Err(fixture_err(config_path, "no `constructor` section"));
    }
    let map = find_tokenizer(constructor, 4).ok_or_else(|| {
        fixture_err(
            config_path,
            "the constructor names no `EquivariantTokenizer` (a key, a `target` with `params`, or a \
             section holding `ddconfig`)",
        )
    })?;
    let top = Args { path: config_path, what: "EquivariantTokenizer", map };
    let dd = Args { path: config_path, what: "ddconfig", map: top.object("ddconfig")? };
    if dd.map.get("len_down_scale").is_none_or(Value::is_null) {
        return Err(dd.err(
            "no `len_down_scale`: the official encoder defaults it to 1 and the decoder to 2, so \
             the tokenizer must name one value",
        ));
    }
    let semantic_map = match dd.map.get("semantic_map").and_then(Value::as_str).unwrap_or("base") {
        "base" => SemanticMap::Base,
        "mid" => SemanticMap::Mid,
        "res" => SemanticMap::Res,
        other => return Err(dd.err(format!("`semantic_map` {other:?} is none of base, mid, res"))),
    };
    // Required by the official signature, unused by the model here.
    dd.usize("out_ch")?;
    let semantic = match top.map.get("sematicconfig") {
        None | Some(Value::Null) => None,
        Some(_) => {
            let s = Args { path: config_path, what: "sematicconfig", map: top.object("sematicconfig")? };
            s.usize("in_channels")?;
            s.usize("z_channels")?;
            Some(
                SemanticDecoderConfig::new(s.usize("ch")?, s.usizes("ch_mult")?, s.usize("out_ch")?, s.usize("num_res_blocks")?)
                    .with_attn_resolutions(s.usizes("attn_resolutions")?)
                    .with_resolution(s.usize("resolution")?)
                    .with_downsample_scale(s.usize_or("downsample_scale", 0)?),
            )
        }
    };
    let decoder_ch = match dd.map.get("decoder_ch") {
        None | Some(Value::Null) => None,
        Some(_) => Some(dd.usize("decoder_ch")?),
    };
    let tokenizer = ColumnTokenizerConfig::new()
        .with_ch(dd.usize("ch")?)
        .with_ch_mult(dd.usizes("ch_mult")?)
        .with_num_res_blocks(dd.usize("num_res_blocks")?)
        .with_attn_resolutions(dd.usizes("attn_resolutions")?)
        .with_z_channels(dd.usize("z_channels")?)
        .with_resolution(dd.usize("resolution")?)
        .with_in_channels(dd.usize("in_channels")?)
        .with_out_ch(dd.usize("out_ch")?)
        .with_len_down_scale(dd.usize("len_down_scale")?)
        .with_double_enc(dd.bool("double_enc")?)
        .with_decoder_ch(decoder_ch)
        .with_semantic_map(semantic_map)
        .with_semantic(semantic)
        .with_embed_dim(top.usize("embed_dim")?)
        .with_post_channels(top.usize_or("post_channels", 4096)?)
        .with_std(top.f64_or("std", 2.5)?);
    tokenizer.validate().map_err(|e| fixture_err(config_path, e.to_string()))?;
    Ok(tokenizer)
}

/// The tokenizer with the case's weights (`weights.file`, or `weights.files.tokenizer`). Without
/// a semantic branch in the config, the file's `semantic_decoder.*` tensors are ignored.
pub(super) fn load_tokenizer(config_path: &Path, config: &Value, device: &Device) -> Result<ColumnTokenizer> {
    let tokenizer = tokenizer_config(config_path, config)?;
    let w = &config["weights"];
    let file = w["file"]
        .as_str()
        .or_else(|| w["files"]["tokenizer"].as_str())
        .ok_or_else(|| fixture_err(config_path, "no tokenizer weight file (`weights.file` or `weights.files.tokenizer`)"))?;
    let mut sd = StateDict::from_file(&config_path.with_file_name(file))?;
    if tokenizer.semantic.is_none() {
        let unused: Vec<String> = sd.keys().filter(|k| k.starts_with("semantic_decoder.")).map(str::to_string).collect();
        for key in unused {
            sd.skip(&key);
        }
    }
    let model = tokenizer.init(device).load(&mut sd)?;
    sd.finish()?;
    Ok(model)
}

/// Computes `encoder_conv_out`, `encoder_out_columns`, `tokens` (`encode(image).mode()`),
/// `decoder_conv_in_input`, `decoded` and `semantic_dec` (`decode(tokens)`), and, when the io file
/// has `image_wide`, `tokens_wide` and `decoded_wide`.
pub(super) fn run(config_path: &Path, config: &Value, io: &mut Io, device: &Device) -> Result<Vec<(String, Computed)>> {
    let tokenizer = tokenizer_config(config_path, config)?;
    check_image(&tokenizer, io, "image")?;
    let wide = io.tensors.contains("image_wide");
    if wide {
        check_image(&tokenizer, io, "image_wide")?;
    }
    let model = load_tokenizer(config_path, config, device)?;

    let latent = model.encoder_latent(io.f32::<4>("image", device)?);
    let columns = model.encoder_columns(latent.clone());
    let tokens = model.token_means(columns.clone());
    let decoder_in = model.decoder_latent(tokens.clone());
    let (decoded, semantic) = model.decode_with_semantic(tokens.clone());
    let mut out = vec![
        ("encoder_conv_out".to_string(), f32_of(latent)),
        ("encoder_out_columns".to_string(), f32_of(columns)),
        ("tokens".to_string(), f32_of(tokens)),
        ("decoder_conv_in_input".to_string(), f32_of(decoder_in)),
        ("decoded".to_string(), f32_of(decoded)),
    ];
    if let Some(semantic) = semantic {
        out.push(("semantic_dec".to_string(), f32_of(semantic)));
    }
    if wide {
        let tokens = model.encode(io.f32::<4>("image_wide", device)?);
        out.push(("decoded_wide".to_string(), f32_of(model.decode(tokens.clone()))));
        out.push(("tokens_wide".to_string(), f32_of(tokens)));
    }
    Ok(out)
}

/// `name` must be `[B, in_channels, resolution, W]` with W a multiple of the column width and at
/// least two columns (reflect padding), or the case fails with the reason instead of panicking.
fn check_image(tokenizer: &ColumnTokenizerConfig, io: &Io, name: &str) -> Result<()> {
    let shape = io
        .tensors
        .shape(name)
        .map(<[usize]>::to_vec)
        .ok_or_else(|| fixture_err(&io.path, format!("no INPUT `{name}`")))?;
    let bad = |why: String| Err(fixture_err(&io.path, format!("`{name}` has shape {shape:?}: {why}")));
    let f = tokenizer.column_width();
    match shape[..] {
        [b, c, h, w] => {
            if b == 0 {
                bad("an empty batch".into())
            } else if c != tokenizer.in_channels {
                bad(format!("the tokenizer takes {} channel(s)", tokenizer.in_channels))
            } else if h != tokenizer.resolution {
                bad(format!("the tokenizer takes images {} high (`resolution`)", tokenizer.resolution))
            } else if !w.is_multiple_of(f) || w / f < 2 {
                bad(format!("the width must be a multiple of the column width {f}, at least 2 columns"))
            } else {
                Ok(())
            }
        }
        _ => bad("expected [B, C, H, W]".into()),
    }
}

/// The arguments of `EquivariantTokenizer` under `v`, searched `depth` levels down.
fn find_tokenizer(v: &Value, depth: usize) -> Option<&Map<String, Value>> {
    let map = v.as_object()?;
    if map.contains_key("ddconfig") {
        return Some(map);
    }
    if map.get("target").and_then(Value::as_str).map(class_of) == Some("EquivariantTokenizer") {
        return map.get("params").and_then(Value::as_object);
    }
    for (key, value) in map {
        if class_of(key) == "EquivariantTokenizer"
            && let Some(args) = value.as_object()
        {
            return match args.get("params").and_then(Value::as_object) {
                Some(params) if !args.contains_key("ddconfig") => Some(params),
                _ => Some(args),
            };
        }
    }
    if depth == 0 {
        return None;
    }
    map.values().find_map(|value| find_tokenizer(value, depth - 1))
}

/// `a.b.EquivariantTokenizer(…)` → `EquivariantTokenizer`.
fn class_of(key: &str) -> &str {
    let head = key.split('(').next().unwrap_or("").trim();
    head.rsplit('.').next().unwrap_or(head)
}

/// One official constructor's keyword arguments.
struct Args<'a> {
    path: &'a Path,
    what: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    fn err(&self, message: impl AsRef<str>) -> crate::Error {
        fixture_err(self.path, format!("{}: {}", self.what, message.as_ref()))
    }

    fn get(&self, key: &str) -> Result<&'a Value> {
        self.map.get(key).ok_or_else(|| self.err(format!("missing required `{key}`")))
    }

    fn object(&self, key: &str) -> Result<&'a Map<String, Value>> {
        self.get(key)?.as_object().ok_or_else(|| self.err(format!("`{key}` is not an object")))
    }

    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.get(key)?;
        v.as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| self.err(format!("`{key}` is {v}, not a non-negative integer")))
    }

    fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        if self.map.contains_key(key) { self.usize(key) } else { Ok(default) }
    }

    fn usizes(&self, key: &str) -> Result<Vec<usize>> {
        let v = self.get(key)?;
        v.as_array()
            .and_then(|a| a.iter().map(|n| n.as_u64().map(|n| n as usize)).collect())
            .ok_or_else(|| self.err(format!("`{key}` is {v}, not a list of non-negative integers")))
    }

    fn bool(&self, key: &str) -> Result<bool> {
        let v = self.get(key)?;
        v.as_bool().ok_or_else(|| self.err(format!("`{key}` is {v}, not a boolean")))
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.err(format!("`{key}` is {v}, not a number"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ddconfig() -> Value {
        json!({
            "double_enc": false, "z_channels": 8, "resolution": 64, "in_channels": 3, "out_ch": 3,
            "ch": 32, "ch_mult": [1, 2, 1], "num_res_blocks": 1, "dropout": 0.0,
            "attn_resolutions": [16], "len_down_scale": 2, "semantic_map": "res"
        })
    }

    fn read(constructor: Value) -> Result<ColumnTokenizerConfig> {
        tokenizer_config(Path::new("t.config.json"), &json!({ "constructor": constructor }))
    }

    #[test]
    fn every_layout_of_the_constructor_gives_the_same_tokenizer() {
        let args = json!({ "ddconfig": ddconfig(), "embed_dim": 8, "post_channels": 128 });
        let want = read(json!({ "EquivariantTokenizer": args.clone() })).unwrap();
        assert_eq!(want.column_width(), 4);
        assert!(want.semantic.is_none());
        for layout in [
            json!({ "tokenizer.models.tokenizer.EquivariantTokenizer": args.clone() }),
            json!({ "model": { "target": "tokenizer.models.tokenizer.EquivariantTokenizer", "params": args.clone() } }),
            json!({ "tokenizer": { "EquivariantTokenizer": { "params": args.clone() } } }),
            args.clone(),
        ] {
            assert_eq!(read(layout).unwrap(), want);
        }
    }

    #[test]
    fn missing_or_impossible_arguments_are_named() {
        let err = |args: Value| read(json!({ "EquivariantTokenizer": args })).unwrap_err().to_string();
        let mut dd = ddconfig();
        dd.as_object_mut().unwrap().remove("len_down_scale");
        assert!(err(json!({ "ddconfig": dd, "embed_dim": 8, "post_channels": 128 })).contains("len_down_scale"));
        let mut dd = ddconfig();
        dd.as_object_mut().unwrap().remove("double_enc");
        assert!(err(json!({ "ddconfig": dd, "embed_dim": 8, "post_channels": 128 })).contains("double_enc"));
        assert!(err(json!({ "ddconfig": ddconfig(), "post_channels": 128 })).contains("embed_dim"));
        // post_channels defaults to the official 4096, which this ddconfig cannot feed.
        assert!(err(json!({ "ddconfig": ddconfig(), "embed_dim": 8 })).contains("post_channels"));
        let semantic = json!({ "ch": 32, "ch_mult": [1, 1], "out_ch": 32, "num_res_blocks": 1, "attn_resolutions": [], "resolution": 64, "in_channels": 3 });
        let e = err(json!({ "ddconfig": ddconfig(), "embed_dim": 8, "post_channels": 128, "sematicconfig": semantic }));
        assert!(e.contains("sematicconfig") && e.contains("z_channels"), "{e}");
        assert!(read(json!({ "Other": {} })).unwrap_err().to_string().contains("EquivariantTokenizer"));
    }
}
