//! An image's bands as code-independent symbols, ready to be coded.
//!
//! A file's band codes are fitted to the symbols of all its images, so a
//! writer walks every band twice: once to count its symbols, once to code
//! them. Walking the coefficients themselves twice means reading each
//! image (about 0.5 MB for a 512 px photo) back from memory twice, long
//! after it was decoded. A [`TokenizedImage`] walks them once, right after
//! decoding while they are in cache, and keeps the symbols with their
//! extra bits as one `u32` each (about half the coefficients' size); the
//! writer's two passes then read these tokens in order.

use super::bands::tokenize_band;
use super::layout::{band_column, band_is_split, FORMAT_VERSION};
use crate::codec::{Chroma, CoefficientImage, QuantTable};

/// The header of an image and the tokens of each of its band columns.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedImage {
    width: u32,
    height: u32,
    chroma: Chroma,
    quant: Vec<QuantTable>,
    /// The tokens of every band column, in column order.
    tokens: Vec<u32>,
    /// Column `c` holds `tokens[starts[c]..starts[c + 1]]`.
    starts: Vec<usize>,
    /// For columns coded as two halves, the first half's token count.
    first_halves: Vec<Option<usize>>,
}

impl TokenizedImage {
    /// Tokenizes every band of `image`, splitting the bands that the newest
    /// format splits ([`band_is_split`]); all 64 bands of each plane must
    /// be present. The error names the band column.
    pub fn new(image: &CoefficientImage) -> Result<Self, String> {
        let planes = image.planes();
        let mut tokens = Vec::new();
        let mut starts = Vec::with_capacity(planes.len() * 64 + 1);
        let mut first_halves = Vec::with_capacity(planes.len() * 64);
        for (p, plane) in planes.iter().enumerate() {
            for k in 0..64 {
                let column = || band_column(p, k);
                let band = plane
                    .band(k)
                    .ok_or_else(|| format!("{} is missing", column()))?;
                starts.push(tokens.len());
                let split = band_is_split(FORMAT_VERSION, k, plane.blocks());
                first_halves.push(
                    tokenize_band(band, plane.blocks_w(), k == 0, split, &mut tokens)
                        .map_err(|e| format!("{}: {e}", column()))?,
                );
            }
        }
        starts.push(tokens.len());
        tokens.shrink_to_fit();
        Ok(TokenizedImage {
            width: image.width(),
            height: image.height(),
            chroma: image.chroma(),
            quant: image.quant().to_vec(),
            tokens,
            starts,
            first_halves,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn chroma(&self) -> Chroma {
        self.chroma
    }

    /// One quantization table per plane.
    pub fn quant(&self) -> &[QuantTable] {
        &self.quant
    }

    /// Number of band columns (64 per plane).
    pub fn columns(&self) -> usize {
        self.starts.len() - 1
    }

    /// The tokens of band column `c` (`plane * 64 + band`).
    pub fn column(&self, c: usize) -> &[u32] {
        &self.tokens[self.starts[c]..self.starts[c + 1]]
    }

    /// For a column coded as two halves, the first half's token count.
    pub fn first_half(&self, c: usize) -> Option<usize> {
        self.first_halves[c]
    }

    /// Whether any column is coded as two halves (the file then needs
    /// format version 2).
    pub fn has_split_bands(&self) -> bool {
        self.first_halves.iter().any(Option::is_some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CoefPlane;

    fn image(bands_present: usize) -> CoefficientImage {
        let mut plane = CoefPlane::empty(16, 8).unwrap();
        for k in 0..bands_present {
            plane.set_band(k, vec![k as i16, 0]).unwrap();
        }
        CoefficientImage::new(16, 8, Chroma::Gray, vec![[1; 64]], vec![plane]).unwrap()
    }

    #[test]
    fn every_column_is_tokenized_in_order() {
        let t = TokenizedImage::new(&image(64)).unwrap();
        assert_eq!(t.columns(), 64);
        // Band 0 (DC 0, 0): all zero, one end-of-band token.
        assert_eq!(t.column(0), &[0]);
        // Band 5 holds (5, 0): run 0, size 3, value bits 101; then end of band.
        assert_eq!(t.column(5), &[0x03 << 24 | 0b101, 0]);
        assert_eq!((t.width(), t.height(), t.chroma()), (16, 8, Chroma::Gray));
        assert!(!t.has_split_bands(), "2 blocks: too few to split");
    }

    #[test]
    fn low_bands_of_large_planes_are_split() {
        let mut plane = CoefPlane::empty(128, 128).unwrap(); // 256 blocks
        for k in 0..64 {
            plane.set_band(k, vec![1; 256]).unwrap();
        }
        let image =
            CoefficientImage::new(128, 128, Chroma::Gray, vec![[1; 64]], vec![plane]).unwrap();
        let t = TokenizedImage::new(&image).unwrap();
        assert!(t.has_split_bands());
        // Band 0 is the DC corner; band 3 is (row 2, column 0); band 10 is
        // (row 4, column 0), outside the 4x4 corner; band 12 is (1, 3).
        assert_eq!(t.first_half(0).map(|_| ()), Some(()));
        assert_eq!(t.first_half(3), Some(128), "128 ones, no end of band");
        assert_eq!(t.first_half(10), None);
        assert_eq!(t.first_half(12), Some(128));
        assert_eq!(t.column(12).len(), 256);
    }

    #[test]
    fn a_missing_band_is_named() {
        let err = TokenizedImage::new(&image(10)).unwrap_err();
        assert_eq!(err, "image.y.10 is missing");
    }
}
