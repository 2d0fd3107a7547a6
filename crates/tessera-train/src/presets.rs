//! Size presets: a tokenizer and a transformer that go together, with their training runs.
//!
//! | preset | image | tokenizer | transformer | run |
//! |---|---|---|---|---|
//! | `Tiny` | 32 px | ch 16, ×(1,2,2) → 8×8×8 latent, V 256, scales 1,2,3,4,5,6,8 (155 tokens) | depth 4, width 128, 4 heads, MLP ×2 (≈1.0 M params) | MNIST on a 2-core CPU in under 30 min in all |
//! | `Small` | 32 px | ch 64, ×(1,2,2) → 8×8×16 latent, V 512 | depth 6, width 384, 6 heads (≈16 M) | a GPU; richer datasets (scenes, folders) |
//!
//! The official `build_vae_var` ties width = 64·depth and heads = depth (head dim 64) with an MLP
//! ratio of 4; `Tiny` decouples them (width 128 with depth 4, head dim 32, MLP ratio 2) because a
//! 2-core CPU affords about a million parameters in the time (on burn's CPU backend the
//! tanh-GELU of a ×4 MLP alone costs a quarter of a step), and `Small` follows the tie's head
//! count with a narrower width. Both use
//! the official `init_adaln_gamma` of the smallest README runs (1e-3) and `lin0` schedules.

use burn::config::Config;
use tessera_models::generators::equivariant::EquivariantConfig;
use tessera_models::generators::rar::RarConfig;
use tessera_models::tokenizers::columns::ColumnTokenizerConfig;
use tessera_models::generators::var::VarConfig;
use tessera_models::tokenizers::vqgan::VqganConfig;
use tessera_models::tokenizers::msvq::{MsVqVaeConfig, PhiSharing};

use crate::columns::ColumnTokenizerTrainingConfig;
use crate::equivariant::EquivariantTrainingConfig;
use crate::optim::AdamWConfig;
use crate::rar::RarTrainingConfig;
use crate::schedule::{Decay, LrScheduleConfig};
use crate::vqgan::VqganTrainingConfig;
use crate::tokenizer::{DeadCodeConfig, TokenizerLossConfig, TokenizerTrainingConfig};
use crate::var::VarTrainingConfig;

/// A named size of the VAR tokenizer + transformer pair.
#[derive(Config, Debug, PartialEq, Eq)]
pub enum VarPreset {
    /// 32 px, about a million transformer parameters: trains on MNIST on a laptop CPU.
    Tiny,
    /// 32 px, about 16 M transformer parameters: for a GPU.
    Small,
}

// A plain name; burn's `Config` derive gives `Clone` only.
impl Copy for VarPreset {}

impl VarPreset {
    /// Every preset, smallest first.
    pub const ALL: [VarPreset; 2] = [VarPreset::Tiny, VarPreset::Small];

    /// Lower-case name, as the CLI spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Small => "small",
        }
    }

    /// Image side the preset's tokenizer works at.
    pub fn image_size(&self) -> usize {
        32
    }

    /// The tokenizer for images with `channels` channels (1 or 3).
    pub fn tokenizer(&self, channels: usize) -> MsVqVaeConfig {
        let base = MsVqVaeConfig::new()
            .with_in_channels(channels)
            .with_ch_mult(vec![1, 2, 2]) // 32 → 16 → 8: downsampling 4
            .with_num_res_blocks(1)
            .with_num_groups(8)
            .with_using_sa(false) // attention only in the middle, at 8×8
            .with_using_mid_sa(true)
            .with_phi_sharing(PhiSharing::Partial(4))
            .with_patch_nums(vec![1, 2, 3, 4, 5, 6, 8]);
        match self {
            Self::Tiny => base.with_ch(16).with_vocab_size(256).with_z_channels(8),
            Self::Small => base.with_ch(64).with_vocab_size(512).with_z_channels(16),
        }
    }

    /// The tokenizer's training run.
    pub fn tokenizer_training(&self, channels: usize) -> TokenizerTrainingConfig {
        let (steps, batch, lr) = match self {
            Self::Tiny => (500, 32, 2e-3),
            Self::Small => (20_000, 64, 1e-3),
        };
        TokenizerTrainingConfig::new(
            self.tokenizer(channels),
            LrScheduleConfig::new(lr).with_warmup_fraction(0.03),
            steps,
            batch,
        )
        .with_optimizer(AdamWConfig::new().with_weight_decay(0.0))
        .with_loss(TokenizerLossConfig::new().with_l1(0.1))
        .with_dead_codes(DeadCodeConfig::new().with_every(50))
    }

    /// The transformer for `tokenizer`'s token maps and `num_classes` classes.
    pub fn var(&self, tokenizer: &MsVqVaeConfig, num_classes: usize) -> VarConfig {
        let (depth, width, heads, mlp_ratio) = match self {
            Self::Tiny => (4, 128, 4, 2.0),
            Self::Small => (6, 384, 6, 4.0),
        };
        VarConfig::new(
            tokenizer.patch_nums.clone(),
            tokenizer.vocab_size,
            tokenizer.z_channels,
            num_classes,
            depth,
            width,
            heads,
        )
        .with_mlp_ratio(mlp_ratio)
        .with_init_adaln_gamma(1e-3)
    }

    /// The transformer's training run.
    pub fn var_training(&self, tokenizer: &MsVqVaeConfig, num_classes: usize) -> VarTrainingConfig {
        let (steps, batch, lr) = match self {
            Self::Tiny => (600, 32, 2e-3),
            Self::Small => (30_000, 128, 4e-4),
        };
        VarTrainingConfig::new(self.var(tokenizer, num_classes), LrScheduleConfig::new(lr).with_warmup_fraction(0.03), steps, batch)
    }
}

