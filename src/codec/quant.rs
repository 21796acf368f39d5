//! Zigzag band order and JPEG quantization tables scaled to a quality factor.

/// Natural (row-major) position of zigzag band `k` inside an 8x8 block.
pub const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Row (vertical frequency) of zigzag band `k`.
pub fn band_row(k: usize) -> usize {
    ZIGZAG[k] / 8
}

/// Column (horizontal frequency) of zigzag band `k`.
pub fn band_col(k: usize) -> usize {
    ZIGZAG[k] % 8
}

/// The bands (zigzag indices) of the top-left `s x s` corner of a block:
/// what a decode at scale `s/8` reads. As a bit mask, bit `k` = band `k`.
pub fn scale_band_mask(s: usize) -> u64 {
    (0..64)
        .filter(|&k| band_row(k) < s && band_col(k) < s)
        .fold(0u64, |m, k| m | (1 << k))
}

/// JPEG Annex K luminance table, natural order.
const LUMA_BASE: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// JPEG Annex K chrominance table, natural order.
const CHROMA_BASE: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// A quantization table in zigzag order (entry `k` divides band `k`).
pub type QuantTable = [u16; 64];

/// Which of the two standard tables to scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Luma,
    Chroma,
}

/// The standard JPEG table scaled to `quality` (1..=100) with the IJG
/// formula, in zigzag order, so files match what libjpeg would produce.
pub fn quant_table(kind: TableKind, quality: u8) -> QuantTable {
    let q = quality.clamp(1, 100) as u32;
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    let base = match kind {
        TableKind::Luma => &LUMA_BASE,
        TableKind::Chroma => &CHROMA_BASE,
    };
    let mut out = [0u16; 64];
    for (k, o) in out.iter_mut().enumerate() {
        let v = (base[ZIGZAG[k]] as u32 * scale + 50) / 100;
        *o = v.clamp(1, 255) as u16;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_is_a_permutation() {
        let mut seen = [false; 64];
        for &p in &ZIGZAG {
            assert!(!seen[p]);
            seen[p] = true;
        }
    }

    #[test]
    fn scale_masks_have_s_squared_bands() {
        for s in 1..=8 {
            assert_eq!(scale_band_mask(s).count_ones() as usize, s * s);
        }
        assert_eq!(scale_band_mask(1), 1);
        assert_eq!(scale_band_mask(2), 0b10111); // bands 0, 1, 2, 4
    }

    #[test]
    fn quality_50_is_the_base_table_and_100_is_all_ones() {
        let t = quant_table(TableKind::Luma, 50);
        assert_eq!(t[0], 16);
        assert_eq!(t[1], 11); // zigzag 1 = natural 1
        assert_eq!(t[2], 12); // zigzag 2 = natural 8
        assert!(quant_table(TableKind::Chroma, 100).iter().all(|&v| v == 1));
        // IJG scale at quality 90 is 20%: 16 -> (16 * 20 + 50) / 100 = 3
        assert_eq!(quant_table(TableKind::Luma, 90)[0], 3);
    }
}
