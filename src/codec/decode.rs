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

/// For each coefficient of the `s x s` corner (row-major): its band and
/// dequantization factor; an error names the first band that was not read.
fn corner_taps<'a>(
    plane: &'a CoefPlane,
    q: &QuantTable,
    s: usize,
    channel: usize,
) -> Result<Vec<(&'a [i16], f32)>> {
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
    Ok(taps)
}

/// Decodes one plane at scale `s/8`; its size is the plane's size times
/// `s/8`, rounded up. Needs the bands of the `s x s` corner.
pub fn decode_plane(plane: &CoefPlane, q: &QuantTable, s: usize, channel: usize) -> Result<Plane> {
    check_scale(s)?;
    let idct = ScaledIdct::new(s);
    let taps = corner_taps(plane, q, s, channel)?;
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

/// A plane decoded to floats for the tensor path, stored transposed and
/// with its rows interleaved in groups: sample (row `r`, column `x`) is at
/// `data[x * stride + slot(r)]`, where for `r = (g * 8 + l) * s + y`
/// (block row `g * 8 + l`, row `y` inside the block) `slot(r) = g * 8 * s
/// + y * 8 + l`. That is the order in which the inverse DCT produces
/// samples when its 8 SIMD lanes hold 8 vertically adjacent blocks, so
/// every result is one 8-wide store; a resampler that combines whole rows
/// of `data` (the horizontal filter) does not care about the order, and the
/// transpose that follows undoes it (see [`FloatPlane::row_of_slot`]).
#[derive(Debug, Default)]
pub struct FloatPlane {
    /// Samples in 0..=255, unrounded.
    pub data: Vec<f32>,
    /// Columns of the plane at this scale (`ceil(width * s / 8)`).
    pub width: usize,
    /// Rows (`ceil(height * s / 8)`).
    pub height: usize,
    /// Length of one transposed row: the rows of whole 8-block groups.
    pub stride: usize,
    /// The scale the plane was decoded at.
    pub s: usize,
}

impl FloatPlane {
    /// The plane row stored at position `slot` of a transposed row (may be
    /// past `height`: padding of the last block group). Slots `g * 8 * s +
    /// y * 8 + l` for `l` in 0..8 hold rows `(g * 8 + l) * s + y`.
    #[inline]
    pub fn row_of_slot(&self, slot: usize) -> usize {
        let s = self.s;
        let (g, rest) = (slot / (8 * s), slot % (8 * s));
        (g * 8 + rest % 8) * s + rest / 8
    }
}

/// Decodes one plane at scale `s/8` into `out` as a [`FloatPlane`]: the
/// same inverse DCT and clamp as [`decode_plane`], without rounding to bytes.
pub fn decode_plane_f32(
    plane: &CoefPlane,
    q: &QuantTable,
    s: usize,
    channel: usize,
    out: &mut FloatPlane,
) -> Result<()> {
    check_scale(s)?;
    let idct = ScaledIdct::new(s);
    let taps = corner_taps(plane, q, s, channel)?;
    let (bw, bh) = (plane.blocks_w(), plane.blocks_h());
    let (ow, oh) = scaled_dims(plane.width, plane.height, s);
    out.width = ow as usize;
    out.height = oh as usize;
    out.s = s;
    out.stride = bh.div_ceil(LANES) * LANES * s;
    // Every sample is written below: grow the buffer, never clear it
    // (zeroing a plane costs as much as the inverse DCT).
    let len = bw * s * out.stride;
    if out.data.len() < len {
        out.data.resize(len, 0.0);
    }
    let (basis, stride, data) = (idct.basis(), out.stride, &mut out.data[..len]);
    match s {
        1 => dispatch_f32::<1>(&taps, basis, bw, bh, stride, data),
        2 => dispatch_f32::<2>(&taps, basis, bw, bh, stride, data),
        3 => dispatch_f32::<3>(&taps, basis, bw, bh, stride, data),
        4 => dispatch_f32::<4>(&taps, basis, bw, bh, stride, data),
        5 => dispatch_f32::<5>(&taps, basis, bw, bh, stride, data),
        6 => dispatch_f32::<6>(&taps, basis, bw, bh, stride, data),
        7 => dispatch_f32::<7>(&taps, basis, bw, bh, stride, data),
        _ => dispatch_f32::<8>(&taps, basis, bw, bh, stride, data),
    }
    Ok(())
}

/// [`blocks_to_floats`] compiled for AVX2 when the CPU has it.
fn dispatch_f32<const S: usize>(
    taps: &[(&[i16], f32)],
    b: &[f32; 64],
    bw: usize,
    bh: usize,
    stride: usize,
    data: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, the only feature the copy assumes.
        unsafe { blocks_to_floats_avx2::<S>(taps, b, bw, bh, stride, data) };
        return;
    }
    blocks_to_floats::<S>(taps, b, bw, bh, stride, data)
}

