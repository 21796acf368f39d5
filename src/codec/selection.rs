//! Which zigzag bands of which planes a read needs.

use super::quant::scale_band_mask;

/// Which bands to read, per plane, as bit masks (bit `k` = zigzag band `k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BandSelection {
    pub masks: [u64; 3],
}

impl BandSelection {
    /// No band: a scan of plain columns only.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every band of every plane.
    pub fn all() -> Self {
        BandSelection {
            masks: [u64::MAX; 3],
        }
    }

    /// The `s x s` corner of every plane: what a decode at scale `s/8` needs.
    pub fn for_scale(s: usize) -> Self {
        BandSelection {
            masks: [scale_band_mask(s); 3],
        }
    }

    pub fn contains(&self, plane: usize, k: usize) -> bool {
        self.masks[plane] >> k & 1 == 1
    }

    pub fn is_empty(&self) -> bool {
        self.masks.iter().all(|&m| m == 0)
    }
}
