//! The shipped tiny MNIST tokenizer (`assets/var-tiny/tokenizer.ckpt`): images → token maps →
//! images keeps held-out digits (the round trip VAR's samples rely on), and re-encoding a
//! reconstruction keeps its coarse codes.

use burn::prelude::*;
use tessera_data::Mnist;
use tessera_train::data::load_batch;
use tessera_train::tokenizer::{load_tokenizer, psnr_from_mse};
use tessera_train::Checkpoint;

#[test]
fn held_out_digits_survive_the_token_round_trip() {
    let device = Device::flex();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/var-tiny/tokenizer.ckpt");
    let (config, vae) = load_tokenizer(&Checkpoint::load(&path).unwrap(), &device).unwrap();
    let heldout = Mnist::heldout();
    let indices: Vec<usize> = (0..32).collect();
    let (images, _) = load_batch(&heldout, &indices, &device); // [-1, 1]

    let idx = vae.image_to_idx(images.clone());
    assert_eq!(idx.len(), config.patch_nums.len());
    for (map, pn) in idx.iter().zip(&config.patch_nums) {
        assert_eq!(map.dims(), [32, pn * pn]);
    }
    let decoded = vae.idx_to_image(&idx); // [-1, 1]
    let mse = mean(decoded - images, true);
    let psnr = psnr_from_mse(mse);
    assert!(psnr > 22.0, "held-out reconstruction PSNR {psnr:.2} dB");

    // Re-encoding the reconstruction lands on mostly the same coarse codes.
    let again = vae.image_to_idx(vae.idx_to_image(&idx));
    let same = mean(again[0].clone().equal(idx[0].clone()).float().unsqueeze::<4>(), false);
    assert!(same > 0.9, "first-scale codes kept on re-encoding: {same}");
}

/// Mean of `t` (of its squares with `square`), read back.
fn mean(t: Tensor<4>, square: bool) -> f64 {
    let t = if square { t.powi_scalar(2) } else { t };
    t.mean().into_data().iter::<f32>().next().unwrap() as f64
}
