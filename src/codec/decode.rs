//! Quantized coefficients -> pixels, at `s/8` of the stored size, straight
//! from the `s x s` low coefficients of each block (no full-size decode).

use super::color::{to_u8, ycbcr_to_rgb};
use super::dct::ScaledIdct;
use super::quant::{QuantTable, ZIGZAG};
use super::{scaled_dims, CoefPlane, CoefficientImage, CHANNEL_NAMES};
use crate::error::{Error, Result};

/// One decoded 8-bit plane.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// An 8-bit RGB image, interleaved.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// Checks that `s` is a valid scale.
pub fn check_scale(s: usize) -> Result<()> {
    if (1..=8).contains(&s) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "scale must be 1..=8 (eighths of the stored size), got {s}"
        )))
    }
}

/// Decodes one plane at scale `s/8`; its size is the plane's size times
/// `s/8`, rounded up. Needs the bands of the `s x s` corner.
pub fn decode_plane(plane: &CoefPlane, q: &QuantTable, s: usize, channel: usize) -> Result<Plane> {
    check_scale(s)?;
    let idct = ScaledIdct::new(s);
    // For each coefficient of the s x s corner: its band and dequantization factor.
    let mut taps: Vec<(&[i16], f32)> = Vec::with_capacity(s * s);
    for v in 0..s {
        for u in 0..s {
            let k = ZIGZAG
                .iter()
                .position(|&p| p == v * 8 + u)
                .expect("zigzag covers 64");
            let band = plane.band(k).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "decoding at scale {s}/8 needs band image.{}.{k}, which was not read",
                    CHANNEL_NAMES[channel]
                ))
            })?;
            taps.push((band, q[k] as f32));
        }
    }
    let (bw, bh) = (plane.blocks_w(), plane.blocks_h());
    let (ow, oh) = scaled_dims(plane.width, plane.height, s);
    let (ow, oh) = (ow as usize, oh as usize);
    let mut data = vec![0u8; ow * oh];
    let mut coef = [0f32; 64];
    let mut out = [0f32; 64];
    for by in 0..bh {
        let y0 = by * s;
        let rows = s.min(oh - y0);
        for bx in 0..bw {
            let b = by * bw + bx;
            for (c, (band, qk)) in coef.iter_mut().zip(&taps) {
                *c = band[b] as f32 * qk;
            }
            idct.inverse(&coef, &mut out);
            let x0 = bx * s;
            let cols = s.min(ow - x0);
            for y in 0..rows {
                let dst = &mut data[(y0 + y) * ow + x0..(y0 + y) * ow + x0 + cols];
                for (x, d) in dst.iter_mut().enumerate() {
                    *d = to_u8(out[y * s + x] + 128.0);
                }
            }
        }
    }
    Ok(Plane {
        width: ow as u32,
        height: oh as u32,
        data,
    })
}

/// Decodes every plane at scale `s/8`.
pub fn decode_planes(img: &CoefficientImage, s: usize) -> Result<Vec<Plane>> {
    img.planes
        .iter()
        .zip(&img.quant)
        .enumerate()
        .map(|(c, (p, q))| decode_plane(p, q, s, c))
        .collect()
}

/// Decodes to RGB at scale `s/8`; subsampled chroma is upsampled with a
/// centred bilinear filter (libjpeg's "fancy upsampling").
pub fn decode_rgb(img: &CoefficientImage, s: usize) -> Result<RgbImage> {
    let planes = decode_planes(img, s)?;
    let (w, h) = img.scaled_dims(s);
    let n = w as usize * h as usize;
    let mut data = vec![0u8; n * 3];
    if planes.len() == 1 {
        for (px, &y) in data.chunks_exact_mut(3).zip(&planes[0].data) {
            px.fill(y);
        }
    } else {
        let cb = resample_bilinear(&planes[1], w, h);
        let cr = resample_bilinear(&planes[2], w, h);
        for (i, px) in data.chunks_exact_mut(3).enumerate() {
            let (r, g, b) = ycbcr_to_rgb(planes[0].data[i] as f32, cb[i], cr[i]);
            px[0] = to_u8(r);
            px[1] = to_u8(g);
            px[2] = to_u8(b);
        }
    }
    Ok(RgbImage {
        width: w,
        height: h,
        data,
    })
}

