//! A batch drawn as parts side by side, one run per CPU core ([`ImageGenerator::start`] on burn's
//! CPU backend). burn's ops, `gemm` and the CPU kernels each spread one op over the cores and wait
//! for the slowest part at its end; between ops a core idles or sleeps, and waking it again costs a
//! system call. A thread per part keeps every core on its own ops, with no hand-over in between:
//! VAR samples 30-50% more images per second at batch 16 and 64 on 2 cores (BENCHMARKS.md). Each
//! part draws its random numbers as the whole batch would ([`crate::rng::BatchRng`]), so the
//! images are the same.

use burn::prelude::*;
use tessera_kernels::cpu::side_by_side;

use super::{Chosen, Edit, ImageGenerator, SampleRequest, Sampling, Step};
use crate::rng::BatchPart;

/// Starts `parts` runs over consecutive rows of `request`'s batch.
pub(super) fn start<'a, G: ImageGenerator + ?Sized>(
    generator: &'a G,
    request: &SampleRequest,
    edit: Option<&Edit>,
    parts: usize,
) -> crate::Result<Box<dyn Sampling + 'a>> {
    let runs = BatchPart::split(request.classes.len(), parts)
        .into_iter()
        .map(|(part, rows)| {
            let part = SampleRequest { classes: request.classes[rows].to_vec(), part: Some(part), ..request.clone() };
            generator.start_part(&part, edit)
        })
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(Box::new(SideBySide { runs }))
}

/// Runs over consecutive parts of one batch, advanced together.
struct SideBySide<'a> {
    runs: Vec<Box<dyn Sampling + 'a>>,
}

impl Sampling for SideBySide<'_> {
    fn steps(&self) -> usize {
        self.runs[0].steps()
    }

    fn step(&mut self) -> Option<Step> {
        let steps: Option<Vec<Step>> = side_by_side(&mut self.runs, |run| run.step()).into_iter().collect();
        Some(joined(steps?))
    }

    fn images(&self) -> Tensor<4> {
        let mut runs: Vec<&(dyn Sampling + '_)> = self.runs.iter().map(|r| r.as_ref()).collect();
        Tensor::cat(side_by_side(&mut runs, |run| run.images()), 0)
    }

    fn extend(&mut self, columns: usize) -> bool {
        // The parts are the same model at the same width: they all extend or none does.
        let extended: Vec<bool> = self.runs.iter_mut().map(|run| run.extend(columns)).collect();
        assert!(extended.iter().all(|&e| e == extended[0]), "the parts of a batch extend alike");
        extended[0]
    }
}

/// One step of the whole batch from its parts' steps (the same step of each).
fn joined(steps: Vec<Step>) -> Step {
    let partial = steps.iter().map(|s| s.partial.clone()).collect::<Option<Vec<_>>>().map(|p| Tensor::cat(p, 0));
    let chosen = match &steps[0].chosen {
        Chosen::Codes { .. } => {
            let (mut codes, mut current) = (Vec::new(), Vec::new());
            for step in &steps {
                if let Chosen::Codes { codes: c, current: cur } = &step.chosen {
                    codes.push(c.clone());
                    current.extend_from_slice(cur);
                }
            }
            Chosen::Codes { codes: Tensor::cat(codes, 0), current }
        }
        columns @ Chosen::Columns { .. } => columns.clone(),
    };
    let first = steps.into_iter().next().expect("at least one part");
    Step { index: first.index, label: first.label, chosen, partial }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::FillOrder;
    use crate::generator::rar::RarGenerator;
    use crate::generator::var::VarGenerator;
    use crate::generators::rar::RarConfig;

    /// Small random generators of the three families.
    fn generators(device: &Device) -> Vec<Box<dyn ImageGenerator>> {
        device.seed(4);
        let vae_config = crate::sampling::var::tests::vae_config();
        let var = crate::sampling::var::tests::var(device);
        let var = VarGenerator::new(var, vae_config.init(device), &vae_config, device, Vec::new(), None, None).unwrap();
        let vqgan_config = crate::tokenizers::vqgan::tests::small();
        let rar = RarConfig::new(16, 3, vqgan_config.seq_len(), 32, 2, 4, 64).with_dropout(0.0).init(device);
        let rar = RarGenerator::new(rar, vqgan_config.init(device), &vqgan_config, device, Vec::new(), None, None).unwrap();
        let columns = crate::generator::columns::tests::generator(device);
        vec![Box::new(var), Box::new(rar), Box::new(columns)]
    }

    /// Every step's label, codes, current cells and partial images, then the final images.
    fn drawn(mut run: Box<dyn Sampling + '_>) -> (Vec<(String, Vec<i64>, Vec<usize>, Vec<f32>)>, Vec<f32>) {
        let mut steps = Vec::new();
        while let Some(step) = run.step() {
            let (codes, current) = match step.chosen {
                Chosen::Codes { codes, current } => (codes.try_into_vec_as::<i64>().unwrap(), current),
                Chosen::Columns { done, total } => (vec![done as i64, total as i64], Vec::new()),
            };
            let partial = step.partial.map(|p| p.try_into_vec_as::<f32>().unwrap()).unwrap_or_default();
            steps.push((step.label, codes, current, partial));
        }
        (steps, run.images().try_into_vec_as::<f32>().unwrap())
    }

    #[test]
    fn a_batch_drawn_in_parts_is_the_batch_drawn_whole() {
        let device = Device::flex();
        for generator in generators(&device) {
            let family = generator.info().family;
            let request = SampleRequest {
                classes: vec![0, 1, 2, 1, 0],
                seed: 3,
                guidance: 2.0,
                top_k: 12,
                partials: true,
                fill_order: FillOrder::Random,
                ..Default::default()
            };
            let (whole_steps, whole) = drawn(generator.start_part(&request, None).unwrap());
            assert!(!whole_steps.is_empty());
            for parts in [2, 3, 5] {
                let (steps, images) = drawn(start(generator.as_ref(), &request, None, parts).unwrap());
                assert_eq!(steps.len(), whole_steps.len(), "{family:?} in {parts} parts");
                for (i, (got, want)) in steps.iter().zip(&whole_steps).enumerate() {
                    assert_eq!((&got.0, &got.1, &got.2), (&want.0, &want.1, &want.2), "{family:?} in {parts} parts, step {i}");
                    let gap = got.3.iter().zip(&want.3).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(got.3.len() == want.3.len() && gap < 1e-5, "{family:?} in {parts} parts, step {i}: partials differ by {gap}");
                }
                let gap = images.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(images.len() == whole.len() && gap < 1e-5, "{family:?} in {parts} parts: images differ by {gap}");
            }
        }
    }
}
