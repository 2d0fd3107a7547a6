//! The official VAR constructors, read from a fixture config's `constructor` section.
//!
//! A config may name the classes themselves, `VQVAE` and `VAR` (their `__init__` arguments), the
//! builder `build_vae_var` (its arguments), or both. Each class argument comes from the first place
//! that gives it: the class's own entry, then what `build_vae_var` passes for it (width
//! `64 * depth`, `depth` heads, ...), then the class's official default, as Python fills it.
//! `derived_by_build_vae_var` only records what the builder passed, so it is not read.
//! Official: FoundationVision/VAR @78b95394, `models/__init__.py`, `models/vqvae.py`, `models/var.py`.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::Result;
use crate::generators::var::VarConfig;
use crate::parity::fixture_err;
use crate::tokenizers::msvq::{MsVqVaeConfig, PhiSharing};

/// The official default `patch_nums` (`v_patch_nums` of `VQVAE`), 10 scales.
const PATCH_NUMS: [usize; 10] = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16];

/// `VQVAE` (the tokenizer) as the config constructs it.
pub(super) fn vqvae_config(path: &Path, config: &Value) -> Result<MsVqVaeConfig> {
    let args = Constructor::of(path, config).vqvae();
    if !args.named() {
        return Err(fixture_err(
            path,
            "the constructor names neither `VQVAE` nor `build_vae_var`",
        ));
    }
    let vae = MsVqVaeConfig::new()
        .with_vocab_size(args.usize("vocab_size", 4096)?)
        .with_z_channels(args.usize("z_channels", 32)?)
        .with_ch(args.usize("ch", 128)?)
        .with_beta(args.f64("beta", 0.25)?)
        .with_using_znorm(args.bool("using_znorm", false)?)
        .with_quant_conv_ks(args.usize("quant_conv_ks", 3)?)
        .with_quant_resi(args.f64("quant_resi", 0.5)?)
        .with_phi_sharing(PhiSharing::from_official(
            args.usize("share_quant_resi", 4)?,
        ))
        .with_patch_nums(args.usizes("v_patch_nums", &PATCH_NUMS)?);
    vae.validate()?;
    Ok(vae)
}

/// `VAR` (the generator) as the config constructs it; its vocabulary and latent width come from
/// its `vae_local`, the config's `VQVAE`.
pub(super) fn var_config(path: &Path, config: &Value) -> Result<VarConfig> {
    let constructor = Constructor::of(path, config);
    let args = constructor.var();
    if !args.named() {
        return Err(fixture_err(
            path,
            "the constructor names neither `VAR` nor `build_vae_var`",
        ));
    }
    if !constructor.vqvae().named() {
        // The one VAR argument without a default: the VQVAE it reads V and Cvae from.
        return Err(fixture_err(
            path,
            "`VAR` needs its required argument `vae_local` (a VQVAE): the constructor names \
             neither `VQVAE` nor `build_vae_var`",
        ));
    }
    let vae = vqvae_config(path, config)?;
    let var = VarConfig::new(
        args.usizes("patch_nums", &PATCH_NUMS)?,
        vae.vocab_size,
        vae.z_channels,
        args.usize("num_classes", 1000)?,
        args.usize("depth", 16)?,
        args.usize("embed_dim", 1024)?,
        args.usize("num_heads", 16)?,
    )
    .with_mlp_ratio(args.f64("mlp_ratio", 4.0)?)
    .with_norm_eps(args.f64("norm_eps", 1e-6)?)
    .with_cond_drop_rate(args.f64("cond_drop_rate", 0.1)?)
    .with_attn_l2_norm(args.bool("attn_l2_norm", false)?);
    var.validate()?;
    Ok(var)
}

/// Why the runner cannot reproduce these constructors, if it cannot.
pub(super) fn unsupported(path: &Path, config: &Value) -> Result<Option<String>> {
    let constructor = Constructor::of(path, config);
    let var = constructor.var();
    if var.named() && var.bool("shared_aln", false)? {
        return Ok(Some(
            "shared AdaLN (shared_aln=True) is not implemented".into(),
        ));
    }
    let vae = constructor.vqvae();
    if vae.named() && vae.usize("share_quant_resi", 4)? == 0 {
        // PhiNonShared builds `default_qresi_counts or len(v_patch_nums)` convs; ours, one per scale.
        let counts = vae.usize("default_qresi_counts", 0)?;
        if counts != 0 && counts != vae.usizes("v_patch_nums", &PATCH_NUMS)?.len() {
            return Ok(Some(format!(
                "default_qresi_counts={counts} φ convs for another number of scales is not implemented"
            )));
        }
    }
    Ok(None)
}

/// The config's `constructor` section.
struct Constructor<'a> {
    path: &'a Path,
    section: &'a Value,
}

impl<'a> Constructor<'a> {
    fn of(path: &'a Path, config: &'a Value) -> Self {
        Self {
            path,
            section: &config["constructor"],
        }
    }

