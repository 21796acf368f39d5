//! Read formats: what one query reads of an image table and hands a model.
//!
//! A format fixes the channels (luma only, or all of YCbCr), the DCT scale
//! `s` (the `s x s` low-frequency corner of each block), optionally a
//! zigzag prefix inside that corner, and the model input resolution; or,
//! for coefficient-input models, how many zigzag bands per plane are real
//! (the rest are fed as zeros). Its bands are what the scan reads.
//! Formats are written as short names (`ycc s4 224`, `y s2 k3 112`,
//! `ycc k6 coef`) that `SHOW FORMATS` prints and `SET
//! spectradb.read_format` parses.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model_spec::ModelSpec;
use crate::codec::quant::scale_band_mask;
use crate::codec::tensor::choose_scale;
use crate::codec::BandSelection;
use crate::codec::{Chroma, CoefficientImage};
use crate::error::{Error, Result};

/// Which planes a format reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    /// Luma only: the model sees a grey image (or zero chroma coefficients).
    Y,
    /// Luma and both chroma planes.
    Ycc,
}

/// How the bands become the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Representation {
    /// Inverse DCT at scale `scale/8` (at most: an image that reaches
    /// `size` at a smaller scale decodes there), colour conversion, resize
    /// to `size`.
    Pixels {
        scale: u8,
        /// Only the first `prefix` zigzag bands of the corner (the rest are
        /// taken as zero); `None` = the whole `scale x scale` corner.
        prefix: Option<u8>,
        /// Side of the square model input in pixels.
        size: u32,
    },
    /// The first `bands` zigzag bands of each plane are read; a model that
    /// takes more gets zeros for the others.
    Coefficients { bands: u8 },
}

/// One point of the design space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReadFormat {
    pub channels: Channels,
    pub repr: Representation,
}

impl fmt::Display for ReadFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ch = match self.channels {
            Channels::Y => "y",
            Channels::Ycc => "ycc",
        };
        match self.repr {
            Representation::Pixels {
                scale,
                prefix: None,
                size,
            } => write!(f, "{ch} s{scale} {size}"),
            Representation::Pixels {
                scale,
                prefix: Some(k),
                size,
            } => write!(f, "{ch} s{scale} k{k} {size}"),
            Representation::Coefficients { bands } => write!(f, "{ch} k{bands} coef"),
        }
    }
}

fn bad_name(name: &str) -> Error {
    Error::InvalidArgument(format!(
        "read format '{name}': expected '<y|ycc> s<1-8> [k<bands>] <size>' (e.g. 'ycc s4 224') \
         or '<y|ycc> k<1-64> coef'"
    ))
}

impl std::str::FromStr for ReadFormat {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        let words: Vec<String> = name
            .split_whitespace()
            .map(|w| w.to_ascii_lowercase())
            .collect();
        let channels = match words.first().map(String::as_str) {
            Some("y") => Channels::Y,
            Some("ycc") => Channels::Ycc,
            _ => return Err(bad_name(name)),
        };
        let num = |w: &str, p: char| -> Option<u32> { w.strip_prefix(p)?.parse().ok() };
        let repr = match &words[1..] {
            [k, c] if c == "coef" => Representation::Coefficients {
                bands: num(k, 'k')
                    .filter(|b| (1..=64).contains(b))
                    .ok_or_else(|| bad_name(name))? as u8,
            },
            [s, rest @ ..] if !rest.is_empty() && rest.len() <= 2 => {
                let scale = num(s, 's')
                    .filter(|s| (1..=8).contains(s))
                    .ok_or_else(|| bad_name(name))? as u8;
                let prefix = match rest {
                    [k, _] => Some(
                        num(k, 'k')
                            .filter(|&k| k >= 1 && k < (scale as u32).pow(2))
                            .ok_or_else(|| bad_name(name))? as u8,
                    ),
                    _ => None,
                };
                let size: u32 = rest[rest.len() - 1]
                    .parse()
                    .ok()
                    .filter(|s| (1..=8192).contains(s))
                    .ok_or_else(|| bad_name(name))?;
                Representation::Pixels {
                    scale,
                    prefix,
                    size,
                }
            }
            _ => return Err(bad_name(name)),
        };
        Ok(ReadFormat { channels, repr })
    }
}

impl ReadFormat {
    /// Zigzag bands read from each plane (luma, then chroma).
    pub fn plane_mask(&self) -> u64 {
        match self.repr {
            Representation::Pixels {
                prefix: Some(k), ..
            }
            | Representation::Coefficients { bands: k } => prefix_mask(k as usize),
            Representation::Pixels { scale, .. } => scale_band_mask(scale as usize),
        }
    }

