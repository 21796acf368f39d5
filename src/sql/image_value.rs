//! The value of an `image` column in SQL: one self-contained binary blob
//! per row holding the bands a scan read (already entropy-decoded).
//!
//! The scan decodes bands once; functions (`to_png`, models) then rebuild
//! pixels straight from the blob with no lookup of the file it came from,
//! so values survive joins, sorts, `CREATE TABLE AS` and Flight.
//!
//! ```text
//! "SDBI" | version u8 | chroma u8 | 0u16 | width u32 | height u32
//!   | band masks [u64; 3] | quant [u16; 64] per plane
//!   | per plane, per band k in the mask (ascending): blocks x i16
//! ```
//! All integers little-endian.

use crate::codec::{Chroma, CoefPlane, CoefficientImage, QuantTable};
use crate::error::{Error, Result};
use crate::storage::reader::MAX_DIMENSION;

const MAGIC: &[u8; 4] = b"SDBI";
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 1 + 2 + 4 + 4 + 24;

fn chroma_code(c: Chroma) -> u8 {
    match c {
        Chroma::Yuv420 => 0,
        Chroma::Yuv444 => 1,
        Chroma::Gray => 2,
    }
}

/// Serialises the bands present in `img` (absent bands stay absent).
pub fn encode_image_value(img: &CoefficientImage, out: &mut Vec<u8>) {
    let mut masks = [0u64; 3];
    for (m, plane) in masks.iter_mut().zip(img.planes()) {
        *m = plane.band_mask();
    }
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(chroma_code(img.chroma()));
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&img.width().to_le_bytes());
    out.extend_from_slice(&img.height().to_le_bytes());
    for m in masks {
        out.extend_from_slice(&m.to_le_bytes());
    }
    for q in img.quant() {
        for v in q {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    for plane in img.planes() {
        for band in (0..64).filter_map(|k| plane.band(k)) {
            for v in band {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// What the header of an image value says, without decoding its bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub width: u32,
    pub height: u32,
    pub chroma: Chroma,
    pub masks: [u64; 3],
}

impl ImageHeader {
    /// The largest scale `s` whose `s x s` corner is present in every plane.
    pub fn max_scale(&self) -> usize {
        let planes = self.chroma.planes();
        (1..=8)
            .rev()
            .find(|&s| {
                let need = crate::codec::quant::scale_band_mask(s);
                self.masks[..planes].iter().all(|m| m & need == need)
            })
            .unwrap_or(0)
    }

    /// Number of bands present in all planes.
    pub fn band_count(&self) -> u32 {
        self.masks.iter().map(|m| m.count_ones()).sum()
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::InvalidArgument(format!("not a spectradb image value: {}", reason.into()))
}

/// Reads the header of an image value.
pub fn read_image_header(bytes: &[u8]) -> Result<ImageHeader> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(bad("missing 'SDBI' header (pass an image column)"));
    }
    if bytes[4] != VERSION {
        return Err(bad(format!("value version {} is not supported", bytes[4])));
    }
    let chroma = match bytes[5] {
        0 => Chroma::Yuv420,
        1 => Chroma::Yuv444,
        2 => Chroma::Gray,
        c => return Err(bad(format!("unknown chroma code {c}"))),
    };
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let (width, height) = (u32_at(8), u32_at(12));
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(bad(format!("size {width}x{height} out of range")));
    }
    let mut masks = [u64_at(16), u64_at(24), u64_at(32)];
    for m in masks.iter_mut().skip(chroma.planes()) {
        *m = 0;
    }
    Ok(ImageHeader {
        width,
        height,
        chroma,
        masks,
    })
}

/// The values of a binary column (Binary, LargeBinary or BinaryView) as
/// byte slices; `None` for any other type.
pub fn binary_values(a: &dyn arrow::array::Array) -> Option<Vec<Option<&[u8]>>> {
    use arrow::array::AsArray;
    use arrow::datatypes::DataType;
    match a.data_type() {
        DataType::LargeBinary => Some(a.as_binary::<i64>().iter().collect()),
        DataType::Binary => Some(a.as_binary::<i32>().iter().collect()),
        DataType::BinaryView => Some(a.as_binary_view().iter().collect()),
        _ => None,
    }
}

/// PNG bytes of an image value decoded at scale `s/8`.
pub fn png_at_scale(bytes: &[u8], s: usize) -> Result<Vec<u8>> {
    let rgb = crate::codec::decode::decode_rgb(&decode_image_value(bytes)?, s)?;
    let img = image::RgbImage::from_raw(rgb.width, rgb.height, rgb.data)
        .ok_or_else(|| Error::Internal("decoded buffer has the wrong size".into()))?;
    encode_png(&img)
}

/// Encodes RGB pixels as PNG.
pub fn encode_png(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::Internal(format!("PNG encoding failed: {e}")))?;
    Ok(out.into_inner())
}

/// Rebuilds the coefficient image held by an image value.
pub fn decode_image_value(bytes: &[u8]) -> Result<CoefficientImage> {
    decode_image_value_bands(bytes, [u64::MAX; 3])
}

/// Like [`decode_image_value`], but copies out only the bands in `wanted`
/// (per plane masks): a consumer that decodes at scale `s` needs only the
/// `s x s` corner.
pub fn decode_image_value_bands(bytes: &[u8], wanted: [u64; 3]) -> Result<CoefficientImage> {
    let header = read_image_header(bytes)?;
    let planes = header.chroma.planes();
    let mut pos = HEADER;
    let mut quant = Vec::with_capacity(planes);
    for _ in 0..planes {
        let raw = bytes
            .get(pos..pos + 128)
            .ok_or_else(|| bad("truncated quantization tables"))?;
        let mut q: QuantTable = [0; 64];
        for (v, c) in q.iter_mut().zip(raw.chunks_exact(2)) {
            *v = u16::from_le_bytes([c[0], c[1]]);
        }
        quant.push(q);
        pos += 128;
    }
    let mut out_planes = Vec::with_capacity(planes);
    for (p, mask) in header.masks.iter().enumerate().take(planes) {
        let (w, h) = header.chroma.plane_dims(p, header.width, header.height);
        let mut plane = CoefPlane::empty(w, h)?;
        let n = plane.blocks();
        for k in 0..64 {
            if mask >> k & 1 == 0 {
                continue;
            }
            let raw = bytes
                .get(pos..pos + 2 * n)
                .ok_or_else(|| bad("truncated band data"))?;
            if wanted[p] >> k & 1 == 0 {
                pos += 2 * n;
                continue;
            }
            plane.set_band(
                k,
                raw.chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            )?;
            pos += 2 * n;
        }
        out_planes.push(plane);
    }
    if pos != bytes.len() {
        return Err(bad(format!("{} trailing bytes", bytes.len() - pos)));
    }
    CoefficientImage::new(
        header.width,
        header.height,
        header.chroma,
        quant,
        out_planes,
    )
    .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode::{encode_rgb, EncodeOptions};

    #[test]
    fn round_trips_and_keeps_absent_bands_absent() {
        let (w, h) = (37, 21);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        let mut img = encode_rgb(&rgb, w, h, EncodeOptions::default()).unwrap();
        for p in 0..3 {
            for k in 10..64 {
                img.clear_band(p, k);
            }
        }
        let mut buf = Vec::new();
        encode_image_value(&img, &mut buf);
        let back = decode_image_value(&buf).unwrap();
        assert_eq!(back, img);
        let hdr = read_image_header(&buf).unwrap();
        assert_eq!((hdr.width, hdr.height, hdr.chroma), (w, h, Chroma::Yuv420));
        assert_eq!(hdr.band_count(), 30);
        // The 3x3 corner reaches zigzag band 12, so 10 bands give scale 2.
        assert_eq!(hdr.max_scale(), 2);
    }

    #[test]
    fn rejects_foreign_and_truncated_values() {
        let err = decode_image_value(b"hello").unwrap_err().to_string();
        assert!(err.contains("not a spectradb image value"), "{err}");
        let img = encode_rgb(&[9; 8 * 8 * 3], 8, 8, EncodeOptions::default()).unwrap();
        let mut buf = Vec::new();
        encode_image_value(&img, &mut buf);
        let err = decode_image_value(&buf[..buf.len() - 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