impl std::str::FromStr for VarPreset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown preset '{s}': use tiny or small"))
    }
}

/// A named size of the RAR tokenizer + transformer pair, with the same names as [`VarPreset`]
/// (`--preset tiny` means the tiny pair of whichever family is trained).
///
/// | preset | image | tokenizer (MaskGIT-VQGAN) | transformer | run |
/// |---|---|---|---|---|
/// | `Tiny` | 32 px | hidden 32, ×(1,1,2) → 8×8 codes of 16 wide, V 256 | depth 4, width 128, 4 heads, MLP 256 (≈1.3 M params) | MNIST on a 2-core CPU in under 30 min in all |
/// | `Small` | 32 px | hidden 64, ×(1,1,2), V 512 | depth 6, width 384, 6 heads, MLP 1536 | a GPU |
///
/// `Tiny` drops the official dropout (0.1): in a run of a thousand steps it only slows learning;
/// label dropout (0.1) stays, guidance needs it.
#[derive(Config, Debug, PartialEq, Eq)]
pub enum RarPreset {
    Tiny,
    Small,
}

impl Copy for RarPreset {}

impl From<VarPreset> for RarPreset {
    /// The RAR pair of the same size name.
    fn from(preset: VarPreset) -> Self {
        match preset {
            VarPreset::Tiny => Self::Tiny,
            VarPreset::Small => Self::Small,
        }
    }
}

impl RarPreset {
    /// The tokenizer for images with `channels` channels (1 or 3).
    pub fn tokenizer(&self, channels: usize) -> VqganConfig {
        let base = VqganConfig::mnist().with_num_channels(channels);
        match self {
            Self::Tiny => base,
            Self::Small => base.with_hidden_channels(64).with_codebook_size(512),
        }
    }

    /// The tokenizer's training run.
    pub fn tokenizer_training(&self, channels: usize) -> VqganTrainingConfig {
        let (steps, batch, lr) = match self {
            Self::Tiny => (500, 32, 2e-3),
            Self::Small => (20_000, 64, 1e-3),
        };
        VqganTrainingConfig::new(self.tokenizer(channels), LrScheduleConfig::new(lr).with_warmup_fraction(0.03), steps, batch)
            .with_loss(TokenizerLossConfig::new().with_l1(0.1))
            .with_dead_codes(DeadCodeConfig::new().with_every(50))
    }

    /// The transformer for `tokenizer`'s codes and `num_classes` classes.
    pub fn rar(&self, tokenizer: &VqganConfig, num_classes: usize) -> RarConfig {
        let (depth, width, heads, mlp, dropout) = match self {
            Self::Tiny => (4, 128, 4, 256, 0.0),
            Self::Small => (6, 384, 6, 1536, 0.1),
        };
        RarConfig::new(tokenizer.codebook_size, num_classes, tokenizer.seq_len(), width, depth, heads, mlp).with_dropout(dropout)
    }

    /// The transformer's training run: the official warm-up from 0 and cosine to 2.5 % of the
    /// peak (`end_lr` 1e-5 of 4e-4), with the warm-up shortened to 5 % of a short run.
    pub fn rar_training(&self, tokenizer: &VqganConfig, num_classes: usize) -> RarTrainingConfig {
        let (steps, batch, lr) = match self {
            Self::Tiny => (1000, 32, 2e-3),
            Self::Small => (30_000, 128, 4e-4),
        };
        let schedule =
            LrScheduleConfig::new(lr).with_warmup_fraction(0.05).with_warmup_start(0.0).with_decay(Decay::Cosine).with_end_ratio(0.025);
        RarTrainingConfig::new(self.rar(tokenizer, num_classes), schedule, steps, batch)
    }
}

