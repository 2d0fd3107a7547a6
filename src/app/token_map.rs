//! A map of chosen codes (one VAR scale, or the tokens of a raster/column generator so far) and
//! how it is drawn: each code gets its own colour, so the eye can follow a code from step to step.

use image::{Rgb, RgbImage};

/// Codes on a `rows × cols` grid, row-major; `None` where nothing has been generated yet
/// (raster and column orders fill their map a bit at a time).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenMap {
    pub rows: usize,
    pub cols: usize,
    pub codes: Vec<Option<u32>>,
    /// The cell chosen at this step (token-by-token generators), drawn outlined.
    pub current: Option<usize>,
}

/// Colour of cells not generated yet.
pub const EMPTY: [u8; 3] = [40, 40, 40];
/// Outline of the cell chosen at the step on screen.
pub const CURRENT: [u8; 3] = [255, 255, 255];

impl TokenMap {
    /// A fully generated map.
    ///
    /// # Panics
    /// If `codes.len() != rows * cols`.
    pub fn full(rows: usize, cols: usize, codes: impl IntoIterator<Item = u32>) -> Self {
        let codes: Vec<Option<u32>> = codes.into_iter().map(Some).collect();
        assert_eq!(codes.len(), rows * cols, "a {rows}×{cols} token map needs {} codes", rows * cols);
        Self { rows, cols, codes, current: None }
    }

    pub fn code_at(&self, row: usize, col: usize) -> Option<u32> {
        self.codes.get(row * self.cols + col).copied().flatten()
    }

    /// One pixel per cell (the UI scales it up without smoothing).
    pub fn to_rgb(&self) -> RgbImage {
        self.to_rgb_sized(self.cols as u32, self.rows as u32)
    }

    /// The map drawn at `width × height` pixels, each pixel taking its cell's colour (nearest
    /// neighbour, so maps whose side does not divide the size still cover it whole); the current
    /// cell gets a white outline.
    pub fn to_rgb_sized(&self, width: u32, height: u32) -> RgbImage {
        let cell = |x: u32, y: u32| (y as usize * self.rows / height as usize, x as usize * self.cols / width as usize);
        RgbImage::from_fn(width, height, |x, y| {
            let (row, col) = cell(x, y);
            let current = self.current == Some(row * self.cols + col);
            // A pixel on the cell's edge: a neighbour (or the image border) is in another cell.
            let edge = [(x.wrapping_sub(1), y), (x + 1, y), (x, y.wrapping_sub(1)), (x, y + 1)]
                .iter()
                .any(|&(nx, ny)| nx >= width || ny >= height || cell(nx, ny) != (row, col));
            if current && edge {
                return Rgb(CURRENT);
            }
            Rgb(self.code_at(row, col).map_or(EMPTY, code_color))
        })
    }
}

/// A distinct, stable colour per code: hues spaced by the golden ratio (neighbouring codes land
/// far apart on the colour wheel), with three lightness bands so codes 1/φ-apart still differ.
pub fn code_color(code: u32) -> [u8; 3] {
    const PHI_FRAC: f64 = 0.618_033_988_749_895;
    let hue = (f64::from(code) * PHI_FRAC).fract();
    let value = [0.95, 0.75, 0.55][(code % 3) as usize];
    let saturation = [0.55, 0.75, 0.95][((code / 3) % 3) as usize];
    hsv_to_rgb(hue, saturation, value)
}

fn hsv_to_rgb(h: f64, s: f64, v: f64) -> [u8; 3] {
    let sector = h * 6.0;
    let f = sector.fract();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match sector as u32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    let byte = |x: f64| (x * 255.0).round().clamp(0.0, 255.0) as u8;
    [byte(r), byte(g), byte(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: [u8; 3], b: [u8; 3]) -> u32 {
        a.iter().zip(b).map(|(&x, y)| (i32::from(x) - i32::from(y)).unsigned_abs()).sum()
    }

    #[test]
    fn codes_get_stable_distinct_colours() {
        assert_eq!(code_color(17), code_color(17));
        let colours: Vec<[u8; 3]> = (0..256).map(code_color).collect();
        let mut unique = colours.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 256, "every code of a 256-code book has its own colour");
        for code in 0..255 {
            assert!(distance(colours[code], colours[code + 1]) > 60, "codes {code} and {} look alike", code + 1);
        }
        assert!(colours.iter().all(|&c| c != EMPTY));
    }

    #[test]
    fn maps_are_drawn_cell_by_cell() {
        let map = TokenMap::full(2, 3, [0, 1, 2, 3, 4, 5]);
        let small = map.to_rgb();
        assert_eq!(small.dimensions(), (3, 2));
        assert_eq!(small.get_pixel(2, 1).0, code_color(5));
        // 3 columns over 32 pixels: every pixel of column 1 is code 1's colour, none is missing.
        let big = map.to_rgb_sized(32, 32);
        for x in 0..32 {
            let col = x * 3 / 32;
            assert_eq!(big.get_pixel(x, 0).0, code_color(col), "x = {x}");
            assert_eq!(big.get_pixel(x, 31).0, code_color(3 + col), "x = {x}");
        }
        let partial = TokenMap { rows: 1, cols: 2, codes: vec![Some(7), None], current: None };
        assert_eq!(partial.to_rgb().get_pixel(1, 0).0, EMPTY);
        assert_eq!(partial.code_at(0, 0), Some(7));
    }

    #[test]
    fn the_current_cell_is_outlined_and_keeps_its_colour_inside() {
        let map = TokenMap { current: Some(4), ..TokenMap::full(3, 3, 0..9) };
        let img = map.to_rgb_sized(30, 30); // 10 px cells; cell 4 spans 10..20 both ways
        assert_eq!(img.get_pixel(10, 15).0, CURRENT);
        assert_eq!(img.get_pixel(19, 12).0, CURRENT);
        assert_eq!(img.get_pixel(15, 15).0, code_color(4));
        assert_eq!(img.get_pixel(5, 5).0, code_color(0), "other cells are not outlined");
    }
}
