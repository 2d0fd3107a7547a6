//! RAR's `tokenizer` case: MaskGIT-VQGAN encode (encoder, nearest codes) and decode (codebook
//! entries, decoder, clamp), built from the config's official constructor arguments.
//!
//! The `constructor` section names the official classes (a `module.path.` prefix and a `(config)`
//! suffix on the key are ignored; titok.py's aliases `Pixel_Eecoder`, `Pixel_Decoder`,
//! `Pixel_Quantizer` are understood):
//! - `Encoder(config)` / `Decoder(config)`: the OmegaConf keys each official `__init__` reads
//!   (`channel_mult`, `num_resolutions`, `dropout`, `hidden_channels`, `num_channels`,
//!   `num_res_blocks`, `z_channels`; the decoder also `resolution`). None has a default in the
//!   official code, so a missing one is an error naming it.
//! - `VectorQuantizer`: `num_embeddings`, `embedding_dim`, `commitment_cost` (no defaults either).
//! - `PretrainedTokenizer`: the official hard-coded 256 px config (1024 codes of 256) for whatever
//!   of the above is not named; keys listed under it must agree with the hard-coded values.
//!
//! When only one of `Encoder` / `Decoder` is named, the other is built from the same config (as
//! `PretrainedTokenizer` does); when both are, they must agree (one [`VqganConfig`] builds both).
//! Levels follow the official loops over `num_resolutions`: `channel_mult` is read up to it, which
//! the official code only survives when `channel_mult[num_resolutions - 1] == channel_mult[-1]`.

use std::path::Path;

use burn::prelude::*;
use serde_json::{Map, Value};

use super::super::{Computed, Io, f32_of, fixture_err, i64_of};
use crate::Result;
use crate::tokenizers::vqgan::VqganConfig;
use crate::weights::StateDict;

/// `PretrainedTokenizer.__init__`'s OmegaConf and quantizer arguments (official titok.py).
/// (`channel_mult` is a list: [`PRETRAINED_CHANNEL_MULT`].)
const PRETRAINED: [(&str, f64); 10] = [
    ("num_resolutions", 5.0),
    ("dropout", 0.0),
    ("hidden_channels", 128.0),
    ("num_channels", 3.0),
    ("num_res_blocks", 2.0),
    ("resolution", 256.0),
    ("z_channels", 256.0),
    ("num_embeddings", 1024.0),
    ("embedding_dim", 256.0),
    ("commitment_cost", 0.25),
];
const PRETRAINED_CHANNEL_MULT: [usize; 5] = [1, 1, 2, 2, 4];