    /// The band columns a scan reads for this format.
    pub fn bands(&self) -> BandSelection {
        let m = self.plane_mask();
        BandSelection {
            masks: match self.channels {
                Channels::Y => [m, 0, 0],
                Channels::Ycc => [m, m, m],
            },
        }
    }

    /// Band columns per image stored with `chroma`.
    pub fn band_count(&self, chroma: Chroma) -> u32 {
        let b = self.bands();
        b.masks[..chroma.planes()]
            .iter()
            .map(|m| m.count_ones())
            .sum()
    }

    /// Checks that this format can feed a model with `spec`, native input
    /// side `native`, taking other sizes when `dynamic_size`.
    pub fn check_fits(
        &self,
        model: &str,
        spec: &ModelSpec,
        native: u32,
        dynamic_size: bool,
    ) -> Result<()> {
        let why = match (self.repr, spec.coefficient_bands) {
            (Representation::Pixels { .. }, Some(_)) => "it takes coefficients".to_string(),
            (Representation::Coefficients { .. }, None) => "it takes pixels".to_string(),
            (Representation::Pixels { size, .. }, None) if size != native && !dynamic_size => {
                format!("its input is fixed at {native}x{native} pixels")
            }
            _ => return Ok(()),
        };
        Err(Error::InvalidArgument(format!(
            "read format '{self}' does not fit model {model}: {why}"
        )))
    }

    /// The input side the model gets (pixels), if this is a pixel format.
    pub fn input_size(&self) -> Option<u32> {
        match self.repr {
            Representation::Pixels { size, .. } => Some(size),
            Representation::Coefficients { .. } => None,
        }
    }

    /// Turns the bands read for this format into the image the model's
    /// input is built from: luma-only formats drop chroma, and bands the
    /// format leaves out of its corner (or of the model's coefficient
    /// input, `model_bands`) are filled with zeros.
    pub fn shape_image(&self, mut img: CoefficientImage, model_bands: usize) -> CoefficientImage {
        if self.channels == Channels::Y && img.chroma() != Chroma::Gray {
            img = img
                .with_chroma(Chroma::Gray)
                .expect("dropping chroma always works");
        }
        let need = match self.repr {
            Representation::Pixels { scale, .. } => scale_band_mask(scale as usize),
            Representation::Coefficients { .. } => prefix_mask(model_bands),
        };
        img.zero_missing_bands(need);
        img
    }
}

/// The first `k` zigzag bands.
pub fn prefix_mask(k: usize) -> u64 {
    if k >= 64 {
        u64::MAX
    } else {
        (1u64 << k) - 1
    }
}

/// What the design space depends on: the model's input and the table's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceParams {
    /// The model's native input side in pixels (or blocks x 8 for coefficients).
    pub native: u32,
    /// Whether the model accepts other input sizes.
    pub dynamic_size: bool,
    /// Bands per plane of a coefficient-input model.
    pub coefficient_bands: Option<usize>,
    /// Smallest stored width and height in the table.
    pub min_width: u32,
    pub min_height: u32,
    /// The table stores luma only.
    pub gray: bool,
}

impl SpaceParams {
    /// The largest scale worth reading: the smallest one whose decode of the
    /// smallest stored image reaches the native size (more bands than that
    /// are thrown away by the resize).
    pub fn max_useful_scale(&self) -> u8 {
        choose_scale(self.min_width, self.min_height, self.native, self.native) as u8
    }

    fn full_channels(&self) -> Channels {
        if self.gray {
            Channels::Y
        } else {
            Channels::Ycc
        }
    }

    /// Full quality: every band the model can use, decoded at full scale
    /// (or all of the coefficient input). Calibration's reference.
    pub fn reference(&self) -> ReadFormat {
        ReadFormat {
            channels: self.full_channels(),
            repr: match self.coefficient_bands {
                Some(b) => Representation::Coefficients { bands: b as u8 },
                None => Representation::Pixels {
                    scale: 8,
                    prefix: None,
                    size: self.native,
                },
            },
        }
    }

    /// The format used without a profile: the smallest scale that still
    /// yields the native input size (never upsampling), all channels.
    pub fn default_format(&self) -> ReadFormat {
        ReadFormat {
            channels: self.full_channels(),
            repr: match self.coefficient_bands {
                Some(b) => Representation::Coefficients { bands: b as u8 },
                None => Representation::Pixels {
                    scale: self.max_useful_scale(),
                    prefix: None,
                    size: self.native,
                },
            },
        }
    }