/// [`blocks_to_floats`] written with AVX2 intrinsics: the same operations
/// in the same order (multiply, then add; no FMA), so the output is
/// identical; the compiler does not vectorise the portable lane loops.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blocks_to_floats_avx2<const S: usize>(
    taps: &[(&[i16], f32)],
    b: &[f32; 64],
    bw: usize,
    bh: usize,
    stride: usize,
    data: &mut [f32],
) {
    use std::arch::x86_64::*;
    let gain = S as f32 / 8.0;
    let (zero, top, shift) = (
        _mm256_setzero_ps(),
        _mm256_set1_ps(255.0),
        _mm256_set1_ps(128.0),
    );
    // Broadcast weights: row pass b[x][u], column pass b[y][v] * gain; tap factors.
    let mut wr = [zero; 64];
    let mut wc = [zero; 64];
    let mut qv = [zero; 64];
    for i in 0..S * S {
        wr[i] = _mm256_set1_ps(b[i]);
        wc[i] = _mm256_set1_ps(b[i] * gain);
    }
    for (q, &(_, f)) in qv.iter_mut().zip(taps) {
        *q = _mm256_set1_ps(f);
    }
    let mut coef = [zero; 64];
    let mut tmp = [zero; 64];
    for g in 0..bh.div_ceil(LANES) {
        let lanes = LANES.min(bh - g * LANES);
        for bx in 0..bw {
            let first = g * LANES * bw + bx;
            for (i, &(band, _)) in taps.iter().enumerate() {
                let iv = if lanes == LANES {
                    // One bounds check for the 8 values of the group's column.
                    let col = &band[first..first + (LANES - 1) * bw + 1];
                    let p = col.as_ptr();
                    // SAFETY: `col` holds index l * bw for every l < 8.
                    let at = |l: usize| unsafe { *p.add(l * bw) } as i32;
                    _mm256_setr_epi32(at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7))
                } else {
                    let mut v = [0i32; LANES];
                    for (d, &x) in v
                        .iter_mut()
                        .zip(band[first..].iter().step_by(bw))
                        .take(lanes)
                    {
                        *d = x as i32;
                    }
                    // SAFETY: `v` holds 8 i32, an unaligned 256-bit load.
                    unsafe { _mm256_loadu_si256(v.as_ptr() as *const __m256i) }
                };
                coef[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(iv), qv[i]);
            }
            for v in 0..S {
                for x in 0..S {
                    let mut acc = zero;
                    for u in 0..S {
                        acc = _mm256_add_ps(acc, _mm256_mul_ps(coef[v * S + u], wr[x * S + u]));
                    }
                    tmp[v * S + x] = acc;
                }
            }
            for x in 0..S {
                let base = (bx * S + x) * stride + g * LANES * S;
                let dst = &mut data[base..base + LANES * S];
                for y in 0..S {
                    let mut acc = zero;
                    for v in 0..S {
                        acc = _mm256_add_ps(acc, _mm256_mul_ps(tmp[v * S + x], wc[y * S + v]));
                    }
                    let px = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(acc, shift), zero), top);
                    // SAFETY: `dst` holds S rows of 8 floats; row y is in bounds.
                    unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(y * LANES), px) };
                }
            }
        }
    }
}