/// The tokenizer the config constructs.
pub(super) fn vqgan_config(config_path: &Path, config: &Value) -> Result<VqganConfig> {
    let section = config["constructor"]
        .as_object()
        .ok_or_else(|| fixture_err(config_path, "no `constructor` section"))?;
    // An entry's arguments: its object, or the object under its only key `config`; a value that
    // is no object (`"PretrainedTokenizer": "weights.bin"`) gives no arguments.
    let empty = Map::new();
    let find = |class: &str| {
        let (key, value) = section.iter().find(|(key, _)| class_of(key) == class)?;
        let map = value.as_object().unwrap_or(&empty);
        let map = match map.get("config").and_then(Value::as_object) {
            Some(inner) if map.len() == 1 => inner,
            _ => map,
        };
        Some(Args {
            path: config_path,
            key: key.clone(),
            map,
        })
    };
    let pretrained = find("PretrainedTokenizer");
    if let Some(p) = &pretrained {
        p.check_pretrained()?;
    }
    let encoder = find("Encoder").map(|a| a.modules(false)).transpose()?;
    let decoder = find("Decoder").map(|a| a.modules(true)).transpose()?;
    let modules = match (encoder, decoder) {
        (Some(e), Some(d)) => {
            e.agrees_with(&d, config_path)?;
            ModuleArgs {
                resolution: d.resolution.or(e.resolution),
                ..d
            }
        }
        (Some(m), None) | (None, Some(m)) => match pretrained {
            Some(_) => {
                let hard_coded = ModuleArgs::pretrained();
                m.agrees_with(&hard_coded, config_path)?;
                ModuleArgs {
                    resolution: m.resolution.or(hard_coded.resolution),
                    ..m
                }
            }
            None => m,
        },
        (None, None) if pretrained.is_some() => ModuleArgs::pretrained(),
        (None, None) => {
            return Err(fixture_err(
                config_path,
                "the constructor names neither `Encoder(config)` / `Decoder(config)` nor \
                 `PretrainedTokenizer`",
            ));
        }
    };
    let (num_embeddings, embedding_dim, commitment_cost) = match find("VectorQuantizer") {
        Some(vq) => (
            vq.usize("num_embeddings")?,
            vq.usize("embedding_dim")?,
            vq.f64("commitment_cost")?,
        ),
        None if pretrained.is_some() => (1024, 256, 0.25),
        None => {
            return Err(fixture_err(
                config_path,
                "the constructor names no `VectorQuantizer` (num_embeddings, embedding_dim, \
                 commitment_cost) and no `PretrainedTokenizer`",
            ));
        }
    };

    // The official loops run over `num_resolutions` and index `channel_mult` with it; the middle
    // and the decoder's last level use `channel_mult[-1]`.
    let (mult, n) = (&modules.channel_mult, modules.num_resolutions);
    if n == 0 || n > mult.len() {
        return Err(fixture_err(
            config_path,
            format!(
                "num_resolutions {n} does not fit channel_mult {mult:?}: the official blocks index \
                 channel_mult[0..num_resolutions]"
            ),
        ));
    }
    if mult[n - 1] != mult[mult.len() - 1] {
        return Err(fixture_err(
            config_path,
            format!(
                "channel_mult {mult:?} with num_resolutions {n}: the last level's width \
                 (channel_mult[{}]) differs from the middle's (channel_mult[-1]), which the \
                 official code cannot run",
                n - 1
            ),
        ));
    }
    let resolution = match modules.resolution {
        Some(r) => r,
        None => image_side_declared(config)
            .ok_or_else(|| fixture_err(config_path, "no `resolution` in the constructor"))?,
    };
    let vqgan = VqganConfig::new()
        .with_channel_mult(mult[..n].to_vec())
        .with_hidden_channels(modules.hidden_channels)
        .with_num_res_blocks(modules.num_res_blocks)
        .with_z_channels(modules.z_channels)
        .with_codebook_size(num_embeddings)
        .with_codebook_dim(embedding_dim)
        .with_num_channels(modules.num_channels)
        .with_resolution(resolution)
        .with_commitment_cost(commitment_cost)
        .with_dropout(modules.dropout);
    vqgan.validate()?;
    Ok(vqgan)
}

/// Computes `encoder_out`, `quantized`, `codes` (`PretrainedTokenizer.encode`), and from those
/// codes `decoder_out_raw` and `recon_image` (`PretrainedTokenizer.decode`).
pub(super) fn run(
    config_path: &Path,
    config: &Value,
    io: &mut Io,
    device: &Device,
) -> Result<Vec<(String, Computed)>> {
    let vqgan_config = vqgan_config(config_path, config)?;
    let name = input_name(config_path, config, io)?;
    check_image(config_path, config, &vqgan_config, io, &name)?;
    let w = &config["weights"];
    let file = w["file"]
        .as_str()
        .or_else(|| w["files"]["tokenizer"].as_str())
        .ok_or_else(|| fixture_err(config_path, "no tokenizer weight file (`weights.file`)"))?;
    let mut sd = StateDict::from_file(&config_path.with_file_name(file))?;
    let vqgan = vqgan_config.init(device).load_official(&mut sd)?;
    sd.finish()?;
    let image = io.f32::<4>(&name, device)?;

    let encoder_out = vqgan.encoder_forward(image);
    let (codes, quantized) = vqgan.quantize(encoder_out.clone());
    let decoder_out_raw = vqgan.decode_raw(vqgan.embed_codes(codes.clone()));
    let recon_image = decoder_out_raw.clone().clamp(0.0, 1.0);
    // `[B, h·w]` as `PretrainedTokenizer.encode` returns them, or `[B, h, w]` if the fixture
    // stores them so (the same row-major order; `get_codebook_entry` takes both).
    let codes = match io.tensors.shape("codes") {
        Some(&[b, h, w]) if codes.dims() == [b, h * w] => i64_of(codes.reshape([b, h, w])),
        _ => i64_of(codes),
    };
    Ok(vec![
        ("encoder_out".to_string(), f32_of(encoder_out)),
        ("quantized".to_string(), f32_of(quantized)),
        ("codes".to_string(), codes),
        ("decoder_out_raw".to_string(), f32_of(decoder_out_raw)),
        ("recon_image".to_string(), f32_of(recon_image)),
    ])
}

