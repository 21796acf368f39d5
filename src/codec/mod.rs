//! The frequency codec: pure functions, no I/O.
//!
//! An image becomes a [`CoefficientImage`]: per colour plane (Y, Cb, Cr),
//! the quantized 8x8 DCT coefficients of every block, stored *band-major*
//! (band `k` in zigzag order holds coefficient `k` of every block), because
//! that is how the storage layer writes and reads them: one column per band.
//!
//! - [`color`]: RGB <-> YCbCr (JPEG full range)
//! - [`dct`]: forward 8x8 DCT-II and the s x s scaled inverse
//! - [`quant`]: zigzag order and quality-scaled JPEG tables
//! - [`selection`]: which bands of which planes a read needs
//! - [`encode`]: pixels -> coefficients
//! - [`decode`]: coefficients -> pixels at s/8 of the stored size
//! - [`tensor`]: coefficients -> model-ready float tensor

pub mod color;
pub mod dct;
pub mod decode;
pub mod encode;
pub mod quant;
pub mod selection;
pub mod tensor;

use crate::error::{Error, Result};
pub use quant::QuantTable;
pub use selection::BandSelection;

/// Names of the colour planes, as used in column names (`image.y.0`).
pub const CHANNEL_NAMES: [&str; 3] = ["y", "cb", "cr"];

/// Chroma layout of a stored image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Chroma {
    /// Cb and Cr at half resolution in both directions (JPEG's usual choice).
    #[default]
    Yuv420,
    /// Cb and Cr at full resolution.
    Yuv444,
    /// Luma only.
    Gray,
}

impl Chroma {
    /// Number of colour planes stored.
    pub fn planes(self) -> usize {
        match self {
            Chroma::Gray => 1,
            _ => 3,
        }
    }

    /// The name used in options and file metadata.
    pub fn name(self) -> &'static str {
        match self {
            Chroma::Yuv420 => "420",
            Chroma::Yuv444 => "444",
            Chroma::Gray => "gray",
        }
    }

    /// Parses `"420"`, `"444"` or `"gray"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "420" | "4:2:0" => Ok(Chroma::Yuv420),
            "444" | "4:4:4" => Ok(Chroma::Yuv444),
            "gray" | "grey" | "luma" => Ok(Chroma::Gray),
            other => Err(Error::InvalidArgument(format!(
                "unknown chroma '{other}': expected '420', '444' or 'gray'"
            ))),
        }
    }

    /// Sample dimensions of `plane` for an image of `width x height`.
    pub fn plane_dims(self, plane: usize, width: u32, height: u32) -> (u32, u32) {
        if plane > 0 && self == Chroma::Yuv420 {
            (width.div_ceil(2), height.div_ceil(2))
        } else {
            (width, height)
        }
    }
}

/// Largest width or height of a stored image (JPEG's own limit).
pub const MAX_DIMENSION: u32 = 65_535;

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// One colour plane: its sample size and its bands.
///
/// Fields are private so that every plane has a non-zero size, exactly 64
/// band slots and bands of exactly one value per block: decoders and the
/// writer index bands by block without checking again.
#[derive(Debug, Clone, PartialEq)]
pub struct CoefPlane {
    width: u32,
    height: u32,
    /// Band `k` (zigzag order): coefficient `k` of every block in raster
    /// order, or `None` when it was not read.
    bands: Vec<Option<Vec<i16>>>,
}

impl CoefPlane {
    /// A `width x height` plane with no band read yet (both sides 1..=65,535).
    pub fn empty(width: u32, height: u32) -> Result<Self> {
        if !(1..=MAX_DIMENSION).contains(&width) || !(1..=MAX_DIMENSION).contains(&height) {
            return Err(invalid(format!(
                "plane size {width}x{height} out of range 1..={MAX_DIMENSION}"
            )));
        }
        Ok(CoefPlane {
            width,
            height,
            bands: vec![None; 64],
        })
    }

    /// A plane whose 64 bands are all present and zero (a flat mid-grey plane).
    pub fn zeros(width: u32, height: u32) -> Result<Self> {
        let mut p = Self::empty(width, height)?;
        let n = p.blocks();
        for b in &mut p.bands {
            *b = Some(vec![0; n]);
        }
        Ok(p)
    }

    /// Width of the plane in samples (before padding to whole blocks).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height of the plane in samples.
    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn blocks_w(&self) -> usize {
        self.width.div_ceil(8) as usize
    }

    pub fn blocks_h(&self) -> usize {
        self.height.div_ceil(8) as usize
    }

    /// Number of 8x8 blocks.
    pub fn blocks(&self) -> usize {
        self.blocks_w() * self.blocks_h()
    }

    /// Band `k` (zigzag order), if it was read; `None` past band 63.
    pub fn band(&self, k: usize) -> Option<&[i16]> {
        self.bands.get(k)?.as_deref()
    }