    /// Every format worth calibrating, the reference first.
    pub fn design_space(&self) -> Vec<ReadFormat> {
        let mut out = vec![self.reference()];
        let channels: &[Channels] = if self.gray {
            &[Channels::Y]
        } else {
            &[Channels::Y, Channels::Ycc]
        };
        let mut push = |f: ReadFormat| {
            if !out.contains(&f) {
                out.push(f);
            }
        };
        if let Some(b) = self.coefficient_bands {
            // Zigzag prefixes that end on a whole anti-diagonal, plus the model's own.
            let mut prefixes: Vec<usize> = (1..=8)
                .map(|d| d * (d + 1) / 2)
                .chain((1..8).map(|d| 64 - d * (d + 1) / 2))
                .filter(|&k| k < b)
                .collect();
            prefixes.push(b);
            prefixes.sort_unstable();
            prefixes.dedup();
            for &channels in channels {
                for &k in &prefixes {
                    push(ReadFormat {
                        channels,
                        repr: Representation::Coefficients { bands: k as u8 },
                    });
                }
            }
            return out;
        }
        let top = self.max_useful_scale();
        for &channels in channels {
            for scale in 1..=top {
                let mut sizes = vec![self.native];
                if self.dynamic_size && scale < top {
                    // The resolution this scale yields, on an 8-pixel grid.
                    let own = (self.native * scale as u32 / top as u32).div_ceil(8) * 8;
                    sizes.push(own.max(8));
                }
                let triangle = scale * (scale + 1) / 2;
                let prefixes = if scale >= 2 {
                    vec![None, Some(triangle)]
                } else {
                    vec![None]
                };
                for &size in &sizes {
                    for &prefix in &prefixes {
                        push(ReadFormat {
                            channels,
                            repr: Representation::Pixels {
                                scale,
                                prefix,
                                size,
                            },
                        });
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mobilenet_on_512() -> SpaceParams {
        SpaceParams {
            native: 224,
            dynamic_size: true,
            coefficient_bands: None,
            min_width: 512,
            min_height: 512,
            gray: false,
        }
    }

    #[test]
    fn names_round_trip() {
        for name in [
            "ycc s4 224",
            "y s2 112",
            "y s3 k6 224",
            "ycc k6 coef",
            "y k64 coef",
        ] {
            let f: ReadFormat = name.parse().unwrap();
            assert_eq!(f.to_string(), name);
        }
        for bad in [
            "rgb s4 224",
            "ycc s9 224",
            "ycc s4",
            "ycc s2 k4 64",
            "ycc k0 coef",
            "",
        ] {
            let err = bad.parse::<ReadFormat>().unwrap_err().to_string();
            assert!(err.contains("expected '<y|ycc>"), "{bad}: {err}");
        }
    }

    #[test]
    fn bands_follow_the_format() {
        let f: ReadFormat = "ycc s4 224".parse().unwrap();
        assert_eq!(f.band_count(Chroma::Yuv420), 48);
        assert_eq!(f.band_count(Chroma::Gray), 16);
        let f: ReadFormat = "y s4 k10 224".parse().unwrap();
        assert_eq!(f.bands().masks, [(1 << 10) - 1, 0, 0]);
        // The triangle prefix lies inside the corner.
        assert_eq!(f.plane_mask() & !scale_band_mask(4), 0);
    }

    #[test]
    fn design_space_stops_at_the_native_size() {
        let p = mobilenet_on_512();
        assert_eq!(p.max_useful_scale(), 4);
        let space = p.design_space();
        assert_eq!(space[0].to_string(), "ycc s8 224");
        assert_eq!(p.default_format().to_string(), "ycc s4 224");
        let names: Vec<String> = space.iter().map(|f| f.to_string()).collect();
        for want in [
            "y s1 56",
            "ycc s2 112",
            "ycc s3 k6 168",
            "y s4 224",
            "ycc s4 224",
        ] {
            assert!(names.contains(&want.to_string()), "{want} in {names:?}");
        }
        assert!(space.iter().all(|f| match f.repr {
            Representation::Pixels { scale, .. } => scale <= 4 || *f == p.reference(),
            _ => false,
        }));
        let mut fixed = p;
        fixed.dynamic_size = false;
        assert!(fixed
            .design_space()
            .iter()
            .all(|f| f.input_size() == Some(224)));
        let mut coef = p;
        coef.coefficient_bands = Some(6);
        let names: Vec<String> = coef.design_space().iter().map(|f| f.to_string()).collect();
        assert_eq!(
            names,
            [
                "ycc k6 coef",
                "y k1 coef",
                "y k3 coef",
                "y k6 coef",
                "ycc k1 coef",
                "ycc k3 coef"
            ]
        );
    }
}
