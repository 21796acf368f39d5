//! Stored image -> model-ready float tensor.
//!
//! Picks the smallest DCT scale whose output is at least the requested size
//! (never upsampling when the stored image is large enough), decodes the
//! planes at that scale, resizes each plane to the requested size (chroma
//! upsampling is folded into that resize), then converts to RGB and
//! normalises in one pass. Resizing is a separable triangle filter widened
//! when shrinking (antialiased bilinear, as fast_image_resize's `Bilinear`
//! convolution), written here in f32 so it works on planes and feeds the
//! colour conversion without a trip through bytes.
//!
//! The inverse DCT writes each plane transposed, in floats
//! ([`FloatPlane`]), so that both resampling passes combine whole rows
//! (8-wide SIMD, no gathers) with one 8x8-tiled transpose between them;
//! no pixel is rounded to a byte on the way.

#[cfg(test)]
use super::decode::{decode_plane, Plane};
use super::decode::{decode_plane_f32, FloatPlane};
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
    /// Resampling taps by (source length, target length).
    taps: Vec<((usize, usize), Taps)>,
    /// The plane being decoded.
    plane: FloatPlane,
    /// After the horizontal pass (transposed), and transposed back.
    across: Vec<f32>,
    down: Vec<f32>,
    planes: [Vec<f32>; 3],
}

impl TensorScratch {
    fn taps(&mut self, src: usize, dst: usize) -> usize {
        if let Some(i) = self.taps.iter().position(|(k, _)| *k == (src, dst)) {
            return i;
        }
        self.taps.push(((src, dst), Taps::new(src, dst)));
        self.taps.len() - 1
    }
}

/// Separable resampling weights: output `i` is the sum over `t < k` of
/// `weights[i * k + t] * src[start[i] + t]`.
struct Taps {
    k: usize,
    start: Vec<usize>,
    weights: Vec<f32>,
}

impl Taps {
    /// Triangle filter of radius `max(1, src/dst)` source pixels centred on
    /// each output pixel, edges clamped, weights normalised.
    fn new(src: usize, dst: usize) -> Self {
        let scale = src as f64 / dst as f64;
        let radius = scale.max(1.0);
        let mut rows: Vec<(usize, Vec<f64>)> = Vec::with_capacity(dst);
        for i in 0..dst {
            let centre = (i as f64 + 0.5) * scale - 0.5;
            let lo = (centre - radius).ceil() as i64;
            let hi = (centre + radius).floor() as i64;
            let first = lo.clamp(0, src as i64 - 1) as usize;
            let last = hi.clamp(0, src as i64 - 1) as usize;
            let mut w = vec![0f64; last - first + 1];
            for j in lo..=hi {
                let weight = (1.0 - (j as f64 - centre).abs() / radius).max(0.0);
                let idx = j.clamp(first as i64, last as i64) as usize;
                w[idx - first] += weight;
            }
            let sum: f64 = w.iter().sum();
            w.iter_mut().for_each(|v| *v /= sum);
            rows.push((first, w));
        }
        let k = rows.iter().map(|(_, w)| w.len()).max().unwrap_or(1);
        let mut start = Vec::with_capacity(dst);
        let mut weights = vec![0f32; dst * k];
        for (i, (first, w)) in rows.into_iter().enumerate() {
            // Shift windows at the right edge left so all k taps stay inside.
            let s = first.min(src - k.min(src));
            for (t, v) in w.iter().enumerate() {
                weights[i * k + first - s + t] = *v as f32;
            }
            start.push(s);
        }
        Taps { k, start, weights }
    }
}

/// Resamples a decoded plane to `tw x th` (row-major) in `out`.
struct PlaneResample<'a> {
    plane: &'a FloatPlane,
    tw: usize,
    th: usize,
    /// Horizontal taps (plane width -> tw) and vertical (height -> th).
    ht: &'a Taps,
    vt: &'a Taps,
}

