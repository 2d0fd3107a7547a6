//! Learning-rate schedules: linear warm-up, then VAR's `lin0` (hold, then linear decay) or a
//! cosine or no decay.
//! Official: FoundationVision/VAR @78b95394, `utils/lr_control.py` (`lr_wd_annealing`).
//!
//! Differences from the official code: the warm-up length is a fraction of the run instead of
//! `ep / 50` epochs (the official default is the same 2 %), and the weight decay is not annealed
//! (the official `twde` equals `twd` for every size up to d24).

use burn::config::Config;

/// What the learning rate does after the warm-up.
#[derive(Config, Debug, PartialEq, Eq)]
pub enum Decay {
    /// Stay at the peak.
    Constant,
    /// Official `lin0`: the peak for the first 5 % of the post-warm-up steps, then linear to
    /// `end_ratio · peak` at the last step.
    Lin0,
    /// Official `cos`: half a cosine from the peak to `end_ratio · peak`.
    Cosine,
}

/// A learning-rate schedule over a run of `total_steps` optimizer steps.
#[derive(Config, Debug)]
pub struct LrScheduleConfig {
    /// Peak learning rate (official: `tblr · batch / 256`, `tblr = 1e-4` for VAR-d16).
    pub peak_lr: f64,
    /// Fraction of the run spent warming up (official: `ep / 50` epochs, i.e. 2 %).
    #[config(default = 0.02)]
    pub warmup_fraction: f64,
    /// Learning rate at step 0 as a fraction of the peak (official `wp0`).
    #[config(default = 0.005)]
    pub warmup_start: f64,
    /// Learning rate at the last step as a fraction of the peak (official `wpe`: 0.1 for
    /// d16/d20, 0.01 for d24 and up).
    #[config(default = 0.1)]
    pub end_ratio: f64,
    /// Shape after the warm-up.
    #[config(default = "Decay::Lin0")]
    pub decay: Decay,
}

impl LrScheduleConfig {
    /// Steps of linear warm-up in a run of `total_steps` (official `wp_it = round(...)`).
    pub fn warmup_steps(&self, total_steps: usize) -> usize {
        (self.warmup_fraction * total_steps as f64).round() as usize
    }

    /// The learning rate of optimizer step `step` (0-based) of a `total_steps` run, exactly as
    /// the official `lr_wd_annealing(sche_type, ..., cur_it=step, wp_it, max_it=total_steps)`.
    pub fn lr(&self, step: usize, total_steps: usize) -> f64 {
        let wp = self.warmup_steps(total_steps);
        let ratio = if step < wp {
            self.warmup_start + (1.0 - self.warmup_start) * step as f64 / wp as f64
        } else {
            // Fraction of the post-warm-up phase passed, 0 at the first step after the warm-up
            // and 1 at the last step (official `pasd`); a one-step phase counts as the start.
            let span = (total_steps as f64 - 1.0 - wp as f64).max(1.0);
            let passed = ((step - wp) as f64 / span).min(1.0);
            let rest = 1.0 - passed;
            let end = self.end_ratio;
            match self.decay {
                Decay::Constant => 1.0,
                Decay::Cosine => end + (1.0 - end) * (0.5 + 0.5 * (std::f64::consts::PI * passed).cos()),
                Decay::Lin0 => {
                    const HOLD: f64 = 0.05;
                    if passed < HOLD { 1.0 } else { end + (1.0 - end) * rest / (1.0 - HOLD) }
                }
            }
        };
        ratio * self.peak_lr
    }

    /// Checks the numbers once, when a training config is built or loaded.
    pub fn validate(&self) -> crate::Result<()> {
        let ok = self.peak_lr.is_finite()
            && self.peak_lr > 0.0
            && (0.0..1.0).contains(&self.warmup_fraction)
            && (0.0..=1.0).contains(&self.warmup_start)
            && (0.0..=1.0).contains(&self.end_ratio);
        if ok {
            Ok(())
        } else {
            Err(crate::Error::Config(format!("learning-rate schedule out of range: {self:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn lin0_matches_the_official_values_at_known_steps() {
        // 1000 steps, 2 % warm-up: wp_it = 20; post-warm-up span = 1000 - 1 - 20 = 979 steps.
        let s = LrScheduleConfig::new(1e-3);
        assert_eq!(s.warmup_steps(1000), 20);
        assert!(close(s.lr(0, 1000), 0.005e-3)); // wp0 · peak
        assert!(close(s.lr(10, 1000), (0.005 + 0.995 * 0.5) * 1e-3)); // half-way up
        assert!(close(s.lr(20, 1000), 1e-3)); // peak at the end of the warm-up
        assert!(close(s.lr(68, 1000), 1e-3)); // (68 - 20) / 979 = 0.049 < 5 %: still held
        // (520 - 20) / 979 = 0.51073: 0.1 + 0.9 · (1 - 0.51073) / 0.95
        let pasd: f64 = 500.0 / 979.0;
        assert!(close(s.lr(520, 1000), (0.1 + 0.9 * (1.0 - pasd) / 0.95) * 1e-3));
        assert!(close(s.lr(999, 1000), 0.1e-3)); // wpe · peak at the last step
    }

    #[test]
    fn cosine_and_constant_decays_end_where_they_should() {
        let cos = LrScheduleConfig::new(2.0).with_decay(Decay::Cosine).with_end_ratio(0.01);
        assert!(close(cos.lr(20, 1000), 2.0));
        assert!(close(cos.lr(999, 1000), 0.02));
        let mid = 20 + 979 / 2; // passed ≈ 0.4995
        assert!((cos.lr(mid, 1000) - 1.01).abs() < 0.01);
        let constant = LrScheduleConfig::new(2.0).with_decay(Decay::Constant);
        assert!(close(constant.lr(999, 1000), 2.0));
    }

    #[test]
    fn tiny_runs_do_not_divide_by_zero() {
        let s = LrScheduleConfig::new(1.0);
        for total in 1..5 {
            for step in 0..total {
                let lr = s.lr(step, total);
                assert!(lr.is_finite() && lr > 0.0, "step {step} of {total}: {lr}");
            }
        }
        assert!(LrScheduleConfig::new(-1.0).validate().is_err());
        assert!(LrScheduleConfig::new(1.0).with_warmup_fraction(1.5).validate().is_err());
    }
}