/// Dequantize + s x s inverse DCT + level shift + clamp, 8 vertically
/// adjacent blocks per step, written in [`FloatPlane`] order.
// As in `blocks_to_pixels`: lane loops index several per-lane arrays.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn blocks_to_floats<const S: usize>(
    taps: &[(&[i16], f32)],
    b: &[f32; 64],
    bw: usize,
    bh: usize,
    stride: usize,
    data: &mut [f32],
) {
    let gain = S as f32 / 8.0;
    let mut coef = [[0f32; LANES]; 64];
    let mut tmp = [[0f32; LANES]; 64];
    for g in 0..bh.div_ceil(LANES) {
        let lanes = LANES.min(bh - g * LANES);
        for bx in 0..bw {
            let first = g * LANES * bw + bx;
            for (c, &(band, q)) in coef.iter_mut().zip(taps) {
                // One value per block row of the group (no per-lane bounds checks).
                let col = band[first..].iter().step_by(bw);
                if lanes == LANES {
                    for (d, &v) in c.iter_mut().zip(col) {
                        *d = v as i32 as f32 * q;
                    }
                } else {
                    c.fill(0.0);
                    for (d, &v) in c.iter_mut().zip(col).take(lanes) {
                        *d = v as i32 as f32 * q;
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
            // columns, straight into the transposed plane.
            for x in 0..S {
                let base = (bx * S + x) * stride + g * LANES * S;
                let dst = &mut data[base..base + LANES * S];
                for (y, d) in dst.chunks_exact_mut(LANES).enumerate() {
                    let mut acc = [0f32; LANES];
                    for v in 0..S {
                        let w = b[y * S + v] * gain;
                        let t = &tmp[v * S + x];
                        for l in 0..LANES {
                            acc[l] += t[l] * w;
                        }
                    }
                    for l in 0..LANES {
                        d[l] = (acc[l] + 128.0).clamp(0.0, 255.0);
                    }
                }
            }
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

    /// The float decode holds the byte decode's samples, unrounded, at the
    /// places [`FloatPlane::row_of_slot`] says; both builds agree.
    fn float_plane_matches<const S: usize>(img: &CoefficientImage) {
        for (c, p) in img.planes.iter().enumerate() {
            let bytes = decode_plane(p, &img.quant[c], S, c).unwrap();
            let mut fp = FloatPlane::default();
            decode_plane_f32(p, &img.quant[c], S, c, &mut fp).unwrap();
            assert_eq!(
                (fp.width, fp.height),
                (bytes.width as usize, bytes.height as usize)
            );
            let mut seen = 0;
            for x in 0..fp.width {
                for slot in 0..fp.stride {
                    let r = fp.row_of_slot(slot);
                    if r >= fp.height {
                        continue;
                    }
                    let f = fp.data[x * fp.stride + slot];
                    let b = bytes.data[r * fp.width + x] as f32;
                    assert!(
                        (f - b).abs() <= 0.501,
                        "scale {S} plane {c} ({x}, {r}): {f} vs {b}"
                    );
                    seen += 1;
                }
            }
            assert_eq!(seen, fp.width * fp.height, "every sample has one slot");
            let (bw, bh) = (p.blocks_w(), p.blocks_h());
            let taps = corner_taps(p, &img.quant[c], S, c).unwrap();
            let basis = ScaledIdct::new(S);
            let mut portable = vec![0f32; fp.data.len()];
            blocks_to_floats::<S>(&taps, basis.basis(), bw, bh, fp.stride, &mut portable);
            let mut fast = vec![0f32; fp.data.len()];
            dispatch_f32::<S>(&taps, basis.basis(), bw, bh, fp.stride, &mut fast);
            assert_eq!(portable, fast, "scale {S}");
        }
    }

    #[test]
    fn float_planes_hold_the_byte_samples() {
        // 21 block rows: two full groups of 8 and a partial one.
        let (w, h) = (77, 165);
        let img = encode_rgb(&pattern(w, h), w, h, EncodeOptions::default()).unwrap();
        float_plane_matches::<1>(&img);
        float_plane_matches::<2>(&img);
        float_plane_matches::<3>(&img);
        float_plane_matches::<4>(&img);
        float_plane_matches::<5>(&img);
        float_plane_matches::<6>(&img);
        float_plane_matches::<7>(&img);
        float_plane_matches::<8>(&img);
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