/// Runs [`resample_plane`] compiled for AVX2 when the CPU has it, else
/// the portable build.
fn resample_plane_dispatch(
    job: &PlaneResample,
    across: &mut Vec<f32>,
    down: &mut Vec<f32>,
    out: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, the only feature the copy assumes.
        unsafe { resample_plane_avx2(job, across, down, out) };
        return;
    }
    resample_plane::<false>(job, across, down, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resample_plane_avx2(
    job: &PlaneResample,
    across: &mut Vec<f32>,
    down: &mut Vec<f32>,
    out: &mut Vec<f32>,
) {
    resample_plane::<true>(job, across, down, out)
}

/// The 8x8 tile whose row `i` is `src[first + i * stride..][..8]`,
/// transposed: `out[l][i] = src[first + i * stride + l]`.
#[inline(always)]
fn transpose_tile<const AVX2: bool>(src: &[f32], first: usize, stride: usize) -> [[f32; 8]; 8] {
    let rows = &src[first..first + 7 * stride + 8];
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: AVX2 is only true in the build that runs after the CPU
        // check; `rows` holds all 8 rows.
        return unsafe { transpose8_avx2(rows, stride) };
    }
    let mut out = [[0f32; 8]; 8];
    for i in 0..8 {
        for (l, &v) in rows[i * stride..i * stride + 8].iter().enumerate() {
            out[l][i] = v;
        }
    }
    out
}

/// The usual unpack / shuffle / lane-permute 8x8 transpose (24 shuffles);
/// `rows` must hold `7 * stride + 8` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose8_avx2(rows: &[f32], stride: usize) -> [[f32; 8]; 8] {
    use std::arch::x86_64::*;
    debug_assert!(rows.len() >= 7 * stride + 8);
    let p = rows.as_ptr();
    // SAFETY: the caller passes 7 * stride + 8 floats.
    let load = |i: usize| unsafe { _mm256_loadu_ps(p.add(i * stride)) };
    let r = [
        load(0),
        load(1),
        load(2),
        load(3),
        load(4),
        load(5),
        load(6),
        load(7),
    ];
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let o = [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ];
    let mut out = [[0f32; 8]; 8];
    for (dst, v) in out.iter_mut().zip(o) {
        // SAFETY: `dst` is 8 writable floats.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) };
    }
    out
}

/// `dst = sum_t w_t * rows[t]` over the taps of one output line.
#[inline(always)]
fn combine_rows(dst: &mut [f32], src: &[f32], row_len: usize, start: usize, weights: &[f32]) {
    let n = dst.len();
    let mut first = true;
    for (t, &w) in weights.iter().enumerate() {
        if w == 0.0 {
            continue;
        }
        let from = (start + t) * row_len;
        let row = &src[from..from + n];
        if first {
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = w * v;
            }
            first = false;
        } else {
            for (d, &v) in dst.iter_mut().zip(row) {
                *d += w * v;
            }
        }
    }
    if first {
        dst.fill(0.0);
    }
}

/// Horizontal pass on the transposed plane (whole rows), an 8x8-tiled
/// transpose that also restores the row order, then the vertical pass.
#[inline(always)]
fn resample_plane<const AVX2: bool>(
    job: &PlaneResample,
    across: &mut Vec<f32>,
    down: &mut Vec<f32>,
    out: &mut Vec<f32>,
) {
    let PlaneResample {
        plane,
        tw,
        th,
        ht,
        vt,
    } = *job;
    let (stride, s) = (plane.stride, plane.s);
    let tw8 = tw.div_ceil(8) * 8;
    // Buffers are grown, never cleared: every element that is read later
    // is written first (zeroing them cost as much as the passes).
    let grow = |v: &mut Vec<f32>, n: usize| {
        if v.len() < n {
            v.resize(n, 0.0);
        }
    };
    // across[j][slot]: output column j, every plane row (in slot order);
    // rows tw..tw8 only pad the transpose's last tile.
    grow(across, tw8 * stride);
    for (j, row) in across.chunks_exact_mut(stride).take(tw).enumerate() {
        let k = ht.k;
        combine_rows(
            row,
            &plane.data,
            stride,
            ht.start[j],
            &ht.weights[j * k..j * k + k],
        );
    }
    // down[r][j]: plane row r, output column j (rows past the plane's
    // height, the last group's padding, are skipped).
    grow(down, stride * tw8);
    for j0 in (0..tw8).step_by(8) {
        for g in 0..stride / (8 * s) {
            for y in 0..s {
                let p0 = g * 8 * s + y * 8;
                let tile = transpose_tile::<AVX2>(across, j0 * stride + p0, stride);
                for (l, t) in tile.iter().enumerate() {
                    let r = (g * 8 + l) * s + y;
                    if r >= plane.height {
                        break;
                    }
                    down[r * tw8 + j0..r * tw8 + j0 + 8].copy_from_slice(t);
                }
            }
        }
    }
    out.resize(tw * th, 0.0);
    for (i, row) in out.chunks_exact_mut(tw).enumerate() {
        let k = vt.k;
        combine_rows(row, down, tw8, vt.start[i], &vt.weights[i * k..i * k + k]);
    }
}

