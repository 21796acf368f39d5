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
    let mut data = vec![0u8; ow as usize * oh as usize];
    let geometry = Geometry {
        bw,
        bh,
        ow: ow as usize,
        oh: oh as usize,
    };
    let basis = idct.basis();
    match s {
        1 => dispatch::<1>(&taps, basis, &geometry, &mut data),
        2 => dispatch::<2>(&taps, basis, &geometry, &mut data),
        3 => dispatch::<3>(&taps, basis, &geometry, &mut data),
        4 => dispatch::<4>(&taps, basis, &geometry, &mut data),
        5 => dispatch::<5>(&taps, basis, &geometry, &mut data),
        6 => dispatch::<6>(&taps, basis, &geometry, &mut data),
        7 => dispatch::<7>(&taps, basis, &geometry, &mut data),
        _ => dispatch::<8>(&taps, basis, &geometry, &mut data),
    }
    Ok(Plane {
        width: ow,
        height: oh,
        data,
    })
}

/// Block grid and output size of one plane.
struct Geometry {
    bw: usize,
    bh: usize,
    ow: usize,
    oh: usize,
}

/// Blocks processed side by side: every step of the inverse DCT is done on
/// `LANES` horizontally adjacent blocks at once, so it vectorises.
const LANES: usize = 8;

