//! What a model expects and returns, from `CREATE MODEL ... WITH (...)`.

use std::collections::BTreeMap;

use crate::codec::tensor::{Layout, TensorSpec};
use crate::error::{Error, Result};

/// What the model's function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The name of the top class (needs a labels file).
    Label,
    /// The index of the top class.
    Class,
    /// All outputs, as `FixedSizeList<Float32>`.
    Scores,
    /// All outputs as an embedding (`FixedSizeList<Float32>`).
    Embedding,
}

impl OutputKind {
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Label => "label",
            OutputKind::Class => "class",
            OutputKind::Scores => "scores",
            OutputKind::Embedding => "embedding",
        }
    }
}

/// One member of `CREATE MODEL m FAMILY (FORMAT '..' FROM '..' [WITH (..)], ...)`
/// as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSource {
    /// The read format it was trained for, e.g. `'y s4 14'`.
    pub format: String,
    /// The `.onnx` file.
    pub source: String,
    /// The member's own `WITH (...)`, over the family's.
    pub options: Vec<(String, String)>,
}

/// How images are turned into the model's input tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Input side in pixels (square), `None` until checked against the model.
    pub size: Option<u32>,
    pub layout: Layout,
    /// Channel order: false = RGB, true = BGR.
    pub bgr: bool,
    /// On the 0..1 scale (converted from 0..255 options).
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub output: OutputKind,
    /// `input = 'coefficients'`: the first `bands` zigzag bands of each
    /// plane instead of pixels.
    pub coefficient_bands: Option<usize>,
}

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

fn triple(key: &str, value: &str) -> Result<[f32; 3]> {
    let parts: Vec<f32> = value
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            bad(format!(
                "{key} = '{value}': expected three numbers like '0.485,0.456,0.406'"
            ))
        })?;
    match parts.as_slice() {
        [a] => Ok([*a; 3]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(bad(format!(
            "{key} = '{value}': expected one or three numbers"
        ))),
    }
}

/// The options `CREATE MODEL` accepts.
pub const MODEL_OPTIONS: &str =
    "input, size, bands, layout, channels, mean, std, range, output, labels";

impl ModelSpec {
    /// Parses the options (keys lower-case); `has_labels` says whether a
    /// labels file was given (it makes `label` the default output).
    pub fn parse(options: &BTreeMap<String, String>, has_labels: bool) -> Result<Self> {
        let mut spec = ModelSpec {
            size: None,
            layout: Layout::Chw,
            bgr: false,
            mean: [0.0; 3],
            std: [1.0; 3],
            output: if has_labels {
                OutputKind::Label
            } else {
                OutputKind::Class
            },
            coefficient_bands: None,
        };
        let mut coefficients = false;
        let mut bands = 64usize;
        let mut range255 = false;
        for (key, value) in options {
            let v = value.to_ascii_lowercase();
            match key.as_str() {
                "input" => match v.as_str() {
                    "pixels" => {}
                    "coefficients" => coefficients = true,
                    _ => {
                        return Err(bad(format!(
                            "input = '{value}': expected 'pixels' or 'coefficients'"
                        )))
                    }
                },
                "bands" => {
                    bands = v
                        .parse::<usize>()
                        .ok()
                        .filter(|b| (1..=64).contains(b))
                        .ok_or_else(|| bad(format!("bands = '{value}': expected 1..64")))?
                }
                "size" => {
                    spec.size = Some(
                        v.parse::<u32>()
                            .ok()
                            .filter(|s| (1..=8192).contains(s))
                            .ok_or_else(|| {
                                bad(format!("size = '{value}': expected 1..8192 pixels"))
                            })?,
                    )
                }
                "layout" => {
                    spec.layout = match v.as_str() {
                        "nchw" | "chw" => Layout::Chw,
                        "nhwc" | "hwc" => Layout::Hwc,
                        _ => {
                            return Err(bad(format!(
                                "layout = '{value}': expected 'nchw' or 'nhwc'"
                            )))
                        }
                    }
                }
                "channels" => {
                    spec.bgr = match v.as_str() {
                        "rgb" => false,
                        "bgr" => true,
                        _ => {
                            return Err(bad(format!(
                                "channels = '{value}': expected 'rgb' or 'bgr'"
                            )))
                        }
                    }
                }
                "mean" => spec.mean = triple(key, value)?,
                "std" => spec.std = triple(key, value)?,
                "range" => {
                    range255 = match v.as_str() {
                        "0..1" | "1" => false,
                        "0..255" | "255" => true,
                        _ => {
                            return Err(bad(format!(
                                "range = '{value}': expected '0..1' or '0..255'"
                            )))
                        }
                    }
                }
                "output" => {
                    spec.output = match v.as_str() {
                        "label" if has_labels => OutputKind::Label,
                        "label" => return Err(bad(
                            "output = 'label' needs labels = '<file with one class name per line>'"
                                .into(),
                        )),
                        "class" => OutputKind::Class,
                        "scores" => OutputKind::Scores,
                        "embedding" => OutputKind::Embedding,
                        _ => {
                            return Err(bad(format!(
                        "output = '{value}': expected 'label', 'class', 'scores' or 'embedding'"
                    )))
                        }
                    }
                }
                "labels" => {}
                other => {
                    return Err(bad(format!(
                        "unknown model option '{other}' (valid options: {MODEL_OPTIONS})"
                    )))
                }
            }
        }
        if spec.std.contains(&0.0) {
            return Err(bad("std must not be 0".into()));
        }
        if coefficients {
            spec.coefficient_bands = Some(bands);
        } else if options.contains_key("bands") {
            return Err(bad("bands applies to input = 'coefficients' only".into()));
        }
        if let (Some(_), Some(s)) = (spec.coefficient_bands, spec.size) {
            if s % 8 != 0 {
                return Err(bad(format!(
                    "size = {s}: coefficient input covers whole 8x8 blocks, so size must be a multiple of 8"
                )));
            }
        }
        if range255 {
            spec.mean = spec.mean.map(|m| m / 255.0);
            spec.std = spec.std.map(|s| s / 255.0);
        }
        Ok(spec)
    }