/// One plane to resample to `w x h` with the given vertical and horizontal taps.
#[cfg(test)]
struct Resample<'a> {
    src: &'a Plane,
    w: usize,
    h: usize,
    vt: &'a Taps,
    ht: &'a Taps,
}

/// The byte-plane resampler the tensor path used before it decoded to
/// floats: the reference the fused path is tested against.
#[cfg(test)]
fn resample_dispatch(job: &Resample, tmp: &mut Vec<f32>, out: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, the only feature the copy assumes.
        unsafe { resample_avx2(job, tmp, out) };
        return;
    }
    resample(job, tmp, out)
}

#[cfg(all(test, target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
unsafe fn resample_avx2(job: &Resample, tmp: &mut Vec<f32>, out: &mut Vec<f32>) {
    resample(job, tmp, out)
}

/// Resamples an 8-bit plane to `w x h` floats: vertical pass (vectorises
/// over whole rows), then horizontal.
#[cfg(test)]
#[inline(always)]
fn resample(job: &Resample, tmp: &mut Vec<f32>, out: &mut Vec<f32>) {
    let Resample { src, w, h, vt, ht } = *job;
    let sw = src.width as usize;
    tmp.clear();
    tmp.resize(sw * h, 0.0);
    for (y, row) in tmp.chunks_exact_mut(sw).enumerate() {
        let s0 = vt.start[y];
        for t in 0..vt.k {
            let wgt = vt.weights[y * vt.k + t];
            if wgt == 0.0 {
                continue;
            }
            let srow = &src.data[(s0 + t) * sw..(s0 + t + 1) * sw];
            for (d, &v) in row.iter_mut().zip(srow) {
                *d += wgt * v as f32;
            }
        }
    }
    out.clear();
    out.resize(w * h, 0.0);
    match ht.k {
        1 => horizontal::<1>(out, tmp, w, sw, ht),
        2 => horizontal::<2>(out, tmp, w, sw, ht),
        3 => horizontal::<3>(out, tmp, w, sw, ht),
        4 => horizontal::<4>(out, tmp, w, sw, ht),
        5 => horizontal::<5>(out, tmp, w, sw, ht),
        _ => horizontal_any(out, tmp, w, sw, ht),
    }
}

/// The horizontal pass with the tap count known at compile time (unrolled).
#[cfg(test)]
#[inline(always)]
fn horizontal<const K: usize>(out: &mut [f32], tmp: &[f32], w: usize, sw: usize, ht: &Taps) {
    let weights: &[[f32; K]] = ht.weights.as_chunks::<K>().0;
    for (orow, trow) in out.chunks_exact_mut(w).zip(tmp.chunks_exact(sw)) {
        for ((o, &s0), wts) in orow.iter_mut().zip(&ht.start).zip(weights) {
            let win: &[f32; K] = trow[s0..s0 + K].try_into().expect("K taps");
            let mut acc = 0f32;
            for t in 0..K {
                acc += wts[t] * win[t];
            }
            *o = acc;
        }
    }
}