    /// `VQVAE`'s own entry (or the `vae_local` object of `VAR`), over what the builder passes:
    /// `VQVAE(vocab_size=V, z_channels=Cvae, ch=ch, test_mode=True,
    /// share_quant_resi=share_quant_resi, v_patch_nums=patch_nums)`.
    fn vqvae(&self) -> ClassArgs<'a> {
        let direct = self.section["VQVAE"]
            .as_object()
            .or_else(|| self.section["VAR"]["vae_local"].as_object());
        let from_builder = self.builder().map(|b| {
            args([
                ("vocab_size", b.arg("V")),
                ("z_channels", b.arg("Cvae")),
                ("ch", b.arg("ch")),
                ("test_mode", json!(true)),
                ("share_quant_resi", b.arg("share_quant_resi")),
                ("v_patch_nums", b.arg("patch_nums")),
            ])
        });
        ClassArgs {
            path: self.path,
            class: "VQVAE",
            direct,
            from_builder,
        }
    }

    /// `VAR`'s own entry, over what the builder passes: width `64 * depth`, `depth` heads,
    /// drop path `0.1 * depth / 24`, `norm_eps=1e-6`, `cond_drop_rate=0.1`, and its own
    /// `num_classes`, `depth`, `shared_aln`, `attn_l2_norm`, `patch_nums`.
    fn var(&self) -> ClassArgs<'a> {
        let from_builder = self.builder().map(|b| {
            let depth = b.arg("depth");
            // A depth that is not an integer is reported when `depth` itself is read.
            let d = depth.as_u64().unwrap_or(0);
            args([
                ("num_classes", b.arg("num_classes")),
                ("depth", depth),
                ("embed_dim", json!(d * 64)),
                ("num_heads", json!(d)),
                ("drop_rate", json!(0.0)),
                ("attn_drop_rate", json!(0.0)),
                ("drop_path_rate", json!(0.1 * d as f64 / 24.0)),
                ("norm_eps", json!(1e-6)),
                ("shared_aln", b.arg("shared_aln")),
                ("cond_drop_rate", json!(0.1)),
                ("attn_l2_norm", b.arg("attn_l2_norm")),
                ("patch_nums", b.arg("patch_nums")),
            ])
        });
        ClassArgs {
            path: self.path,
            class: "VAR",
            direct: self.section["VAR"].as_object(),
            from_builder,
        }
    }

    fn builder(&self) -> Option<Builder<'a>> {
        self.section["build_vae_var"]
            .as_object()
            .map(|args| Builder { args })
    }
}

fn args<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// `build_vae_var`'s arguments, with its defaults for those the config leaves out.
struct Builder<'a> {
    args: &'a Map<String, Value>,
}

impl Builder<'_> {
    fn arg(&self, key: &str) -> Value {
        self.args.get(key).cloned().unwrap_or_else(|| match key {
            "patch_nums" => json!(PATCH_NUMS),
            "V" => json!(4096),
            "Cvae" => json!(32),
            "ch" => json!(160),
            "share_quant_resi" => json!(4),
            "num_classes" => json!(1000),
            "depth" => json!(16),
            "shared_aln" => json!(false),
            "attn_l2_norm" => json!(true),
            _ => Value::Null,
        })
    }
}

/// One class's arguments: its own entry first, then what the builder passes.
struct ClassArgs<'a> {
    path: &'a Path,
    class: &'static str,
    direct: Option<&'a Map<String, Value>>,
    from_builder: Option<Map<String, Value>>,
}

