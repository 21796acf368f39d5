//! RGB <-> YCbCr, JPEG (JFIF / BT.601) full range.

/// RGB to (Y, Cb, Cr), all in 0..=255 (Cb, Cr centred on 128).
#[inline]
pub fn rgb_to_ycbcr(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = -0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0;
    let cr = 0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0;
    (y, cb, cr)
}

/// (Y, Cb, Cr) to RGB, unclamped.
#[inline]
pub fn ycbcr_to_rgb(y: f32, cb: f32, cr: f32) -> (f32, f32, f32) {
    let cb = cb - 128.0;
    let cr = cr - 128.0;
    (
        y + 1.402 * cr,
        y - 0.344_136 * cb - 0.714_136 * cr,
        y + 1.772 * cb,
    )
}

/// Rounds and clamps a sample to a byte. (Adding 0.5 and truncating
/// avoids a libm `roundf` call per pixel; both round halves up for v >= 0.)
#[inline]
pub fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 255.0) + 0.5) as u8
}

/// Rounds half away from zero like `f32::round`, without the libm call.
#[inline]
pub fn round_i32(v: f32) -> i32 {
    (v + 0.5f32.copysign(v)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_after_rounding() {
        for &(r, g, b) in &[
            (0.0, 0.0, 0.0),
            (255.0, 255.0, 255.0),
            (12.0, 200.0, 77.0),
            (255.0, 0.0, 0.0),
        ] {
            let (y, cb, cr) = rgb_to_ycbcr(r, g, b);
            let (r2, g2, b2) = ycbcr_to_rgb(y, cb, cr);
            assert_eq!(
                (to_u8(r2), to_u8(g2), to_u8(b2)),
                (r as u8, g as u8, b as u8)
            );
        }
        let (y, cb, cr) = rgb_to_ycbcr(128.0, 128.0, 128.0);
        assert!((y - 128.0).abs() < 1e-3 && (cb - 128.0).abs() < 1e-3 && (cr - 128.0).abs() < 1e-3);
    }
}