/// The input image: `image`, else the one rank-4 INPUT of `io_tensors`.
fn input_name(config_path: &Path, config: &Value, io: &Io) -> Result<String> {
    if io.tensors.contains("image") {
        return Ok("image".into());
    }
    let inputs: Vec<&String> = config["io_tensors"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, m)| m["meaning"].as_str().unwrap_or("").starts_with("INPUT"))
        .filter(|(_, m)| m["shape"].as_array().is_some_and(|s| s.len() == 4))
        .map(|(name, _)| name)
        .collect();
    match inputs.as_slice() {
        [one] => Ok(one.to_string()),
        _ => Err(fixture_err(
            config_path,
            "no INPUT `image` (a [B, C, H, W] tensor) to encode",
        )),
    }
}

/// The image must be what the config declares and what the tokenizer can take: `[B, C, H, H]`
/// with C = `num_channels`, H a multiple of the downsampling (square: the official decode
/// rebuilds a √l × √l token map). Any such side runs (the model is convolutional; the official
/// only uses `resolution` for a shape it never checks).
fn check_image(
    config_path: &Path,
    config: &Value,
    vqgan: &VqganConfig,
    io: &Io,
    name: &str,
) -> Result<()> {
    let shape = io
        .tensors
        .shape(name)
        .map(<[usize]>::to_vec)
        .ok_or_else(|| fixture_err(&io.path, format!("no tensor `{name}`")))?;
    let bad = |why: String| {
        Err(fixture_err(
            &io.path,
            format!("`{name}` has shape {shape:?}: {why}"),
        ))
    };
    if let Some(declared) = declared_shape(config, name)
        && declared != shape
    {
        return Err(fixture_err(
            config_path,
            format!("io_tensors declares `{name}` as {declared:?}, the io file holds {shape:?}"),
        ));
    }
    let [b, c, h, w] = shape[..] else {
        return bad("expected [B, C, H, W]".into());
    };
    let f = vqgan.downsample();
    if b == 0 {
        bad("an empty batch".into())
    } else if c != vqgan.num_channels {
        bad(format!(
            "the tokenizer takes {} channel(s)",
            vqgan.num_channels
        ))
    } else if h != w {
        bad("the tokenizer takes square images (its token map is √l × √l)".into())
    } else if h == 0 || !h.is_multiple_of(f) {
        bad(format!(
            "the side must be a positive multiple of the downsampling {f}"
        ))
    } else {
        Ok(())
    }
}

/// `io_tensors.<name>.shape`, if the config declares it.
fn declared_shape(config: &Value, name: &str) -> Option<Vec<usize>> {
    config["io_tensors"][name]["shape"]
        .as_array()?
        .iter()
        .map(|v| v.as_u64().map(|v| v as usize))
        .collect()
}

/// Side of the declared input image, for configs that give no `resolution`.
fn image_side_declared(config: &Value) -> Option<usize> {
    declared_shape(config, "image").and_then(|s| s.get(3).copied())
}

/// Official class named by a constructor key: `a.b.Encoder(config)` → `Encoder`; titok.py's
/// aliases map to their classes, and `modeling.quantizer…VectorQuantizer` (TiTok's, another
/// class) to nothing.
fn class_of(key: &str) -> &str {
    let head = key.split('(').next().unwrap_or("").trim();
    let (path, class) = head.rsplit_once('.').unwrap_or(("", head));
    match class {
        "Pixel_Eecoder" | "Pixel_Encoder" => "Encoder",
        "Pixel_Decoder" => "Decoder",
        "Pixel_Quantizer" => "VectorQuantizer",
        "VectorQuantizer" if path.starts_with("modeling.quantizer") => "",
        other => other,
    }
}

/// The OmegaConf keys of `Encoder` / `Decoder`.
#[derive(Debug, Clone, PartialEq)]
struct ModuleArgs {
    channel_mult: Vec<usize>,
    num_resolutions: usize,
    dropout: f64,
    hidden_channels: usize,
    num_channels: usize,
    num_res_blocks: usize,
    z_channels: usize,
    /// Read by the decoder only.
    resolution: Option<usize>,
}

