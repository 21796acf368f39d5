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
use super::layout::band_column;
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
}

impl TokenizedImage {
    /// Tokenizes every band of `image`; all 64 bands of each plane must be
    /// present. The error names the band column.
    pub fn new(image: &CoefficientImage) -> Result<Self, String> {
        let planes = image.planes();
        let mut tokens = Vec::new();
        let mut starts = Vec::with_capacity(planes.len() * 64 + 1);
        for (p, plane) in planes.iter().enumerate() {
            for k in 0..64 {
                let column = || band_column(p, k);
                let band = plane
                    .band(k)
                    .ok_or_else(|| format!("{} is missing", column()))?;
                starts.push(tokens.len());
                tokenize_band(band, plane.blocks_w(), k == 0, &mut tokens)
                    .map_err(|e| format!("{}: {e}", column()))?;
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
    }

    #[test]
    fn a_missing_band_is_named() {
        let err = TokenizedImage::new(&image(10)).unwrap_err();
        assert_eq!(err, "image.y.10 is missing");
    }
}