impl ClassArgs<'_> {
    /// Whether the config constructs this class at all.
    fn named(&self) -> bool {
        self.direct.is_some() || self.from_builder.is_some()
    }

    /// The given value, read by `parse`, or the official `default` when no place gives it.
    fn read<T>(&self, key: &str, default: T, parse: impl Fn(&Value) -> Option<T>) -> Result<T> {
        let (value, via) = match self.direct.and_then(|d| d.get(key)) {
            Some(v) => (v, ""),
            None => match self.from_builder.as_ref().and_then(|b| b.get(key)) {
                Some(v) => (v, " (as build_vae_var passes it)"),
                None => return Ok(default),
            },
        };
        parse(value).ok_or_else(|| {
            fixture_err(
                self.path,
                format!("{}.{key}{via} has an unexpected value: {value}", self.class),
            )
        })
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize> {
        self.read(key, default, as_usize)
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64> {
        self.read(key, default, Value::as_f64)
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        self.read(key, default, Value::as_bool)
    }

    fn usizes(&self, key: &str, default: &[usize]) -> Result<Vec<usize>> {
        self.read(key, default.to_vec(), |v| {
            v.as_array()?.iter().map(as_usize).collect()
        })
    }
}

/// A non-negative integer; `4.0` too, as Python would accept it where it only does arithmetic.
fn as_usize(v: &Value) -> Option<usize> {
    v.as_u64().map(|n| n as usize).or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
            .map(|f| f as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(constructor: Value) -> (Result<MsVqVaeConfig>, Result<VarConfig>) {
        let config = json!({ "constructor": constructor });
        let path = Path::new("case.config.json");
        (vqvae_config(path, &config), var_config(path, &config))
    }

    /// The shipped fixtures' builder call.
    fn builder() -> Value {
        json!({ "device": "cpu", "patch_nums": [1, 2, 3, 4], "V": 64, "Cvae": 8, "ch": 32,
                "share_quant_resi": 4, "num_classes": 10, "depth": 2, "attn_l2_norm": true })
    }

    #[test]
    fn the_builder_derives_width_and_heads_from_depth() {
        let (vae, var) = read(json!({ "build_vae_var": builder() }));
        let (vae, var) = (vae.unwrap(), var.unwrap());
        assert_eq!((vae.vocab_size, vae.z_channels, vae.ch), (64, 8, 32));
        assert_eq!(vae.patch_nums, vec![1, 2, 3, 4]);
        assert_eq!((var.depth, var.embed_dim, var.num_heads), (2, 128, 2));
        assert_eq!(
            (var.vocab_size, var.z_channels, var.num_classes),
            (64, 8, 10)
        );
        assert!(var.attn_l2_norm);
    }

    #[test]
    fn a_direct_var_keeps_width_and_heads_independent_of_depth() {
        let (_, var) = read(json!({
            "VQVAE": { "vocab_size": 64, "z_channels": 8, "ch": 32, "v_patch_nums": [1, 2] },
            "VAR": { "depth": 3, "embed_dim": 96, "num_heads": 4, "mlp_ratio": 2.0,
                     "norm_eps": 1e-5, "num_classes": 7, "patch_nums": [1, 2] },
        }));
        let var = var.unwrap();
        assert_eq!((var.depth, var.embed_dim, var.num_heads), (3, 96, 4));
        assert_eq!(
            (var.mlp_ratio, var.norm_eps, var.num_classes),
            (2.0, 1e-5, 7)
        );
        assert_eq!((var.vocab_size, var.z_channels), (64, 8));
    }

    #[test]
    fn omitted_arguments_take_the_official_class_defaults() {
        let (vae, var) = read(json!({ "VQVAE": {}, "VAR": { "patch_nums": [1, 2] } }));
        let (vae, var) = (vae.unwrap(), var.unwrap());
        // VQVAE's own default width is 128; 160 is only build_vae_var's.
        assert_eq!((vae.vocab_size, vae.z_channels, vae.ch), (4096, 32, 128));
        assert_eq!(vae.patch_nums, PATCH_NUMS.to_vec());
        assert_eq!(
            (var.depth, var.embed_dim, var.num_heads, var.num_classes),
            (16, 1024, 16, 1000)
        );
        // VAR's default is plain attention; build_vae_var turns cosine attention on.
        assert!(!var.attn_l2_norm);
    }

    #[test]
    fn a_class_entry_overrides_what_the_builder_passes() {
        let (vae, var) = read(json!({
            "build_vae_var": builder(),
            "VAR": { "embed_dim": 192, "num_heads": 3 },
        }));
        let var = var.unwrap();
        assert_eq!((var.depth, var.embed_dim, var.num_heads), (2, 192, 3));
        assert_eq!(var.patch_nums, vec![1, 2, 3, 4]);
        assert_eq!(vae.unwrap().ch, 32);
    }

    #[test]
    fn a_var_without_its_vqvae_names_the_missing_argument() {
        let (vae, var) = read(json!({ "VAR": { "depth": 2 } }));
        let var = var.unwrap_err().to_string();
        assert!(var.contains("vae_local"), "{var}");
        let vae = vae.unwrap_err().to_string();
        assert!(
            vae.contains("VQVAE") && vae.contains("build_vae_var"),
            "{vae}"
        );
    }

    #[test]
    fn a_malformed_argument_is_named_with_its_class() {
        let (_, var) = read(json!({ "build_vae_var": builder(), "VAR": { "num_heads": "two" } }));
        let e = var.unwrap_err().to_string();
        assert!(e.contains("VAR.num_heads") && e.contains("two"), "{e}");
        let mut b = builder();
        b["depth"] = json!(-2);
        let (_, var) = read(json!({ "build_vae_var": b }));
        let e = var.unwrap_err().to_string();
        assert!(e.contains("VAR.depth (as build_vae_var passes it)"), "{e}");
    }

    #[test]
    fn shared_adaln_is_reported_as_unsupported_wherever_it_is_given() {
        let path = Path::new("case.config.json");
        let mut b = builder();
        b["shared_aln"] = json!(true);
        for constructor in [
            json!({ "build_vae_var": b }),
            json!({ "VAR": { "shared_aln": true } }),
        ] {
            let why = unsupported(path, &json!({ "constructor": constructor })).unwrap();
            assert!(why.unwrap().contains("shared_aln"));
        }
        let plain = json!({ "constructor": { "build_vae_var": builder() } });
        assert_eq!(unsupported(path, &plain).unwrap(), None);
    }
}