impl ModuleArgs {
    fn pretrained() -> Self {
        Self {
            channel_mult: PRETRAINED_CHANNEL_MULT.to_vec(),
            num_resolutions: 5,
            dropout: 0.0,
            hidden_channels: 128,
            num_channels: 3,
            num_res_blocks: 2,
            z_channels: 256,
            resolution: Some(256),
        }
    }

    /// Every key but `resolution` (which only the decoder reads, and only for an unused shape).
    fn agrees_with(&self, other: &Self, path: &Path) -> Result<()> {
        let differs = |field: &str, a: String, b: String| {
            Err(fixture_err(
                path,
                format!(
                    "the encoder and decoder configs differ in `{field}` ({a} vs {b}); one \
                     VqganConfig builds both"
                ),
            ))
        };
        macro_rules! same {
            ($($f:ident),*) => {$(
                if self.$f != other.$f {
                    return differs(stringify!($f), format!("{:?}", self.$f), format!("{:?}", other.$f));
                }
            )*};
        }
        same!(
            channel_mult,
            num_resolutions,
            dropout,
            hidden_channels,
            num_channels,
            num_res_blocks,
            z_channels
        );
        Ok(())
    }
}

/// One constructor entry's arguments.
struct Args<'a> {
    path: &'a Path,
    key: String,
    map: &'a Map<String, Value>,
}

impl Args<'_> {
    /// The keys `Encoder` (`decoder = false`) or `Decoder` reads in `__init__`.
    fn modules(&self, decoder: bool) -> Result<ModuleArgs> {
        Ok(ModuleArgs {
            channel_mult: self.usizes("channel_mult")?,
            num_resolutions: self.usize("num_resolutions")?,
            dropout: self.f64("dropout")?,
            hidden_channels: self.usize("hidden_channels")?,
            num_channels: self.usize("num_channels")?,
            num_res_blocks: self.usize("num_res_blocks")?,
            z_channels: self.usize("z_channels")?,
            resolution: if decoder {
                Some(self.usize("resolution")?)
            } else {
                self.map
                    .contains_key("resolution")
                    .then(|| self.usize("resolution"))
                    .transpose()?
            },
        })
    }

    /// Keys listed under `PretrainedTokenizer` must be its hard-coded values.
    fn check_pretrained(&self) -> Result<()> {
        for (key, value) in PRETRAINED {
            if self.map.contains_key(key) && self.f64(key)? != value {
                return Err(self.err(format!(
                    "`{key}` is {}, but PretrainedTokenizer hard-codes {value}",
                    self.map[key]
                )));
            }
        }
        if self.map.contains_key("channel_mult")
            && self.usizes("channel_mult")? != PRETRAINED_CHANNEL_MULT
        {
            return Err(self.err(format!(
                "`channel_mult` is {}, but PretrainedTokenizer hard-codes {PRETRAINED_CHANNEL_MULT:?}",
                self.map["channel_mult"]
            )));
        }
        Ok(())
    }

    fn err(&self, message: String) -> crate::Error {
        fixture_err(self.path, format!("constructor `{}`: {message}", self.key))
    }

    fn get(&self, name: &str) -> Result<&Value> {
        self.map.get(name).ok_or_else(|| {
            self.err(format!(
                "no `{name}` (the official code reads it and has no default)"
            ))
        })
    }

    fn f64(&self, name: &str) -> Result<f64> {
        let v = self.get(name)?;
        v.as_f64()
            .ok_or_else(|| self.err(format!("`{name}` is {v}, expected a number")))
    }

    fn usize(&self, name: &str) -> Result<usize> {
        let v = self.get(name)?;
        as_usize(v)
            .ok_or_else(|| self.err(format!("`{name}` is {v}, expected a non-negative integer")))
    }

    fn usizes(&self, name: &str) -> Result<Vec<usize>> {
        let v = self.get(name)?;
        v.as_array()
            .and_then(|a| a.iter().map(as_usize).collect::<Option<Vec<_>>>())
            .ok_or_else(|| {
                self.err(format!(
                    "`{name}` is {v}, expected a list of non-negative integers"
                ))
            })
    }
}

