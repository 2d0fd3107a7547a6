//! The largest single buffer a model's step allocates, from its config: a GPU refuses buffers
//! over its limit (WebGPU's defaults: 256 MiB a buffer, 128 MiB a storage binding), and wgpu
//! reports that as a panic, which in the browser ends the page. Runs and generations [`check`]
//! their estimate against the device's limit before they start.
//!
//! The figures come from the biggest tensors, in floats per image: a convolution level's
//! activations (channels × pixels), and a transformer's widest activations, its MLP or its
//! logits (tokens × width). Attention scores are left out (the fused kernels never hold them).
//! Each figure is a tensor the step really holds in one buffer, so a refusal is never wrong;
//! the largest buffer may be somewhat larger than the estimate.

/// Floats of the largest activation of a conv stack with `channels[i]` channels at level `i`,
/// on a `height` × `width` image halved per level in height, and in width too when
/// `halve_width` (column tokenizers keep some of their width).
pub fn conv_floats(channels: impl IntoIterator<Item = usize>, height: usize, width: usize, halve_width: bool) -> u64 {
    channels
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (h, w) = (height >> i, if halve_width { width >> i } else { width });
            (c * h.max(1) * w.max(1)) as u64
        })
        .max()
        .unwrap_or(0)
}

/// Floats of a transformer step's largest tensor on `tokens` tokens whose widest projection
/// (MLP or logits) has `hidden` outputs.
pub fn transformer_floats(tokens: usize, hidden: usize) -> u64 {
    (tokens * hidden) as u64
}

/// Errors, saying how many would fit, unless `count` images of `floats_per_image` each fit in
/// one buffer of at most `limit` bytes (`None`: no limit, the CPU backend). `what` names the
/// request ("a batch"), `unit` what it counts ("images per step").
pub fn check(what: &str, count: usize, unit: &str, floats_per_image: u64, limit: Option<u64>) -> Result<(), String> {
    let Some(limit) = limit else { return Ok(()) };
    let bytes = (count as u64).saturating_mul(floats_per_image).saturating_mul(4);
    if bytes <= limit {
        return Ok(());
    }
    let fits = limit / floats_per_image.saturating_mul(4).max(1);
    let mib = |b: u64| b.div_ceil(1 << 20);
    let advice = if fits == 0 { "even one image is too many for this GPU: use the CPU".to_string() } else { format!("use at most {fits} {unit}") };
    Err(format!("{what} of {count} {unit} needs a GPU buffer of about {} MiB, and this GPU allows {} MiB: {advice}", mib(bytes), mib(limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_take_the_largest_level_and_the_limit_says_what_fits() {
        // 32 channels at 32x32, then 64 at 16x16: the first level is the largest.
        assert_eq!(conv_floats([32, 64], 32, 32, true), 32 * 32 * 32);
        // A column stack keeps its width: the second level counts 64 × 16 × 32.
        assert_eq!(conv_floats([16, 64], 32, 32, false), 64 * 16 * 32);
        assert_eq!(transformer_floats(10, 100), 1000);
        assert!(check("a batch", 1000, "images", 1 << 20, None).is_ok());
        assert!(check("a batch", 32, "images", 1 << 20, Some(128 << 20)).is_ok());
        let e = check("a batch", 33, "images", 1 << 20, Some(128 << 20)).unwrap_err();
        assert_eq!(e, "a batch of 33 images needs a GPU buffer of about 132 MiB, and this GPU allows 128 MiB: use at most 32 images");
        let e = check("a batch", 1, "images", 1 << 30, Some(128 << 20)).unwrap_err();
        assert!(e.ends_with("even one image is too many for this GPU: use the CPU"), "{e}");
    }
}