/// Resamples a plane to `w x h` with pixel centres aligned (a no-op copy
/// when the size already matches).
fn resample_bilinear(p: &Plane, w: u32, h: u32) -> Vec<f32> {
    if p.width == w && p.height == h {
        return p.data.iter().map(|&v| v as f32).collect();
    }
    let (sw, sh) = (p.width as usize, p.height as usize);
    let (w, h) = (w as usize, h as usize);
    let axis = |dst: usize, src_len: usize, dst_len: usize| {
        let pos = ((dst as f32 + 0.5) * src_len as f32 / dst_len as f32 - 0.5).max(0.0);
        let i0 = (pos as usize).min(src_len - 1);
        let i1 = (i0 + 1).min(src_len - 1);
        (i0, i1, pos - i0 as f32)
    };
    let xs: Vec<_> = (0..w).map(|x| axis(x, sw, w)).collect();
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        let (y0, y1, fy) = axis(y, sh, h);
        let r0 = &p.data[y0 * sw..(y0 + 1) * sw];
        let r1 = &p.data[y1 * sw..(y1 + 1) * sw];
        for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
            let top = r0[x0] as f32 * (1.0 - fx) + r0[x1] as f32 * fx;
            let bot = r1[x0] as f32 * (1.0 - fx) + r1[x1] as f32 * fx;
            out[y * w + x] = top * (1.0 - fy) + bot * fy;
        }
    }
    out
}

/// Peak signal-to-noise ratio in dB between two equally sized 8-bit buffers.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "psnr of buffers of different sizes");
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum();
    if se == 0.0 {
        return f64::INFINITY;
    }
    let mse = se / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

#[cfg(test)]
mod tests {
    use super::super::encode::{encode_rgb, EncodeOptions};
    use super::super::Chroma;
    use super::*;

    /// A smooth synthetic photo-like pattern (odd size on purpose).
    fn pattern(w: u32, h: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let fx = x as f32 / w as f32;
                let fy = y as f32 / h as f32;
                v.push((255.0 * fx) as u8);
                v.push((255.0 * fy) as u8);
                v.push((128.0 + 100.0 * (fx * 9.0).sin() * (fy * 7.0).cos()) as u8);
            }
        }
        v
    }

    #[test]
    fn full_scale_round_trip_444_is_close() {
        let (w, h) = (61, 45);
        let rgb = pattern(w, h);
        let opts = EncodeOptions {
            quality: 95,
            chroma: Chroma::Yuv444,
        };
        let img = encode_rgb(&rgb, w, h, opts);
        let out = decode_rgb(&img, 8).unwrap();
        assert_eq!((out.width, out.height), (w, h));
        let p = psnr(&rgb, &out.data);
        assert!(p > 40.0, "psnr {p}");
    }

    #[test]
    fn scaled_sizes_round_up() {
        let (w, h) = (61, 45);
        let img = encode_rgb(&pattern(w, h), w, h, EncodeOptions::default());
        for s in 1..=8 {
            let out = decode_rgb(&img, s).unwrap();
            assert_eq!(
                (out.width, out.height),
                ((w * s as u32).div_ceil(8), (h * s as u32).div_ceil(8))
            );
        }
    }

    #[test]
    fn missing_band_is_a_clear_error() {
        let (w, h) = (16, 16);
        let mut img = encode_rgb(&pattern(w, h), w, h, EncodeOptions::default());
        img.planes[1].bands[4] = None;
        let err = decode_rgb(&img, 2).unwrap_err().to_string();
        assert!(err.contains("image.cb.4"), "{err}");
        assert!(decode_rgb(&img, 1).is_ok(), "scale 1 needs only band 0");
        assert!(decode_rgb(&img, 0).is_err());
        assert!(decode_rgb(&img, 9).is_err());
    }
}