    /// The usual ImageNet preprocessing at `size x size` (NCHW, RGB), class output.
    pub fn imagenet(size: u32) -> Self {
        let t = TensorSpec::imagenet(size);
        ModelSpec {
            size: Some(size),
            layout: t.layout,
            bgr: false,
            mean: t.mean,
            std: t.std,
            output: OutputKind::Class,
            coefficient_bands: None,
        }
    }

    /// The zigzag bands (mask) one image of `width x height` needs: the
    /// corner of its scaled decode, or the coefficient input's prefix.
    pub fn band_mask(&self, width: u32, height: u32, size: u32) -> u64 {
        match self.coefficient_bands {
            Some(k) if k >= 64 => u64::MAX,
            Some(k) => (1u64 << k) - 1,
            None => crate::codec::quant::scale_band_mask(crate::codec::tensor::choose_scale(
                width, height, size, size,
            )),
        }
    }

    /// Channels of the input tensor: 3 colours, or 3 planes x bands.
    pub fn channels(&self) -> usize {
        3 * self.coefficient_bands.unwrap_or(1)
    }

    /// Pixels per step of the tensor's height and width: 1, or 8 (a block).
    pub fn unit(&self) -> u32 {
        if self.coefficient_bands.is_some() {
            8
        } else {
            1
        }
    }

    /// The input tensor's shape for `n` images of side `size`.
    pub fn shape(&self, n: usize, size: u32) -> [i64; 4] {
        let (c, g) = (self.channels() as i64, (size / self.unit()) as i64);
        match self.layout {
            Layout::Chw => [n as i64, c, g, g],
            Layout::Hwc => [n as i64, g, g, c],
        }
    }

    /// The tensor spec for one image (RGB order; mean and std options are
    /// always given as R, G, B; BGR models get the planes swapped after).
    pub fn tensor(&self, size: u32) -> TensorSpec {
        TensorSpec {
            width: size,
            height: size,
            layout: self.layout,
            mean: self.mean,
            std: self.std,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_checks_options() {
        let s = ModelSpec::parse(
            &opts(&[
                ("size", "224"),
                ("mean", "0.485,0.456,0.406"),
                ("std", "0.229,0.224,0.225"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!((s.size, s.output), (Some(224), OutputKind::Label));
        let s = ModelSpec::parse(&opts(&[("range", "0..255"), ("std", "255")]), false).unwrap();
        assert_eq!((s.std, s.output), ([1.0; 3], OutputKind::Class));
        for (k, v, msg) in [
            ("size", "0", "expected 1..8192"),
            ("mean", "1,2", "one or three numbers"),
            ("output", "label", "needs labels"),
            ("bands", "8", "input = 'coefficients' only"),
            ("input", "jpeg", "expected 'pixels' or 'coefficients'"),
            ("colour", "x", "unknown model option 'colour'"),
        ] {
            let err = ModelSpec::parse(&opts(&[(k, v)]), false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(msg), "{k}: {err}");
        }
    }
}
