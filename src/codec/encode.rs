//! Pixels -> quantized DCT coefficients (the pixel ingest path).

use super::color::{rgb_to_ycbcr, round_i32};
use super::dct::ForwardDct;
use super::quant::{quant_table, QuantTable, TableKind, ZIGZAG};
use super::{Chroma, CoefPlane, CoefficientImage};
use crate::error::{Error, Result};

/// How to encode pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// JPEG-style quality factor, 1..=100.
    pub quality: u8,
    pub chroma: Chroma,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            quality: 90,
            chroma: Chroma::Yuv420,
        }
    }
}

/// Checks a pixel buffer of `channels` bytes per pixel against its size.
fn check_buffer(len: usize, width: u32, height: u32, channels: usize) -> Result<usize> {
    let n = width as usize * height as usize;
    if len != n * channels {
        return Err(Error::InvalidArgument(format!(
            "pixel buffer holds {len} bytes, a {width}x{height} image with {channels} channels needs {}",
            n * channels
        )));
    }
    // The planes' constructor checks the size; fail before the work.
    CoefPlane::empty(width, height)?;
    Ok(n)
}

/// Encodes interleaved 8-bit RGB (`width * height * 3` bytes).
pub fn encode_rgb(
    rgb: &[u8],
    width: u32,
    height: u32,
    opts: EncodeOptions,
) -> Result<CoefficientImage> {
    let n = check_buffer(rgb.len(), width, height, 3)?;
    let mut y = vec![0f32; n];
    let mut cb = vec![0f32; n];
    let mut cr = vec![0f32; n];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        let (a, b, c) = rgb_to_ycbcr(px[0] as f32, px[1] as f32, px[2] as f32);
        y[i] = a;
        cb[i] = b;
        cr[i] = c;
    }
    encode_planes(y, cb, cr, width, height, opts)
}

/// Encodes 8-bit greyscale (`width * height` bytes).
pub fn encode_gray(
    gray: &[u8],
    width: u32,
    height: u32,
    opts: EncodeOptions,
) -> Result<CoefficientImage> {
    let n = check_buffer(gray.len(), width, height, 1)?;
    let y: Vec<f32> = gray.iter().map(|&v| v as f32).collect();
    if opts.chroma == Chroma::Gray {
        return encode_planes(y, Vec::new(), Vec::new(), width, height, opts);
    }
    let flat = vec![128f32; n];
    encode_planes(y, flat.clone(), flat, width, height, opts)
}

fn encode_planes(
    y: Vec<f32>,
    cb: Vec<f32>,
    cr: Vec<f32>,
    width: u32,
    height: u32,
    opts: EncodeOptions,
) -> Result<CoefficientImage> {
    let dct = ForwardDct::new();
    let luma_q = quant_table(TableKind::Luma, opts.quality);
    let chroma_q = quant_table(TableKind::Chroma, opts.quality);
    let mut planes = vec![plane_coefficients(&y, width, height, &luma_q, &dct)?];
    let mut quant = vec![luma_q];
    if opts.chroma != Chroma::Gray {
        for c in [cb, cr] {
            let (pw, ph) = opts.chroma.plane_dims(1, width, height);
            let c = if opts.chroma == Chroma::Yuv420 {
                downsample2x2(&c, width as usize, height as usize)
            } else {
                c
            };
            planes.push(plane_coefficients(&c, pw, ph, &chroma_q, &dct)?);
            quant.push(chroma_q);
        }
    }
    CoefficientImage::new(width, height, opts.chroma, quant, planes)
}

/// 2x2 box average, the last row/column replicated for odd sizes.
fn downsample2x2(src: &[f32], w: usize, h: usize) -> Vec<f32> {
    let (dw, dh) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = vec![0f32; dw * dh];
    for dy in 0..dh {
        let y0 = dy * 2;
        let y1 = (y0 + 1).min(h - 1);
        for dx in 0..dw {
            let x0 = dx * 2;
            let x1 = (x0 + 1).min(w - 1);
            out[dy * dw + dx] =
                (src[y0 * w + x0] + src[y0 * w + x1] + src[y1 * w + x0] + src[y1 * w + x1]) * 0.25;
        }
    }
    out
}

/// DCT + quantization of one plane of samples (0..=255), edges padded by
/// replicating the last row and column as JPEG encoders do.
fn plane_coefficients(
    samples: &[f32],
    width: u32,
    height: u32,
    q: &QuantTable,
    dct: &ForwardDct,
) -> Result<CoefPlane> {
    let mut plane = CoefPlane::empty(width, height)?;
    let (w, h) = (width as usize, height as usize);
    let (bw, bh) = (plane.blocks_w(), plane.blocks_h());
    let n = bw * bh;
    let mut bands = vec![0i16; 64 * n];
    // Reciprocals in natural order, so the hot loop multiplies.
    let mut inv_q = [0f32; 64];
    for k in 0..64 {
        inv_q[ZIGZAG[k]] = 1.0 / q[k] as f32;
    }
    let mut block = [0f32; 64];
    for by in 0..bh {
        for bx in 0..bw {
            for yy in 0..8 {
                let sy = (by * 8 + yy).min(h - 1);
                let row = &samples[sy * w..sy * w + w];
                for xx in 0..8 {
                    let sx = (bx * 8 + xx).min(w - 1);
                    block[yy * 8 + xx] = row[sx] - 128.0;
                }
            }
            dct.forward(&mut block);
            let b = by * bw + bx;
            for k in 0..64 {
                let pos = ZIGZAG[k];
                bands[k * n + b] = round_i32(block[pos] * inv_q[pos]).clamp(-32767, 32767) as i16;
            }
        }
    }
    for (k, chunk) in bands.chunks_exact(n).enumerate() {
        plane.set_band(k, chunk.to_vec())?;
    }
    Ok(plane)
}