/// Runs [`blocks_to_pixels`] compiled for AVX2 when the CPU has it (the
/// lanes then become one 8-wide register), else the portable build.
fn dispatch<const S: usize>(taps: &[(&[i16], f32)], b: &[f32; 64], g: &Geometry, data: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, the only feature the copy assumes.
        unsafe { blocks_to_pixels_avx2::<S>(taps, b, g, data) };
        return;
    }
    blocks_to_pixels::<S>(taps, b, g, data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blocks_to_pixels_avx2<const S: usize>(
    taps: &[(&[i16], f32)],
    b: &[f32; 64],
    g: &Geometry,
    data: &mut [u8],
) {
    blocks_to_pixels::<S>(taps, b, g, data)
}

/// Dequantize + s x s inverse DCT + level shift + clamp for every block.
// Lane loops index several per-lane arrays with the same `l`; iterators
// would hide the lane structure the vectoriser needs.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn blocks_to_pixels<const S: usize>(
    taps: &[(&[i16], f32)],
    b: &[f32; 64],
    g: &Geometry,
    data: &mut [u8],
) {
    let gain = S as f32 / 8.0;
    let mut coef = [[0f32; LANES]; 64];
    let mut tmp = [[0f32; LANES]; 64];
    let mut px = [[0u8; LANES]; 64];
    for by in 0..g.bh {
        let y0 = by * S;
        let rows = S.min(g.oh - y0);
        let mut bx = 0;
        while bx < g.bw {
            let lanes = LANES.min(g.bw - bx);
            let first = by * g.bw + bx;
            for (c, &(band, q)) in coef.iter_mut().zip(taps) {
                let src = &band[first..first + lanes];
                if let Ok(src) = <&[i16; LANES]>::try_from(src) {
                    for l in 0..LANES {
                        c[l] = src[l] as i32 as f32 * q;
                    }
                } else {
                    for l in 0..lanes {
                        c[l] = src[l] as f32 * q;
                    }
                }
            }
            // rows: tmp[v][x] = sum_u coef[v][u] * b[x][u]
            for v in 0..S {
                for x in 0..S {
                    let mut acc = [0f32; LANES];
                    for u in 0..S {
                        let w = b[x * S + u];
                        let c = &coef[v * S + u];
                        for l in 0..LANES {
                            acc[l] += c[l] * w;
                        }
                    }
                    tmp[v * S + x] = acc;
                }
            }
            // columns: px[y][x] = clamp(gain * sum_v b[y][v] * tmp[v][x] + 128)
            for y in 0..S {
                for x in 0..S {
                    let mut acc = [0f32; LANES];
                    for v in 0..S {
                        let w = b[y * S + v] * gain;
                        let t = &tmp[v * S + x];
                        for l in 0..LANES {
                            acc[l] += t[l] * w;
                        }
                    }
                    let p = &mut px[y * S + x];
                    for l in 0..LANES {
                        // +0.5 rounds; clamped first, so the casts are exact.
                        p[l] = (acc[l] + 128.5).clamp(0.0, 255.0) as i32 as u8;
                    }
                }
            }
            let x0 = bx * S;
            let full = lanes == LANES && x0 + LANES * S <= g.ow;
            for y in 0..rows {
                let row = &mut data[(y0 + y) * g.ow..(y0 + y + 1) * g.ow];
                if full {
                    // Common case: the whole group lies inside the plane, so
                    // assemble the row segment in a fixed array, copy it once.
                    let mut line = [0u8; LANES * 8];
                    for l in 0..LANES {
                        for x in 0..S {
                            line[l * S + x] = px[y * S + x][l];
                        }
                    }
                    row[x0..x0 + LANES * S].copy_from_slice(&line[..LANES * S]);
                    continue;
                }
                for l in 0..lanes {
                    let xl = x0 + l * S;
                    let cols = S.min(g.ow - xl);
                    for (x, d) in row[xl..xl + cols].iter_mut().enumerate() {
                        *d = px[y * S + x][l];
                    }
                }
            }
            bx += lanes;
        }
    }
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
        let img = encode_rgb(&rgb, w, h, opts).unwrap();
        let out = decode_rgb(&img, 8).unwrap();
        assert_eq!((out.width, out.height), (w, h));
        let p = psnr(&rgb, &out.data);
        assert!(p > 40.0, "psnr {p}");
    }

    /// Both builds of the block kernel on one plane at scale `S`.
    fn builds_agree<const S: usize>(img: &CoefficientImage) {
        let p = &img.planes[0];
        let idct = ScaledIdct::new(S);
        let taps: Vec<(&[i16], f32)> = (0..S * S)
            .map(|j| {
                let k = ZIGZAG
                    .iter()
                    .position(|&z| z == (j / S) * 8 + j % S)
                    .unwrap();
                (p.band(k).unwrap(), img.quant[0][k] as f32)
            })
            .collect();
        let (ow, oh) = scaled_dims(p.width, p.height, S);
        let g = Geometry {
            bw: p.blocks_w(),
            bh: p.blocks_h(),
            ow: ow as usize,
            oh: oh as usize,
        };
        let mut a = vec![0u8; (ow * oh) as usize];
        let mut b = a.clone();
        dispatch::<S>(&taps, idct.basis(), &g, &mut a);
        blocks_to_pixels::<S>(&taps, idct.basis(), &g, &mut b);
        // Lane arithmetic is the same IEEE operations in the same order.
        assert_eq!(a, b, "scale {S}");
    }

    #[test]
    fn vectorised_and_portable_builds_agree() {
        let (w, h) = (77, 41);
        let img = encode_rgb(&pattern(w, h), w, h, EncodeOptions::default()).unwrap();
        builds_agree::<1>(&img);
        builds_agree::<2>(&img);
        builds_agree::<3>(&img);
        builds_agree::<4>(&img);
        builds_agree::<5>(&img);
        builds_agree::<6>(&img);
        builds_agree::<7>(&img);
        builds_agree::<8>(&img);
    }

    #[test]
    fn scaled_sizes_round_up() {
        let (w, h) = (61, 45);
        let img = encode_rgb(&pattern(w, h), w, h, EncodeOptions::default()).unwrap();
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
        let mut img = encode_rgb(&pattern(w, h), w, h, EncodeOptions::default()).unwrap();
        img.clear_band(1, 4);
        let err = decode_rgb(&img, 2).unwrap_err().to_string();
        assert!(err.contains("image.cb.4"), "{err}");
        assert!(decode_rgb(&img, 1).is_ok(), "scale 1 needs only band 0");
        assert!(decode_rgb(&img, 0).is_err());
        assert!(decode_rgb(&img, 9).is_err());
    }
}
