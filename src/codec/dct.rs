//! The 8x8 DCT-II (forward, through rustdct) and the s x s inverse used by
//! the DCT-domain scaled decode.
//!
//! All transforms are orthonormal, which is the normalisation JPEG's FDCT
//! uses, so quantized JPEG coefficients can be taken over as they are. The
//! inverse bases are derived from rustdct's DCT-III and normalised here, so
//! the code does not depend on rustdct's scaling convention.

use std::sync::{Arc, OnceLock};

use rustdct::{DctPlanner, TransformType2And3};

/// Orthonormal inverse-DCT basis for every size 1..=8: `basis[s][n * s + u]`
/// is the weight of coefficient `u` for output sample `n`.
fn inverse_bases() -> &'static [Vec<f32>; 9] {
    static BASES: OnceLock<[Vec<f32>; 9]> = OnceLock::new();
    BASES.get_or_init(|| {
        let mut planner = DctPlanner::<f64>::new();
        let mut bases: [Vec<f32>; 9] = Default::default();
        for (s, basis) in bases.iter_mut().enumerate().skip(1) {
            let dct3 = planner.plan_dct3(s);
            let mut m = vec![0f64; s * s];
            for u in 0..s {
                let mut col = vec![0f64; s];
                col[u] = 1.0;
                dct3.process_dct3(&mut col);
                let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt();
                for n in 0..s {
                    m[n * s + u] = col[n] / norm;
                }
            }
            *basis = m.into_iter().map(|v| v as f32).collect();
        }
        bases
    })
}

/// Forward 8x8 DCT-II with orthonormal scaling.
pub struct ForwardDct {
    dct: Arc<dyn TransformType2And3<f32>>,
    /// Per-frequency factor that turns rustdct's output into orthonormal coefficients.
    norm: [f32; 8],
}

impl Default for ForwardDct {
    fn default() -> Self {
        Self::new()
    }
}

impl ForwardDct {
    pub fn new() -> Self {
        let dct = DctPlanner::<f32>::new().plan_dct2(8);
        let basis = &inverse_bases()[8];
        let mut norm = [0f32; 8];
        for (k, nk) in norm.iter_mut().enumerate() {
            // Transform basis vector k: an orthonormal DCT would return e_k.
            let mut v: Vec<f32> = (0..8).map(|n| basis[n * 8 + k]).collect();
            dct.process_dct2(&mut v);
            *nk = 1.0 / v[k];
        }
        ForwardDct { dct, norm }
    }

    /// Transforms one block in place (row-major samples in, row-major
    /// frequencies out: `block[v * 8 + u]`, v vertical).
    pub fn forward(&self, block: &mut [f32; 64]) {
        let mut scratch = [0f32; 0];
        for row in block.chunks_exact_mut(8) {
            self.dct.process_dct2_with_scratch(row, &mut scratch);
        }
        let mut col = [0f32; 8];
        for x in 0..8 {
            for y in 0..8 {
                col[y] = block[y * 8 + x];
            }
            self.dct.process_dct2_with_scratch(&mut col, &mut scratch);
            for y in 0..8 {
                block[y * 8 + x] = col[y] * self.norm[y] * self.norm[x];
            }
        }
    }
}

/// Inverse DCT of the top-left `s x s` coefficients of a block, giving the
/// block at `s/8` of its size (DCT-domain downscaling).
#[derive(Clone)]
pub struct ScaledIdct {
    s: usize,
    basis: [f32; 64],
}

impl ScaledIdct {
    /// `s` in 1..=8.
    pub fn new(s: usize) -> Self {
        assert!((1..=8).contains(&s), "scale {s} out of 1..=8");
        let mut basis = [0f32; 64];
        basis[..s * s].copy_from_slice(&inverse_bases()[s]);
        ScaledIdct { s, basis }
    }

    /// The `s x s` basis, row-major (`basis[n * s + u]`).
    pub fn basis(&self) -> &[f32; 64] {
        &self.basis
    }