/// A non-negative integer, also when written as a float (`2.0`).
fn as_usize(v: &Value) -> Option<usize> {
    v.as_u64().map(|u| u as usize).or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)
            .map(|f| f as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn module_config() -> Value {
        json!({
            "channel_mult": [1, 1, 2], "num_resolutions": 3, "dropout": 0.0,
            "hidden_channels": 32, "num_channels": 3, "num_res_blocks": 1,
            "resolution": 16, "z_channels": 8
        })
    }

    fn config(constructor: Value) -> Value {
        json!({ "constructor": constructor, "io_tensors": { "image": { "shape": [2, 3, 16, 16] } } })
    }

    fn read(constructor: Value) -> Result<VqganConfig> {
        vqgan_config(Path::new("x/tokenizer.config.json"), &config(constructor))
    }

    #[test]
    fn the_fixture_layout_reads_as_the_official_classes() {
        let c = read(json!({
            "Encoder(config)": module_config(),
            "Decoder(config)": module_config(),
            "VectorQuantizer": { "num_embeddings": 32, "embedding_dim": 8, "commitment_cost": 0.25 },
            "note": "text"
        }))
        .unwrap();
        assert_eq!(c.channel_mult, vec![1, 1, 2]);
        assert_eq!(
            (c.hidden_channels, c.num_res_blocks, c.z_channels),
            (32, 1, 8)
        );
        assert_eq!(
            (
                c.codebook_size,
                c.codebook_dim,
                c.resolution,
                c.num_channels
            ),
            (32, 8, 16, 3)
        );
    }

    #[test]
    fn pretrained_tokenizer_is_the_hard_coded_256px_config() {
        let c = read(json!({ "PretrainedTokenizer": { "pretrained_weight": "x.bin" } })).unwrap();
        let same =
            read(json!({ "modeling.titok.PretrainedTokenizer(pretrained_weight)": "x.bin" }));
        assert_eq!(same.unwrap().channel_mult, c.channel_mult);
        assert_eq!(c.channel_mult, vec![1, 1, 2, 2, 4]);
        assert_eq!(
            (c.hidden_channels, c.num_res_blocks, c.z_channels),
            (128, 2, 256)
        );
        assert_eq!(
            (c.codebook_size, c.codebook_dim, c.resolution),
            (1024, 256, 256)
        );
        assert_eq!(c.commitment_cost, 0.25);
        let err = read(json!({ "PretrainedTokenizer": { "hidden_channels": 64 } })).unwrap_err();
        assert!(err.to_string().contains("hard-codes"), "{err}");
    }

    #[test]
    fn missing_keys_and_impossible_levels_are_clear_errors() {
        let mut no_mult = module_config();
        no_mult.as_object_mut().unwrap().remove("channel_mult");
        let vq = json!({ "num_embeddings": 32, "embedding_dim": 8, "commitment_cost": 0.25 });
        let err = read(json!({ "Encoder(config)": no_mult, "VectorQuantizer": vq })).unwrap_err();
        assert!(err.to_string().contains("channel_mult"), "{err}");
        let err = read(json!({ "Encoder(config)": module_config() })).unwrap_err();
        assert!(err.to_string().contains("VectorQuantizer"), "{err}");

        // num_resolutions below len(channel_mult): the official truncation, when it can run.
        let mut two = module_config();
        two["channel_mult"] = json!([1, 2, 2]);
        two["num_resolutions"] = json!(2);
        let c = read(json!({ "Encoder(config)": two.clone(), "VectorQuantizer": vq })).unwrap();
        assert_eq!(c.channel_mult, vec![1, 2]);
        two["channel_mult"] = json!([1, 1, 2]);
        let err = read(json!({ "Encoder(config)": two, "VectorQuantizer": vq })).unwrap_err();
        assert!(err.to_string().contains("channel_mult[-1]"), "{err}");
        let mut four = module_config();
        four["num_resolutions"] = json!(4);
        let err = read(json!({ "Encoder(config)": four, "VectorQuantizer": vq })).unwrap_err();
        assert!(err.to_string().contains("num_resolutions"), "{err}");

        let mut wide = module_config();
        wide["hidden_channels"] = json!(64);
        let err = read(json!({
            "Encoder(config)": module_config(), "Decoder(config)": wide, "VectorQuantizer": vq
        }))
        .unwrap_err();
        assert!(err.to_string().contains("hidden_channels"), "{err}");
    }
}