#[cfg(test)]
fn horizontal_any(out: &mut [f32], tmp: &[f32], w: usize, sw: usize, ht: &Taps) {
    let k = ht.k;
    for (orow, trow) in out.chunks_exact_mut(w).zip(tmp.chunks_exact(sw)) {
        for (x, o) in orow.iter_mut().enumerate() {
            let s0 = ht.start[x];
            let wts = &ht.weights[x * k..x * k + k];
            *o = wts.iter().zip(&trow[s0..s0 + k]).map(|(a, b)| a * b).sum();
        }
    }
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

/// Converts a stored image to a tensor written into `out` (`spec.len()` floats),
/// decoding at the smallest scale that reaches the tensor's size.
/// Returns the scale it decoded at.
pub fn to_tensor_into(
    img: &CoefficientImage,
    spec: &TensorSpec,
    out: &mut [f32],
    scratch: &mut TensorScratch,
) -> Result<usize> {
    let s = choose_scale(img.width, img.height, spec.width, spec.height);
    to_tensor_at(img, spec, s, out, scratch)?;
    Ok(s)
}

/// Like [`to_tensor_into`], decoding at scale `s/8` (a read format's
/// choice, which may be below the tensor's size: the resize then upsamples).
/// Needs the `s x s` corner of every plane the image holds.
pub fn to_tensor_at(
    img: &CoefficientImage,
    spec: &TensorSpec,
    s: usize,
    out: &mut [f32],
    scratch: &mut TensorScratch,
) -> Result<()> {
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
    let (tw, th) = (spec.width as usize, spec.height as usize);
    for (c, (plane, q)) in img.planes.iter().zip(&img.quant).enumerate() {
        decode_plane_f32(plane, q, s, c, &mut scratch.plane)?;
        let ht = scratch.taps(scratch.plane.width, tw);
        let vt = scratch.taps(scratch.plane.height, th);
        let TensorScratch {
            taps,
            plane,
            across,
            down,
            planes,
        } = scratch;
        let job = PlaneResample {
            plane,
            tw,
            th,
            ht: &taps[ht].1,
            vt: &taps[vt].1,
        };
        resample_plane_dispatch(&job, across, down, &mut planes[c]);
    }
    normalise(img.planes.len() == 1, &scratch.planes, spec, out);
    Ok(())
}

/// Colour conversion and normalisation of the resampled planes into `out`.
fn normalise(gray: bool, planes: &[Vec<f32>; 3], spec: &TensorSpec, out: &mut [f32]) {
    let (tw, th) = (spec.width as usize, spec.height as usize);
    let n = tw * th;
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.std[c]));
    let bias: [f32; 3] = std::array::from_fn(|c| -spec.mean[c] / spec.std[c]);
    let norm = |v: f32, c: usize| v.clamp(0.0, 255.0) * scale[c] + bias[c];
    let [yp, cbp, crp] = planes;
    match spec.layout {
        Layout::Chw => {
            let (r_out, rest) = out.split_at_mut(n);
            let (g_out, b_out) = rest.split_at_mut(n);
            if gray {
                for i in 0..n {
                    r_out[i] = norm(yp[i], 0);
                    g_out[i] = norm(yp[i], 1);
                    b_out[i] = norm(yp[i], 2);
                }
            } else {
                for i in 0..n {
                    let (y, cb, cr) = (yp[i], cbp[i] - 128.0, crp[i] - 128.0);
                    r_out[i] = norm(y + 1.402 * cr, 0);
                    g_out[i] = norm(y - 0.344_136 * cb - 0.714_136 * cr, 1);
                    b_out[i] = norm(y + 1.772 * cb, 2);
                }
            }
        }
        Layout::Hwc => {
            for (i, px) in out.chunks_exact_mut(3).enumerate() {
                let y = yp[i];
                let (r, g, b) = if gray {
                    (y, y, y)
                } else {
                    let (cb, cr) = (cbp[i] - 128.0, crp[i] - 128.0);
                    (
                        y + 1.402 * cr,
                        y - 0.344_136 * cb - 0.714_136 * cr,
                        y + 1.772 * cb,
                    )
                };
                px[0] = norm(r, 0);
                px[1] = norm(g, 1);
                px[2] = norm(b, 2);
            }
        }
    }
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
        let img = encode_rgb(&rgb, w, h, EncodeOptions::default()).unwrap();
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

    /// The in-house resampler against fast_image_resize's Bilinear
    /// convolution, on a textured plane, shrinking and enlarging.
    #[test]
    fn resampling_matches_fast_image_resize() {
        use fast_image_resize::images::{Image, ImageRef};
        use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
        let (sw, sh) = (97u32, 80u32);
        let data: Vec<u8> = (0..sw * sh)
            .map(|i| {
                (128.0 + 100.0 * ((i % sw) as f32 * 0.3).sin() * ((i / sw) as f32 * 0.2).cos())
                    as u8
            })
            .collect();
        let plane = Plane {
            width: sw,
            height: sh,
            data,
        };
        for (w, h) in [(56usize, 49usize), (150, 131), (97, 80)] {
            let (mut tmp, mut ours) = (Vec::new(), Vec::new());
            let (vt, ht) = (Taps::new(sh as usize, h), Taps::new(sw as usize, w));
            let job = Resample {
                src: &plane,
                w,
                h,
                vt: &vt,
                ht: &ht,
            };
            resample_dispatch(&job, &mut tmp, &mut ours);
            let mut portable = Vec::new();
            resample(&job, &mut tmp, &mut portable);
            assert_eq!(
                ours, portable,
                "the AVX2 build computes the same as the portable one"
            );
            let src = ImageRef::new(sw, sh, &plane.data, PixelType::U8).unwrap();
            let mut dst = Image::new(w as u32, h as u32, PixelType::U8);
            let opts =
                ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
            Resizer::new().resize(&src, &mut dst, &opts).unwrap();
            let mean_diff: f32 = ours
                .iter()
                .zip(dst.buffer())
                .map(|(a, &b)| (a - b as f32).abs())
                .sum::<f32>()
                / ours.len() as f32;
            assert!(mean_diff < 1.0, "{w}x{h}: mean difference {mean_diff}");
        }
    }

    /// The tensor the path computed before it was fused: bytes out of the
    /// inverse DCT, vertical then horizontal pass on byte planes.
    fn reference_tensor(img: &CoefficientImage, spec: &TensorSpec, s: usize) -> Vec<f32> {
        let (tw, th) = (spec.width as usize, spec.height as usize);
        let mut planes: [Vec<f32>; 3] = Default::default();
        for (c, (plane, q)) in img.planes.iter().zip(&img.quant).enumerate() {
            let decoded = decode_plane(plane, q, s, c).unwrap();
            let vt = Taps::new(decoded.height as usize, th);
            let ht = Taps::new(decoded.width as usize, tw);
            let job = Resample {
                src: &decoded,
                w: tw,
                h: th,
                vt: &vt,
                ht: &ht,
            };
            resample_dispatch(&job, &mut Vec::new(), &mut planes[c]);
        }
        let mut out = vec![0f32; spec.len()];
        normalise(img.planes.len() == 1, &planes, spec, &mut out);
        out
    }

    /// Largest difference between two tensors in 0..255 pixel levels.
    fn max_level_diff(a: &[f32], b: &[f32], spec: &TensorSpec) -> f32 {
        let n = (spec.width * spec.height) as usize;
        a.iter()
            .zip(b)
            .enumerate()
            .map(|(i, (x, y))| {
                let c = match spec.layout {
                    Layout::Chw => i / n,
                    Layout::Hwc => i % 3,
                };
                (x - y).abs() * 255.0 * spec.std[c]
            })
            .fold(0.0, f32::max)
    }

    /// The fused path keeps the inverse DCT's output unrounded, so it may
    /// differ from the byte path by half a level per plane, which the
    /// colour conversion scales by at most 1 + 1.772 / 2: under 1.5 levels.
    const FUSED_MAX_LEVELS: f32 = 1.5;

    #[test]
    fn fused_path_matches_the_byte_path_on_photos() {
        use crate::source::{load_bytes, SourceOptions};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/photos/dev");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect();
        names.sort();
        assert!(names.len() >= 3, "photos in {}", dir.display());
        let mut scratch = TensorScratch::new();
        for path in names.iter().take(4) {
            let bytes = std::fs::read(path).unwrap();
            let (img, _) = load_bytes("photo", &bytes, &SourceOptions::default()).unwrap();
            for spec in [
                TensorSpec::imagenet(224),
                TensorSpec {
                    width: 97,
                    height: 61,
                    layout: Layout::Hwc,
                    ..TensorSpec::imagenet(1)
                },
            ] {
                for s in [1, 3, 4, 8] {
                    let mut fused = vec![0f32; spec.len()];
                    to_tensor_at(&img, &spec, s, &mut fused, &mut scratch).unwrap();
                    let reference = reference_tensor(&img, &spec, s);
                    let d = max_level_diff(&fused, &reference, &spec);
                    assert!(
                        d <= FUSED_MAX_LEVELS,
                        "{}: scale {s}, {}x{}: {d} levels",
                        path.display(),
                        spec.width,
                        spec.height
                    );
                }
            }
        }
    }

    #[test]
    fn fused_path_matches_on_odd_sizes_every_scale_and_layout() {
        let mut scratch = TensorScratch::new();
        for (w, h, chroma) in [
            (77u32, 41u32, Chroma::Yuv420),
            (13, 130, Chroma::Yuv444),
            (9, 9, Chroma::Gray),
            (200, 67, Chroma::Yuv420),
        ] {
            let rgb: Vec<u8> = (0..w * h)
                .flat_map(|i| {
                    let (x, y) = ((i % w) as f32, (i / w) as f32);
                    [
                        (128.0 + 120.0 * (x * 0.7).sin()) as u8,
                        (128.0 + 120.0 * (y * 0.4).cos()) as u8,
                        ((x * 3.0 + y * 5.0) % 256.0) as u8,
                    ]
                })
                .collect();
            let opts = EncodeOptions {
                quality: 90,
                chroma,
            };
            let img = if chroma == Chroma::Gray {
                let g: Vec<u8> = rgb.chunks(3).map(|p| p[0]).collect();
                encode_gray(&g, w, h, opts).unwrap()
            } else {
                encode_rgb(&rgb, w, h, opts).unwrap()
            };
            for (tw, th, layout) in [(32, 24, Layout::Chw), (5, 71, Layout::Hwc)] {
                let spec = TensorSpec {
                    width: tw,
                    height: th,
                    layout,
                    ..TensorSpec::imagenet(1)
                };
                for s in 1..=8 {
                    let mut fused = vec![0f32; spec.len()];
                    to_tensor_at(&img, &spec, s, &mut fused, &mut scratch).unwrap();
                    let d = max_level_diff(&fused, &reference_tensor(&img, &spec, s), &spec);
                    assert!(
                        d <= FUSED_MAX_LEVELS,
                        "{w}x{h} {chroma:?} -> {tw}x{th}, scale {s}: {d} levels"
                    );
                }
            }
        }
    }

    #[test]
    fn fused_builds_agree() {
        let (w, h) = (150u32, 90u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        let img = encode_rgb(&rgb, w, h, EncodeOptions::default()).unwrap();
        let p = &img.planes[0];
        let mut fp = FloatPlane::default();
        decode_plane_f32(p, &img.quant[0], 4, 0, &mut fp).unwrap();
        let (ht, vt) = (Taps::new(fp.width, 64), Taps::new(fp.height, 50));
        let job = PlaneResample {
            plane: &fp,
            tw: 64,
            th: 50,
            ht: &ht,
            vt: &vt,
        };
        let (mut a, mut b, mut fast, mut portable) = Default::default();
        resample_plane_dispatch(&job, &mut a, &mut b, &mut fast);
        resample_plane::<false>(&job, &mut a, &mut b, &mut portable);
        assert_eq!(fast, portable);
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
        )
        .unwrap();
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