    /// `coef[v * s + u]` (already dequantized, orthonormal 8x8 scaling) to
    /// `out[y * s + x]` samples, level shift not applied.
    #[inline]
    pub fn inverse(&self, coef: &[f32; 64], out: &mut [f32; 64]) {
        // One copy per size so the compiler unrolls and vectorises each.
        match self.s {
            1 => inverse_n::<1>(&self.basis, coef, out),
            2 => inverse_n::<2>(&self.basis, coef, out),
            3 => inverse_n::<3>(&self.basis, coef, out),
            4 => inverse_n::<4>(&self.basis, coef, out),
            5 => inverse_n::<5>(&self.basis, coef, out),
            6 => inverse_n::<6>(&self.basis, coef, out),
            7 => inverse_n::<7>(&self.basis, coef, out),
            _ => inverse_n::<8>(&self.basis, coef, out),
        }
    }
}

#[inline(always)]
fn inverse_n<const S: usize>(b: &[f32; 64], coef: &[f32; 64], out: &mut [f32; 64]) {
    // An s-point orthonormal inverse of the low s coefficients of an
    // 8-point transform needs a factor sqrt(s/8) per dimension.
    let gain = S as f32 / 8.0;
    let mut tmp = [0f32; 64];
    // rows: tmp[v][x] = sum_u coef[v][u] * b[x][u]
    for v in 0..S {
        for x in 0..S {
            let mut acc = 0f32;
            for u in 0..S {
                acc += coef[v * S + u] * b[x * S + u];
            }
            tmp[v * S + x] = acc;
        }
    }
    // columns: out[y][x] = sum_v b[y][v] * tmp[v][x]
    for y in 0..S {
        for x in 0..S {
            let mut acc = 0f32;
            for v in 0..S {
                acc += b[y * S + v] * tmp[v * S + x];
            }
            out[y * S + x] = acc * gain;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_then_full_inverse_is_identity() {
        let fwd = ForwardDct::new();
        let inv = ScaledIdct::new(8);
        let mut block = [0f32; 64];
        for (i, v) in block.iter_mut().enumerate() {
            *v = ((i * 37) % 255) as f32 - 128.0;
        }
        let orig = block;
        fwd.forward(&mut block);
        let mut out = [0f32; 64];
        inv.inverse(&block, &mut out);
        for i in 0..64 {
            assert!(
                (out[i] - orig[i]).abs() < 1e-3,
                "{i}: {} vs {}",
                out[i],
                orig[i]
            );
        }
    }

    #[test]
    fn dc_is_orthonormal_and_scaled_inverse_gives_block_means() {
        let fwd = ForwardDct::new();
        // A horizontal ramp: the 1/8 decode must be the mean, the 2/8 decode the quadrant means.
        let mut block = [0f32; 64];
        for y in 0..8 {
            for x in 0..8 {
                block[y * 8 + x] = x as f32 * 10.0 + y as f32;
            }
        }
        let mean: f32 = block.iter().sum::<f32>() / 64.0;
        let orig = block;
        fwd.forward(&mut block);
        assert!((block[0] - mean * 8.0).abs() < 1e-3, "DC = 8 * mean");
        let mut coef = [0f32; 64];
        coef[0] = block[0];
        let mut out = [0f32; 64];
        ScaledIdct::new(1).inverse(&coef, &mut out);
        assert!((out[0] - mean).abs() < 1e-3);

        let mut coef = [0f32; 64];
        coef[..2].copy_from_slice(&block[..2]);
        coef[2..4].copy_from_slice(&block[8..10]);
        ScaledIdct::new(2).inverse(&coef, &mut out);
        let quad = |qy: usize, qx: usize| {
            let mut s = 0.0;
            for y in qy * 4..qy * 4 + 4 {
                for x in qx * 4..qx * 4 + 4 {
                    s += orig[y * 8 + x];
                }
            }
            s / 16.0
        };
        // Close to the quadrant means (the 2-point inverse of a truncated
        // spectrum is a smooth approximation, not an exact box filter).
        for (qy, qx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            assert!((out[qy * 2 + qx] - quad(qy, qx)).abs() < 4.0);
        }
    }
}
