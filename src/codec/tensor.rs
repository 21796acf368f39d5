//! Stored image -> model-ready float tensor.
//!
//! Picks the smallest DCT scale whose output is at least the requested size
//! (never upsampling when the stored image is large enough), decodes the
//! planes at that scale, resizes each plane to the requested size (chroma
//! upsampling is folded into that resize), then converts to RGB and
//! normalises in one pass.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::color::ycbcr_to_rgb;
use super::decode::{decode_plane, Plane};
use super::{scaled_dims, CoefficientImage};
use crate::error::{Error, Result};

/// Memory order of the output tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Height x width x channel (NHWC models).
    Hwc,
    /// Channel x height x width (NCHW models, PyTorch exports).
    Chw,
}

/// What the model wants: size, layout and normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorSpec {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    /// Per-channel (R, G, B) mean, on the 0..1 scale.
    pub mean: [f32; 3],
    /// Per-channel (R, G, B) standard deviation, on the 0..1 scale.
    pub std: [f32; 3],
}

impl TensorSpec {
    /// The usual ImageNet preprocessing at `size x size`, CHW.
    pub fn imagenet(size: u32) -> Self {
        TensorSpec {
            width: size,
            height: size,
            layout: Layout::Chw,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// Number of floats in one tensor.
    pub fn len(&self) -> usize {
        self.width as usize * self.height as usize * 3
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The smallest scale `s` in 1..=8 whose decode of a `width x height`
/// image is at least `target_w x target_h`; 8 when even full size is smaller.
pub fn choose_scale(width: u32, height: u32, target_w: u32, target_h: u32) -> usize {
    (1..=8)
        .find(|&s| {
            let (w, h) = scaled_dims(width, height, s);
            w >= target_w && h >= target_h
        })
        .unwrap_or(8)
}

/// Reusable buffers for [`to_tensor_into`], so a scan allocates once.
#[derive(Default)]
pub struct TensorScratch {
    resizer: Resizer,
    planes: [Vec<u8>; 3],
}

impl TensorScratch {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Converts a stored image to a tensor as `spec` describes (allocating).
pub fn to_tensor(img: &CoefficientImage, spec: &TensorSpec) -> Result<Vec<f32>> {
    let mut out = vec![0f32; spec.len()];
    to_tensor_into(img, spec, &mut out, &mut TensorScratch::new())?;
    Ok(out)
}

/// Converts a stored image to a tensor written into `out` (`spec.len()` floats).
/// Returns the scale it decoded at.
pub fn to_tensor_into(
    img: &CoefficientImage,
    spec: &TensorSpec,
    out: &mut [f32],
    scratch: &mut TensorScratch,
) -> Result<usize> {
    if spec.width == 0 || spec.height == 0 {
        return Err(Error::InvalidArgument(format!(
            "tensor size must be positive, got {}x{}",
            spec.width, spec.height
        )));
    }
    if out.len() != spec.len() {
        return Err(Error::InvalidArgument(format!(
            "tensor buffer holds {} floats, {}x{}x3 needs {}",
            out.len(),
            spec.width,
            spec.height,
            spec.len()
        )));
    }
    let s = choose_scale(img.width, img.height, spec.width, spec.height);
    let (tw, th) = (spec.width, spec.height);
    for (c, (plane, q)) in img.planes.iter().zip(&img.quant).enumerate() {
        let decoded = decode_plane(plane, q, s, c)?;
        resize_plane(
            &decoded,
            tw,
            th,
            &mut scratch.resizer,
            &mut scratch.planes[c],
        )?;
    }
    let n = tw as usize * th as usize;
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.std[c]));
    let bias: [f32; 3] = std::array::from_fn(|c| -spec.mean[c] / spec.std[c]);
    let [yp, cbp, crp] = &scratch.planes;
    let gray = img.planes.len() == 1;
    for i in 0..n {
        let y = yp[i] as f32;
        let (r, g, b) = if gray {
            (y, y, y)
        } else {
            ycbcr_to_rgb(y, cbp[i] as f32, crp[i] as f32)
        };
        let rgb = [
            r.clamp(0.0, 255.0),
            g.clamp(0.0, 255.0),
            b.clamp(0.0, 255.0),
        ];
        match spec.layout {
            Layout::Chw => {
                for c in 0..3 {
                    out[c * n + i] = rgb[c] * scale[c] + bias[c];
                }
            }
            Layout::Hwc => {
                for c in 0..3 {
                    out[i * 3 + c] = rgb[c] * scale[c] + bias[c];
                }
            }
        }
    }
    Ok(s)
}

/// Resizes an 8-bit plane to `w x h` into `dst` (bilinear convolution, which
/// averages over the footprint when shrinking).
fn resize_plane(
    src: &Plane,
    w: u32,
    h: u32,
    resizer: &mut Resizer,
    dst: &mut Vec<u8>,
) -> Result<()> {
    dst.clear();
    if src.width == w && src.height == h {
        dst.extend_from_slice(&src.data);
        return Ok(());
    }
    dst.resize(w as usize * h as usize, 0);
    let src_img = ImageRef::new(src.width, src.height, &src.data, PixelType::U8)
        .map_err(|e| Error::Internal(format!("resize source: {e}")))?;
    let mut dst_img = Image::from_slice_u8(w, h, dst, PixelType::U8)
        .map_err(|e| Error::Internal(format!("resize target: {e}")))?;
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer
        .resize(&src_img, &mut dst_img, &opts)
        .map_err(|e| Error::Internal(format!("resize: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::encode::{encode_gray, encode_rgb, EncodeOptions};
    use super::super::Chroma;
    use super::*;

    #[test]
    fn scale_choice_never_upsamples() {
        assert_eq!(choose_scale(512, 512, 224, 224), 4); // 256 >= 224
        assert_eq!(choose_scale(512, 512, 64, 64), 1);
        assert_eq!(choose_scale(1024, 683, 224, 224), 3); // 384 x 257
        assert_eq!(choose_scale(100, 100, 224, 224), 8); // too small: full size
        assert_eq!(choose_scale(448, 448, 224, 224), 4);
    }

    #[test]
    fn flat_colour_normalises_exactly() {
        let (w, h) = (40, 24);
        let rgb: Vec<u8> = (0..w * h).flat_map(|_| [200u8, 100, 50]).collect();
        let img = encode_rgb(&rgb, w, h, EncodeOptions::default());
        let spec = TensorSpec::imagenet(16);
        let t = to_tensor(&img, &spec).unwrap();
        let n = 16 * 16;
        for (c, v) in [200.0f32, 100.0, 50.0].iter().enumerate() {
            let want = (v / 255.0 - spec.mean[c]) / spec.std[c];
            for &got in &t[c * n..(c + 1) * n] {
                assert!((got - want).abs() < 0.05, "channel {c}: {got} vs {want}");
            }
        }
        let hwc = to_tensor(
            &img,
            &TensorSpec {
                layout: Layout::Hwc,
                ..spec
            },
        )
        .unwrap();
        assert!((hwc[0] - t[0]).abs() < 1e-6 && (hwc[1] - t[n]).abs() < 1e-6);
    }

    #[test]
    fn gray_images_fill_three_channels() {
        let (w, h) = (32, 32);
        let g = vec![77u8; 32 * 32];
        let img = encode_gray(
            &g,
            w,
            h,
            EncodeOptions {
                quality: 90,
                chroma: Chroma::Gray,
            },
        );
        let t = to_tensor(&img, &TensorSpec::imagenet(8)).unwrap();
        assert_eq!(t.len(), 8 * 8 * 3);
        assert!(to_tensor(
            &img,
            &TensorSpec {
                width: 0,
                ..TensorSpec::imagenet(8)
            }
        )
        .is_err());
    }
}
