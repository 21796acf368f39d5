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

/// One colour plane: its sample size and its bands.
#[derive(Debug, Clone, PartialEq)]
pub struct CoefPlane {
    /// Width of the plane in samples (before padding to whole blocks).
    pub width: u32,
    /// Height of the plane in samples.
    pub height: u32,
    /// Band `k` (zigzag order): coefficient `k` of every block in raster
    /// order, or `None` when it was not read.
    pub bands: Vec<Option<Vec<i16>>>,
}

impl CoefPlane {
    /// A plane with no band read yet.
    pub fn empty(width: u32, height: u32) -> Self {
        CoefPlane {
            width,
            height,
            bands: vec![None; 64],
        }
    }

    /// A plane whose 64 bands are all present and zero (a flat mid-grey plane).
    pub fn zeros(width: u32, height: u32) -> Self {
        let mut p = Self::empty(width, height);
        let n = p.blocks();
        for b in &mut p.bands {
            *b = Some(vec![0; n]);
        }
        p
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

    /// Band `k`, if it was read.
    pub fn band(&self, k: usize) -> Option<&[i16]> {
        self.bands[k].as_deref()
    }
}

/// A stored image: quantized DCT coefficients per plane plus the tables to
/// dequantize them.
#[derive(Debug, Clone, PartialEq)]
pub struct CoefficientImage {
    pub width: u32,
    pub height: u32,
    pub chroma: Chroma,
    /// One quantization table per plane (zigzag order).
    pub quant: Vec<QuantTable>,
    pub planes: Vec<CoefPlane>,
}

impl CoefficientImage {
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
                    self.planes.push(CoefPlane::zeros(w, h));
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
