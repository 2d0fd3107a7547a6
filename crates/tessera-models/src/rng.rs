//! A tiny seeded CPU random number generator for everything that must be reproducible on every
//! device: random numbers are drawn here and uploaded, never drawn by the backend, so the same
//! seed gives the same samples on the CPU, on a desktop GPU and in the browser.

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, passes BigCrush, trivially seedable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 24 random bits: every value is exactly representable in f32.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// `n` uniforms in `[0, 1)`.
    pub fn uniforms(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }

    /// `n` standard normal draws (Box-Muller on pairs of uniforms; `1 − u` keeps the log finite).
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let (u1, u2) = (1.0 - self.next_f32() as f64, self.next_f32() as f64);
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = std::f64::consts::TAU * u2;
            out.push((r * theta.cos()) as f32);
            out.push((r * theta.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

/// Where a run's images sit in a batch split into parts drawn side by side (one per CPU core):
/// rows `start..start + rows` of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPart {
    pub start: usize,
    pub total: usize,
}

impl BatchPart {
    /// A batch of `total` images cut into `parts` consecutive parts of near-equal size: each
    /// part, and its rows.
    pub fn split(total: usize, parts: usize) -> Vec<(Self, std::ops::Range<usize>)> {
        (0..parts).map(|p| (Self { start: p * total / parts, total }, p * total / parts..(p + 1) * total / parts)).collect()
    }
}

/// The seeded stream of a sampling run, drawn per image: each draw is made for every image of
/// the whole batch, one row after the other, and a part of the batch keeps its own rows. So an
/// image is the same whether its batch was drawn in one piece or in parts.
#[derive(Debug, Clone)]
pub struct BatchRng {
    rng: SplitMix64,
    rows: std::ops::Range<usize>,
    total: usize,
}

impl BatchRng {
    /// The stream of `seed` for `rows` images: the whole batch, or `part` of a larger one.
    ///
    /// # Panics
    /// If the part does not fit its batch.
    pub fn new(seed: u64, rows: usize, part: Option<BatchPart>) -> Self {
        let BatchPart { start, total } = part.unwrap_or(BatchPart { start: 0, total: rows });
        assert!(start + rows <= total, "rows {start}..{} of a batch of {total}", start + rows);
        Self { rng: SplitMix64::new(seed), rows: start..start + rows, total }
    }

    /// This part's rows of `per_row` values per image of the whole batch.
    fn keep(&self, all: Vec<f32>, per_row: usize) -> Vec<f32> {
        if self.rows.len() == self.total {
            return all;
        }
        all[self.rows.start * per_row..self.rows.end * per_row].to_vec()
    }

    /// `per_row` uniforms in `[0, 1)` per image, `[rows, per_row]` row-major.
    pub fn uniforms(&mut self, per_row: usize) -> Vec<f32> {
        let all = self.rng.uniforms(self.total * per_row);
        self.keep(all, per_row)
    }

    /// `per_row` standard normal draws per image, `[rows, per_row]` row-major.
    pub fn normals(&mut self, per_row: usize) -> Vec<f32> {
        let all = self.rng.normals(self.total * per_row);
        self.keep(all, per_row)
    }

    /// `draw` once per image of the whole batch, in order; this part's results.
    pub fn per_row<T>(&mut self, mut draw: impl FnMut(&mut SplitMix64) -> T) -> Vec<T> {
        let all: Vec<T> = (0..self.total).map(|_| draw(&mut self.rng)).collect();
        all.into_iter().skip(self.rows.start).take(self.rows.len()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_fixed_by_the_seed() {
        // Reference values of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(
            SplitMix64::new(7).uniforms(5),
            SplitMix64::new(7).uniforms(5)
        );
    }

    #[test]
    fn normals_have_unit_moments() {
        let x = SplitMix64::new(3).normals(20_001);
        assert_eq!(x.len(), 20_001);
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean}, variance {var}");
        assert!(x.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn uniforms_stay_in_the_unit_interval() {
        let mut rng = SplitMix64::new(1);
        assert!(rng.uniforms(10_000).iter().all(|u| (0.0..1.0).contains(u)));
    }

    #[test]
    fn a_part_of_a_batch_draws_what_the_whole_batch_draws_for_its_rows() {
        // Four kinds of draws one after the other, as a run makes them.
        let draws = |part: Option<BatchPart>, rows: usize| {
            let mut rng = BatchRng::new(9, rows, part);
            [rng.uniforms(3), rng.normals(5), rng.per_row(|r| r.next_f32()), rng.uniforms(1)]
        };
        let whole = draws(None, 5);
        let parts = [(0, 2), (2, 1), (3, 2)].map(|(start, rows)| draws(Some(BatchPart { start, total: 5 }), rows));
        for kind in 0..4 {
            let joined: Vec<f32> = parts.iter().flat_map(|p| p[kind].clone()).collect();
            assert_eq!(joined, whole[kind], "draw {kind}");
        }
        assert_eq!(draws(None, 5), whole, "the stream is fixed by the seed");
        assert_ne!(draws(Some(BatchPart { start: 1, total: 5 }), 2), draws(None, 2), "a part is not the batch's first rows");
        let split = BatchPart::split(5, 3);
        assert_eq!(split.iter().map(|(_, rows)| rows.clone()).collect::<Vec<_>>(), [0..1, 1..3, 3..5]);
        assert!(split.iter().all(|(part, rows)| part.start == rows.start && part.total == 5));
    }
}