    /// Sets band `k`, which must hold one value per block.
    pub fn set_band(&mut self, k: usize, values: Vec<i16>) -> Result<()> {
        if values.len() != self.blocks() {
            return Err(invalid(format!(
                "band {k} holds {} values, a {}x{} plane has {} blocks",
                values.len(),
                self.width,
                self.height,
                self.blocks()
            )));
        }
        let slot = self
            .bands
            .get_mut(k)
            .ok_or_else(|| invalid(format!("band {k} out of range 0..64")))?;
        *slot = Some(values);
        Ok(())
    }

    /// Drops band `k` (as if it had not been read).
    pub fn clear_band(&mut self, k: usize) {
        if let Some(slot) = self.bands.get_mut(k) {
            *slot = None;
        }
    }

    /// Bit `k` set when band `k` is present.
    pub fn band_mask(&self) -> u64 {
        self.bands
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_some())
            .fold(0, |m, (k, _)| m | 1 << k)
    }
}

/// A stored image: quantized DCT coefficients per plane plus the tables to
/// dequantize them.
///
/// Built by [`CoefficientImage::new`], which checks that the planes match
/// the chroma layout and the image size, so no consumer meets a missing
/// plane, a plane of the wrong size or a zero dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct CoefficientImage {
    width: u32,
    height: u32,
    chroma: Chroma,
    /// One quantization table per plane (zigzag order).
    quant: Vec<QuantTable>,
    planes: Vec<CoefPlane>,
}

