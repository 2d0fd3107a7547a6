//! The one place a generator is built from its checkpoints: `match ModelKind` happens here and
//! nowhere else, so a new family plugs in with one arm.

use std::sync::Arc;

use burn::prelude::*;
use tessera_models::generator::ImageGenerator;
use tessera_models::generator::columns::ColumnsGenerator;
use tessera_models::generator::rar::RarGenerator;
use tessera_models::generator::var::VarGenerator;

use crate::checkpoint::{Checkpoint, ModelKind, fingerprint};
use crate::trainer::TRAIN_SECONDS;
use crate::tokenizer::load_tokenizer;
use crate::var::{VarTrainingConfig, check_tokenizer, load_var};
use crate::{columns, equivariant, rar, vqgan};
use crate::{Error, Result};

/// A generator and its tokenizer, loaded from their checkpoints (training or weights-only) and
/// checked against each other. A generator trained with another tokenizer still loads, with a
/// warning in its info; a pair that cannot work together is an error.
pub fn load_generator(generator: &Checkpoint, tokenizer: &Checkpoint, device: &Device) -> Result<Arc<dyn ImageGenerator>> {
    let seconds = |c: &Checkpoint| c.header.metrics.get(TRAIN_SECONDS).copied();
    let train_seconds = seconds(tokenizer).zip(seconds(generator)).map(|(a, b)| a + b);
    let warning = generator
        .header
        .tokenizer
        .as_ref()
        .filter(|expected| **expected != fingerprint(&tokenizer.weights))
        .map(|_| "the transformer was trained with another tokenizer than this one".to_string());
    match generator.header.kind {
        ModelKind::Var => {
            let (vae_config, vae) = load_tokenizer(tokenizer, device).map_err(|e| e.part("tokenizer"))?;
            let (var_config, var) = load_var(generator, device).map_err(|e| e.part("transformer"))?;
            check_tokenizer(&var_config, &vae).map_err(|e| e.part("pair (the transformer and the tokenizer do not belong together)"))?;
            let class_names = generator.training_config::<VarTrainingConfig>().ok().flatten().map(|c| c.class_names).unwrap_or_default();
            Ok(Arc::new(VarGenerator::new(var, vae, &vae_config, device, class_names, train_seconds, warning)?))
        }
        ModelKind::Rar => {
            let (vqgan_config, vqgan) = vqgan::load_vqgan(tokenizer, device).map_err(|e| e.part("tokenizer"))?;
            let (rar_config, rar) = rar::load_rar(generator, device).map_err(|e| e.part("transformer"))?;
            rar::check_tokenizer(&rar_config, &vqgan).map_err(|e| e.part("pair (the transformer and the tokenizer do not belong together)"))?;
            let class_names = generator.training_config::<rar::RarTrainingConfig>().ok().flatten().map(|c| c.class_names).unwrap_or_default();
            Ok(Arc::new(RarGenerator::new(rar, vqgan, &vqgan_config, device, class_names, train_seconds, warning)?))
        }
        ModelKind::Equivariant => {
            let (tokenizer_config, tokenizer) = columns::load_column_tokenizer(tokenizer, device).map_err(|e| e.part("tokenizer"))?;
            let (config, model) = equivariant::load_equivariant(generator, device).map_err(|e| e.part("transformer"))?;
            equivariant::check_tokenizer(&config, &tokenizer).map_err(|e| e.part("pair (the transformer and the tokenizer do not belong together)"))?;
            let class_names = generator
                .training_config::<equivariant::EquivariantTrainingConfig>()
                .ok()
                .flatten()
                .map(|c| c.class_names)
                .unwrap_or_default();
            let generator = ColumnsGenerator::new(model, tokenizer, &tokenizer_config, config.vae_norm, device, class_names, train_seconds, warning)?;
            Ok(Arc::new(generator))
        }
        kind @ (ModelKind::VarTokenizer | ModelKind::RarTokenizer | ModelKind::ColumnsTokenizer | ModelKind::Judge) => {
            Err(Error::NotAGenerator(kind))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAR: &[u8] = include_bytes!("../../../assets/var-tiny/var.ckpt");
    const TOKENIZER: &[u8] = include_bytes!("../../../assets/var-tiny/tokenizer.ckpt");

    #[test]
    fn the_shipped_pair_loads_and_says_what_it_is() {
        let (g, t) = (Checkpoint::from_bytes(VAR).unwrap(), Checkpoint::from_bytes(TOKENIZER).unwrap());
        let generator = load_generator(&g, &t, &Device::flex()).unwrap();
        let info = generator.info();
        assert_eq!((info.method, info.num_classes, info.channels, info.height), ("var", 10, 1, 32));
        assert_eq!(info.class_name(3), "3");
        assert!(info.warning.is_none(), "{:?}", info.warning);
        assert!(info.train_seconds.is_some_and(|s| s > 60.0), "{:?}", info.train_seconds);
        assert!(info.check_class(9).is_ok());
        let e = info.check_class(10).unwrap_err().to_string();
        assert!(e.contains("out of range") && e.contains("0 to 9"), "{e}");
    }

    /// `checkpoint` with its model config's `field` set to `value`, read back through bytes: the
    /// checksum is recomputed, as anyone editing a file can.
    fn edited(checkpoint: &Checkpoint, field: &str, value: serde_json::Value) -> Checkpoint {
        let mut c = checkpoint.clone();
        c.header.model_config[field] = value;
        Checkpoint::from_bytes(&c.to_bytes()).unwrap()
    }

    #[test]
    fn edited_configs_are_refused_before_the_model_is_built() {
        let (g, t) = (Checkpoint::from_bytes(VAR).unwrap(), Checkpoint::from_bytes(TOKENIZER).unwrap());
        let cases = [
            ("embed_dim", serde_json::json!(1_000_000), "embed_dim must be in 1..=8192"),
            ("num_classes", serde_json::json!(0), "num_classes must be in 1..="),
            // Within the bounds, but far more than the file's weights: refused before building.
            ("embed_dim", serde_json::json!(8192), "implies at least"),
            ("depth", serde_json::json!(256), "implies at least"),
        ];
        for (field, value, says) in cases {
            let e = load_generator(&edited(&g, field, value.clone()), &t, &Device::flex()).err().unwrap().to_string();
            assert!(e.contains(says) && e.contains("transformer"), "{field} {value}: {e}");
        }
        let e = load_generator(&g, &edited(&t, "in_channels", serde_json::json!(2)), &Device::flex()).err().unwrap().to_string();
        assert!(e.contains("in_channels must be 1 (grayscale) or 3 (RGB), got 2") && e.contains("tokenizer"), "{e}");
        let e = load_generator(&g, &edited(&t, "ch", serde_json::json!(1024)), &Device::flex()).err().unwrap().to_string();
        assert!(e.contains("implies at least"), "{e}");
    }

    #[test]
    fn every_shipped_checkpoint_holds_the_weights_its_config_implies() {
        let pairs: [(&[u8], &[u8]); 3] = [
            (include_bytes!("../../../assets/rar-tiny/rar.ckpt"), include_bytes!("../../../assets/rar-tiny/tokenizer.ckpt")),
            (include_bytes!("../../../assets/columns-mnist/equivariant.ckpt"), include_bytes!("../../../assets/columns-mnist/tokenizer.ckpt")),
            (include_bytes!("../../../assets/columns-scenes/equivariant.ckpt"), include_bytes!("../../../assets/columns-scenes/tokenizer.ckpt")),
        ];
        for (g, t) in pairs {
            let (g, t) = (Checkpoint::from_bytes(g).unwrap(), Checkpoint::from_bytes(t).unwrap());
            load_generator(&g, &t, &Device::flex()).unwrap();
        }
        for judge in [&include_bytes!("../../../assets/judge-mnist/judge.ckpt")[..], &include_bytes!("../../../assets/judge-scenes/judge.ckpt")[..]] {
            crate::judge::load_judge(&Checkpoint::from_bytes(judge).unwrap(), &Device::flex()).unwrap();
        }
    }

    #[test]
    fn swapped_files_are_a_clear_error() {
        let (g, t) = (Checkpoint::from_bytes(VAR).unwrap(), Checkpoint::from_bytes(TOKENIZER).unwrap());
        let e = load_generator(&t, &g, &Device::flex()).err().unwrap().to_string();
        assert!(e.contains("VAR tokenizer") && e.contains("not a generator"), "{e}");
        let e = load_generator(&g, &g, &Device::flex()).err().unwrap().to_string();
        assert!(e.contains("loading the tokenizer"), "{e}");
    }
}
