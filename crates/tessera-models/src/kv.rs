//! The KV cache of one attention layer: the keys and values of every position so far,
//! `[B, H, len, D]`, kept in buffers sized for the whole sequence. Appending writes only the new
//! positions (burn writes a slice of a tensor nothing else holds in place) and hands back views of
//! the filled part, where `Tensor::cat` copied the whole cache at every step (BENCHMARKS.md).
//! A cloned cache stays a value: writing into a shared buffer copies it first.

use burn::prelude::*;

/// Keys and values of one layer (VAR's and RAR's sampling caches).
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerKv {
    k: Option<Tensor<4>>,
    v: Option<Tensor<4>>,
    len: usize,
    capacity: usize,
}

impl LayerKv {
    /// An empty cache with room for `positions` positions (it grows past them if it must).
    pub fn with_capacity(positions: usize) -> Self {
        Self { capacity: positions, ..Self::default() }
    }

    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends `k` and `v` `[B, H, l, D]` (the next `l` positions) and returns the keys and
    /// values of every position so far, `[B, H, len, D]` views of the buffers.
    pub fn append(&mut self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let l = k.dims()[2];
        let (start, end) = (self.len, self.len + l);
        if end > self.capacity {
            self.capacity = end.max(2 * self.capacity);
        }
        let (k, v) = (write(self.k.take(), k, start, self.capacity), write(self.v.take(), v, start, self.capacity));
        self.len = end;
        self.k = Some(k.clone());
        self.v = Some(v.clone());
        (k.narrow(2, 0, end), v.narrow(2, 0, end))
    }
}

/// `x` written at positions `start..` of `buffer` (a new one of `capacity` positions, holding the
/// old one's first `start`, when it is missing or too small).
fn write(buffer: Option<Tensor<4>>, x: Tensor<4>, start: usize, capacity: usize) -> Tensor<4> {
    let [b, h, l, d] = x.dims();
    let buffer = match buffer {
        Some(buf) if buf.dims()[2] == capacity => buf,
        old => {
            let fresh = Tensor::zeros([b, h, capacity, d], &x.device());
            match old {
                Some(old) if start > 0 => fresh.slice_assign([0..b, 0..h, 0..start, 0..d], old.narrow(2, 0, start)),
                _ => fresh,
            }
        }
    };
    buffer.slice_assign([0..b, 0..h, start..start + l, 0..d], x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn appending_equals_concatenating_and_clones_stay_values() {
        let device = Device::flex();
        let part = |l: usize| Tensor::<4>::random([2, 3, l, 4], Distribution::Uniform(-1.0, 1.0), &device);
        // Room for 5 positions, then 9: the buffer grows once.
        let mut cache = LayerKv::with_capacity(5);
        let (mut want_k, mut want_v): (Option<Tensor<4>>, Option<Tensor<4>>) = (None, None);
        let mut snapshot = None;
        for (i, l) in [1, 4, 4].into_iter().enumerate() {
            let (k, v) = (part(l), part(l));
            want_k = Some(want_k.map_or(k.clone(), |w| Tensor::cat(vec![w, k.clone()], 2)));
            want_v = Some(want_v.map_or(v.clone(), |w| Tensor::cat(vec![w, v.clone()], 2)));
            let (got_k, got_v) = cache.append(k, v);
            assert_eq!(cache.len(), want_k.as_ref().unwrap().dims()[2]);
            got_k.into_data().assert_eq(&want_k.clone().unwrap().into_data(), true);
            got_v.into_data().assert_eq(&want_v.clone().unwrap().into_data(), true);
            if i == 0 {
                snapshot = Some((cache.clone(), want_k.clone().unwrap()));
            }
        }
        // The clone taken after the first step still holds that step only.
        let (mut early, early_k) = snapshot.unwrap();
        let (k, _) = early.append(part(2), part(2));
        k.narrow(2, 0, 1).into_data().assert_eq(&early_k.into_data(), true);
    }
}