/// The equivariant column generator's pair, as `tessera train columns-tokenizer` and
/// `tessera train equivariant` build it.
///
/// | preset | image | tokenizer | transformer | run |
/// |---|---|---|---|---|
/// | `Tiny` | 32 px, 8 columns of 4 px | ch 32, ×(1,1,2), Z 8, tokens of 16 (grey) or 32 (colour) | width 128, 2+2 blocks, 4 heads, window 3, head 3 × 128; 4 condition slots and RoPE shifts < 8 (grey) or 8 and < 16 (colour) | MNIST or scenes on a 2-core CPU |
/// | `Small` | 32 px | the same | width 256, 4+4 blocks, head 6 × 256 | a GPU |
///
/// Grey images (MNIST) get the MNIST tokenizer, colour ones (scenes, pictures) the scenes one.
#[derive(Config, Debug, PartialEq, Eq)]
pub enum ColumnsPreset {
    Tiny,
    Small,
}

impl Copy for ColumnsPreset {}

impl From<VarPreset> for ColumnsPreset {
    /// The column pair of the same size name.
    fn from(preset: VarPreset) -> Self {
        match preset {
            VarPreset::Tiny => Self::Tiny,
            VarPreset::Small => Self::Small,
        }
    }
}

impl ColumnsPreset {
    /// The tokenizer for images with `channels` channels (1: MNIST's, else the scenes').
    pub fn tokenizer(&self, channels: usize) -> ColumnTokenizerConfig {
        match channels {
            1 => ColumnTokenizerConfig::mnist(),
            c => ColumnTokenizerConfig::scenes().with_in_channels(c).with_out_ch(c),
        }
    }

    /// The tokenizer's training run.
    pub fn tokenizer_training(&self, channels: usize) -> ColumnTokenizerTrainingConfig {
        let (steps, batch, lr) = match self {
            Self::Tiny => (800, 32, 2e-3),
            Self::Small => (20_000, 64, 5e-4),
        };
        ColumnTokenizerTrainingConfig::new(self.tokenizer(channels), LrScheduleConfig::new(lr).with_warmup_fraction(0.03), steps, batch)
    }

    /// The transformer for `tokenizer`'s columns and `num_classes` classes.
    pub fn equivariant(&self, tokenizer: &ColumnTokenizerConfig, num_classes: usize) -> EquivariantConfig {
        // Colour pictures get the scenes layout: more condition slots and RoPE shifts up to twice
        // the width, for the images many times wider than training.
        let layout = if tokenizer.in_channels == 1 { EquivariantConfig::mnist() } else { EquivariantConfig::scenes() };
        let base = EquivariantConfig { token_dim: tokenizer.embed_dim, class_num: num_classes, ..layout };
        match self {
            Self::Tiny => base,
            Self::Small => EquivariantConfig { embed_dim: 256, depth: 8, ..base }.with_head_width(256).with_head_depth(6).with_dropout(0.1),
        }
    }

    /// The transformer's training run: warm-up, then (unlike the official constant rate, for runs
    /// a thousand times longer) a cosine decay, which short runs need.
    pub fn equivariant_training(&self, tokenizer: &ColumnTokenizerConfig, num_classes: usize) -> EquivariantTrainingConfig {
        let (steps, batch, lr) = match self {
            Self::Tiny => (1500, 32, 1e-3),
            Self::Small => (30_000, 128, 4e-4),
        };
        let schedule =
            LrScheduleConfig::new(lr).with_warmup_fraction(0.05).with_warmup_start(0.0).with_decay(Decay::Cosine).with_end_ratio(0.05);
        EquivariantTrainingConfig::new(self.equivariant(tokenizer, num_classes), schedule, steps, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_fit_together_and_validate() {
        for preset in VarPreset::ALL {
            let tok = preset.tokenizer_training(1);
            tok.validate().unwrap();
            assert_eq!(tok.model.image_size(), preset.image_size());
            let var = preset.var_training(&tok.model, 10);
            var.validate().unwrap();
            assert_eq!(var.model.seq_len(), 155);
            assert_eq!(preset.name().parse::<VarPreset>().unwrap(), preset);
        }
        assert!("huge".parse::<VarPreset>().is_err());
    }

    #[test]
    fn rar_presets_fit_together_and_validate() {
        for preset in [RarPreset::Tiny, RarPreset::Small] {
            let tok = preset.tokenizer_training(1);
            tok.validate().unwrap();
            assert_eq!(tok.model.seq_len(), 64);
            let rar = preset.rar_training(&tok.model, 10);
            rar.validate().unwrap();
            assert_eq!((rar.model.seq_len, rar.model.codebook_size), (64, tok.model.codebook_size));
        }
    }

    #[test]
    fn column_presets_fit_together_and_validate() {
        for preset in [ColumnsPreset::Tiny, ColumnsPreset::Small] {
            for channels in [1, 3] {
                let tok = preset.tokenizer_training(channels);
                tok.validate().unwrap();
                assert_eq!((tok.model.in_channels, tok.model.column_width()), (channels, 4));
                let eq = preset.equivariant_training(&tok.model, 10);
                eq.validate().unwrap();
                assert_eq!((eq.model.token_dim, eq.model.token_num), (tok.model.embed_dim, 8));
            }
        }
    }
}
