//! A training step's batch cut into parts that run side by side, one per CPU core, as sampling
//! does ([`tessera_models::generator`]'s `side_by_side`): each core runs its own part's forward
//! and backward passes, and no op waits at its end for another part's half. The gradients of the
//! parts are summed, so the update is the whole batch's, up to float rounding.
//!
//! Each part differentiates its own copy of the parameter leaves ([`own_leaves`]): burn's autodiff
//! keeps one graph per set of connected tensors behind one lock, and parts sharing the leaves
//! would be one graph, with their backward passes one after the other. So a part's step must not
//! use any other tracked tensor it shares with another part. Each part's loss is its mean,
//! weighted by its share of the batch. Dropout in a part draws from the part's own seeded stream
//! ([`tessera_models::dropout::with_stream`]): a run, and its resume, take the same steps on a
//! machine with the same number of threads (the split depends on it).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use tessera_models::dropout::with_stream;
use tessera_models::rng::BatchPart;

use crate::data::mix;

/// A part: its rows of the batch ([`split`]'s range) and its share of the step's inputs.
pub(crate) type Part<I> = (std::ops::Range<usize>, I);

/// The most parts a step is cut into: each part holds a whole copy of the gradients until they
/// are summed, and on a many-core machine the parts' ops still spread over the other cores.
const MAX_PARTS: usize = 8;

/// How a step of `rows` images on `device` is cut: one range per part (one per core on the CPU,
/// at most [`MAX_PARTS`]).
pub(crate) fn split(device: &Device, rows: usize) -> Vec<std::ops::Range<usize>> {
    let parts = tessera_kernels::cpu::batch_parts(device, rows).min(MAX_PARTS);
    BatchPart::split(rows, parts).into_iter().map(|(_, rows)| rows).collect()
}

/// `step` of every part on `model`, backpropagated side by side. A part's step gives its loss
/// (its mean, `[1]`, with autodiff) and the means it reports besides (`[1]` each, without). Part
/// `p`'s dropout masks come from the stream of `mix(dropout_seed, p)`. Returns the batch's loss
/// and reports (the parts' weighted by their shares) and the summed gradients of `model`'s
/// parameters.
pub(crate) fn gradients<M, I>(
    model: &M,
    parts: Vec<Part<I>>,
    dropout_seed: u64,
    step: impl Fn(&M, I) -> (Tensor<1>, Vec<Tensor<1>>) + Sync,
) -> (Vec<Tensor<1>>, GradientsParams)
where
    M: Module + Sync,
    I: Send,
{
    let (single, total) = (parts.len() == 1, parts.iter().map(|(rows, _)| rows.len()).sum::<usize>());
    // The copies are made here, one thread, before the parts start.
    let mut parts: Vec<Option<(u64, M, Part<I>)>> = parts
        .into_iter()
        .enumerate()
        .map(|(p, part)| Some((mix(dropout_seed, p as u64), if single { model.clone() } else { own_leaves(model) }, part)))
        .collect();
    let outcomes = tessera_kernels::cpu::side_by_side(&mut parts, |part| {
        let (stream, own, (rows, input)) = part.take().expect("each part runs once");
        let share = rows.len() as f64 / total as f64;
        with_stream(stream, || {
            let (loss, reports) = step(&own, input);
            let loss = loss * share;
            let grads = GradientsParams::from_grads(loss.backward(), &own);
            let reports: Vec<Tensor<1>> = std::iter::once(loss.inner()).chain(reports.into_iter().map(|r| r * share)).collect();
            (reports, grads)
        })
    });
    let (reports, grads): (Vec<_>, Vec<_>) = outcomes.into_iter().unzip();
    let reports = reports.into_iter().reduce(|a, b| a.into_iter().zip(b).map(|(a, b)| a + b).collect()).expect("a batch has a part");
    (reports, sum(model, grads))
}

/// `f` of consecutive rows of `x` (the first dim), side by side on the CPU's cores, joined along
/// the first dim: for work without gradients, such as a frozen tokenizer's encoding.
pub(crate) fn by_rows<const D: usize, const E: usize>(x: Tensor<D>, f: impl Fn(Tensor<D>) -> Tensor<E> + Sync) -> Tensor<E> {
    let mut inputs: Vec<Tensor<D>> = split(&x.device(), x.dims()[0]).into_iter().map(|rows| x.clone().narrow(0, rows.start, rows.len())).collect();
    if inputs.len() == 1 {
        return f(x);
    }
    Tensor::cat(tessera_kernels::cpu::side_by_side(&mut inputs, |rows| f(rows.clone())), 0)
}

/// `model` with new leaves for its parameters (same values, same ids, the same ones trained).
fn own_leaves<M: Module>(model: &M) -> M {
    struct Leaves;
    impl ModuleMapper for Leaves {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            // A new node that keeps `require_grad`.
            Param::from_mapped_value(id, tensor.detach(), mapper)
        }
    }
    model.clone().map(&mut Leaves)
}

/// The parts' gradients summed per parameter, in part order (the same bits on every run).
fn sum<M: Module>(model: &M, mut parts: Vec<GradientsParams>) -> GradientsParams {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    struct Sum {
        parts: Vec<GradientsParams>,
        out: GradientsParams,
    }
    impl ModuleVisitor for Sum {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let total = self.parts.iter_mut().filter_map(|g| g.remove::<D>(param.id)).reduce(|a, b| a + b);
            if let Some(total) = total {
                self.out.register(param.id, total);
            }
        }
    }
    let mut visitor = Sum { parts, out: GradientsParams::new() };
    model.visit(&mut visitor);
    visitor.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_cut_into_one_part_per_thread_up_to_the_most_parts() {
        let device = Device::flex();
        let on = |threads: usize, rows: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| split(&device, rows))
        };
        assert_eq!(on(3, 8), vec![0..2, 2..5, 5..8]);
        assert_eq!(on(4, 2), vec![0..1, 1..2], "no empty part");
        let many = on(2 * MAX_PARTS, 64);
        assert_eq!(many.len(), MAX_PARTS);
        assert_eq!(many.iter().map(|r| r.len()).sum::<usize>(), 64);
    }
}