impl CoefficientImage {
    /// Checks and assembles an image: `chroma.planes()` planes and tables,
    /// plane `p` of size `chroma.plane_dims(p, width, height)`.
    pub fn new(
        width: u32,
        height: u32,
        chroma: Chroma,
        quant: Vec<QuantTable>,
        planes: Vec<CoefPlane>,
    ) -> Result<Self> {
        if !(1..=MAX_DIMENSION).contains(&width) || !(1..=MAX_DIMENSION).contains(&height) {
            return Err(invalid(format!(
                "image size {width}x{height} out of range 1..={MAX_DIMENSION}"
            )));
        }
        let n = chroma.planes();
        if planes.len() != n || quant.len() != n {
            return Err(invalid(format!(
                "a {} image has {n} planes and quantization tables, got {} and {}",
                chroma.name(),
                planes.len(),
                quant.len()
            )));
        }
        for (p, plane) in planes.iter().enumerate() {
            let (w, h) = chroma.plane_dims(p, width, height);
            if (plane.width, plane.height) != (w, h) {
                return Err(invalid(format!(
                    "plane {p} of a {width}x{height} {} image is {}x{}, expected {w}x{h}",
                    chroma.name(),
                    plane.width,
                    plane.height
                )));
            }
        }
        if let Some(p) = quant.iter().position(|q| q.contains(&0)) {
            return Err(invalid(format!(
                "quantization table of plane {p} has a zero entry"
            )));
        }
        Ok(CoefficientImage {
            width,
            height,
            chroma,
            quant,
            planes,
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

    /// One quantization table per plane (zigzag order).
    pub fn quant(&self) -> &[QuantTable] {
        &self.quant
    }

    /// The planes (Y, then Cb and Cr unless gray).
    pub fn planes(&self) -> &[CoefPlane] {
        &self.planes
    }

    /// Sets band `k` of plane `plane` (one value per block of that plane).
    pub fn set_band(&mut self, plane: usize, k: usize, values: Vec<i16>) -> Result<()> {
        let n = self.planes.len();
        self.planes
            .get_mut(plane)
            .ok_or_else(|| invalid(format!("plane {plane} out of range 0..{n}")))?
            .set_band(k, values)
    }

    /// Makes every band in `mask` present in every plane, zero where it was
    /// absent (a read format that leaves bands out feeds zeros for them).
    pub fn zero_missing_bands(&mut self, mask: u64) {
        for plane in &mut self.planes {
            let n = plane.blocks();
            for (k, slot) in plane.bands.iter_mut().enumerate() {
                if mask >> k & 1 == 1 && slot.is_none() {
                    *slot = Some(vec![0; n]);
                }
            }
        }
    }

    /// Drops band `k` of plane `plane`.
    pub fn clear_band(&mut self, plane: usize, k: usize) {
        if let Some(p) = self.planes.get_mut(plane) {
            p.clear_band(k);
        }
    }

    /// Size in pixels at scale `s/8` (what a decode at that scale returns).
    pub fn scaled_dims(&self, s: usize) -> (u32, u32) {
        scaled_dims(self.width, self.height, s)
    }

    /// Converts to another chroma layout when that needs no pixel work:
    /// dropping chroma (any -> gray) or adding neutral chroma (gray -> colour).
    /// Returns `None` when a resampling would be needed (420 <-> 444).
    pub fn with_chroma(mut self, chroma: Chroma) -> Option<Self> {
        if self.chroma == chroma {
            return Some(self);
        }
        match (self.chroma, chroma) {
            (_, Chroma::Gray) => {
                self.planes.truncate(1);
                self.quant.truncate(1);
            }
            (Chroma::Gray, _) => {
                for p in 1..3 {
                    let (w, h) = chroma.plane_dims(p, self.width, self.height);
                    // The size is within range: the luma plane has it or more.
                    self.planes.push(CoefPlane::zeros(w, h).ok()?);
                    self.quant
                        .push(quant::quant_table(quant::TableKind::Chroma, 90));
                }
            }
            _ => return None,
        }
        self.chroma = chroma;
        Some(self)
    }
}

/// Size of a `width x height` image decoded at scale `s/8` (rounded up, as
/// libjpeg's scaled decoding does).
pub fn scaled_dims(width: u32, height: u32, s: usize) -> (u32, u32) {
    let s = s as u64;
    (
        (width as u64 * s).div_ceil(8) as u32,
        (height as u64 * s).div_ceil(8) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> QuantTable {
        [1; 64]
    }

    #[test]
    fn planes_refuse_zero_and_oversized_sides() {
        for (w, h) in [
            (0, 8),
            (8, 0),
            (0, 0),
            (MAX_DIMENSION + 1, 8),
            (8, u32::MAX),
        ] {
            let err = CoefPlane::empty(w, h).unwrap_err().to_string();
            assert!(err.contains("out of range"), "{w}x{h}: {err}");
            assert!(CoefPlane::zeros(w, h).is_err());
        }
        let p = CoefPlane::empty(17, 9).unwrap();
        assert_eq!((p.blocks_w(), p.blocks_h(), p.blocks()), (3, 2, 6));
        assert_eq!(p.band(64), None);
    }

    #[test]
    fn bands_must_hold_one_value_per_block() {
        let mut p = CoefPlane::empty(17, 9).unwrap();
        let err = p.set_band(3, vec![0; 5]).unwrap_err().to_string();
        assert!(
            err.contains("5 values") && err.contains("6 blocks"),
            "{err}"
        );
        assert!(p.set_band(3, vec![0; 7]).is_err());
        assert!(p.set_band(64, vec![0; 6]).is_err());
        p.set_band(3, vec![1; 6]).unwrap();
        assert_eq!(p.band(3), Some(&[1i16; 6][..]));
        assert_eq!(p.band_mask(), 1 << 3);
        p.clear_band(3);
        assert_eq!(p.band(3), None);
    }

    #[test]
    fn images_refuse_missing_planes_wrong_sizes_and_zero_dimensions() {
        let planes420 = || {
            vec![
                CoefPlane::empty(17, 9).unwrap(),
                CoefPlane::empty(9, 5).unwrap(),
                CoefPlane::empty(9, 5).unwrap(),
            ]
        };
        CoefficientImage::new(17, 9, Chroma::Yuv420, vec![q(); 3], planes420()).unwrap();
        let cases = [
            // A missing plane.
            (
                17,
                9,
                Chroma::Yuv420,
                vec![q(); 3],
                planes420()[..2].to_vec(),
                "3 planes",
            ),
            // A missing quantization table.
            (17, 9, Chroma::Yuv420, vec![q(); 2], planes420(), "3 planes"),
            // Chroma planes at full size for a 4:2:0 image.
            (
                17,
                9,
                Chroma::Yuv420,
                vec![q(); 3],
                vec![CoefPlane::empty(17, 9).unwrap(); 3],
                "expected 9x5",
            ),
            // Planes that do not match the image size.
            (
                16,
                9,
                Chroma::Yuv420,
                vec![q(); 3],
                planes420(),
                "expected 16x9",
            ),
            // Zero dimensions.
            (
                0,
                9,
                Chroma::Yuv420,
                vec![q(); 3],
                planes420(),
                "out of range",
            ),
            (
                17,
                0,
                Chroma::Gray,
                vec![q()],
                planes420()[..1].to_vec(),
                "out of range",
            ),
            // A zero quantization step.
            (
                17,
                9,
                Chroma::Gray,
                vec![[0; 64]],
                planes420()[..1].to_vec(),
                "zero entry",
            ),
        ];
        for (w, h, chroma, quant, planes, msg) in cases {
            let err = CoefficientImage::new(w, h, chroma, quant, planes)
                .unwrap_err()
                .to_string();
            assert!(err.contains(msg), "{w}x{h} {chroma:?}: {err}");
        }
    }

    #[test]
    fn image_band_edits_keep_the_shape() {
        let planes = vec![
            CoefPlane::empty(16, 16).unwrap(),
            CoefPlane::empty(8, 8).unwrap(),
            CoefPlane::empty(8, 8).unwrap(),
        ];
        let mut img = CoefficientImage::new(16, 16, Chroma::Yuv420, vec![q(); 3], planes).unwrap();
        assert!(img.set_band(1, 0, vec![0; 4]).is_err());
        assert!(img.set_band(3, 0, vec![0; 1]).is_err());
        img.set_band(1, 0, vec![5]).unwrap();
        img.zero_missing_bands(0b11);
        assert_eq!(img.planes()[0].band(1), Some(&[0i16; 4][..]));
        assert_eq!(img.planes()[1].band(0), Some(&[5i16][..]));
        assert_eq!(img.planes()[2].band_mask(), 0b11);
        let gray = img.with_chroma(Chroma::Gray).unwrap();
        assert_eq!((gray.planes().len(), gray.quant().len()), (1, 1));
        let back = gray.with_chroma(Chroma::Yuv444).unwrap();
        assert_eq!(back.planes()[2].width(), 16);
    }
}
