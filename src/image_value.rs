//! The value of an `image` column in SQL: one self-contained binary blob
//! per row holding the bands a scan read (already entropy-decoded).
//!
//! The scan decodes bands once; functions (`to_png`, models) then rebuild
//! pixels straight from the blob with no lookup of the file it came from,
//! so values survive joins, sorts, `CREATE TABLE AS` and Flight.
//!
//! ```text
//! "SDBI" | version u8 | chroma u8 | flags u16 | width u32 | height u32
//!   | band masks [u64; 3]
//!   | [flags & 1: source: table identity u64 | row id u64]
//!   | quant [u16; 64] per plane
//!   | per plane, per band k in the mask (ascending): blocks x i16
//!   | [flags & 2: outputs: count u16 | per output: key u64 | tag u8 | len u32 | payload]
//! ```
//! All integers little-endian. The source says which stored image a value
//! is, so model functions can find its outputs in the cache. A scan whose
//! image column only feeds model functions hands over outputs it already
//! has (cached, or from a materialized view) instead of bands: such a value
//! may hold no band at all. Output payloads: tag 0 `len` f32 (a model's raw
//! output), tag 1 `len` bytes of UTF-8 (a label), tag 2 one i64 (a class).

use crate::codec::{Chroma, CoefPlane, CoefficientImage, QuantTable};
use crate::error::{Error, Result};
use crate::storage::reader::MAX_DIMENSION;

const MAGIC: &[u8; 4] = b"SDBI";
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 1 + 2 + 4 + 4 + 24;
const FLAG_SOURCE: u16 = 1;
const FLAG_OUTPUTS: u16 = 2;
/// Most outputs one value carries (one per model call of a query).
const MAX_OUTPUTS: usize = 1024;

/// The stored image a value was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueSource {
    /// The image table's identity.
    pub table: u64,
    pub id: u64,
}

/// An output a scan hands to model functions with the value.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputValue {
    /// A model's raw output vector.
    Vector(std::sync::Arc<[f32]>),
    /// A function's label result.
    Label(String),
    /// A function's class result.
    Class(i64),
}

/// An output and the key model functions look it up by.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineOutput {
    pub key: u64,
    pub value: OutputValue,
}

fn chroma_code(c: Chroma) -> u8 {
    match c {
        Chroma::Yuv420 => 0,
        Chroma::Yuv444 => 1,
        Chroma::Gray => 2,
    }
}

/// Serialises the bands present in `img` (absent bands stay absent).
pub fn encode_image_value(img: &CoefficientImage, out: &mut Vec<u8>) {
    encode_image_value_with(img, None, &[], out)
}

fn write_header(
    out: &mut Vec<u8>,
    chroma: Chroma,
    width: u32,
    height: u32,
    masks: [u64; 3],
    source: Option<ValueSource>,
    outputs: &[InlineOutput],
) {
    let mut flags = 0u16;
    if source.is_some() {
        flags |= FLAG_SOURCE;
    }
    if !outputs.is_empty() {
        flags |= FLAG_OUTPUTS;
    }
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(chroma_code(chroma));
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    for m in masks {
        out.extend_from_slice(&m.to_le_bytes());
    }
    if let Some(s) = source {
        out.extend_from_slice(&s.table.to_le_bytes());
        out.extend_from_slice(&s.id.to_le_bytes());
    }
}

fn write_outputs(out: &mut Vec<u8>, outputs: &[InlineOutput]) {
    if outputs.is_empty() {
        return;
    }
    out.extend_from_slice(&(outputs.len().min(MAX_OUTPUTS) as u16).to_le_bytes());
    for o in outputs.iter().take(MAX_OUTPUTS) {
        out.extend_from_slice(&o.key.to_le_bytes());
        match &o.value {
            OutputValue::Vector(v) => {
                out.push(0);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                for x in v.iter() {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            OutputValue::Label(s) => {
                out.push(1);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            OutputValue::Class(c) => {
                out.push(2);
                out.extend_from_slice(&1u32.to_le_bytes());
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
    }
}

/// Serialises `img` with the stored image it came from and outputs for
/// model functions.
pub fn encode_image_value_with(
    img: &CoefficientImage,
    source: Option<ValueSource>,
    outputs: &[InlineOutput],
    out: &mut Vec<u8>,
) {
    let mut masks = [0u64; 3];
    for (m, plane) in masks.iter_mut().zip(img.planes()) {
        *m = plane.band_mask();
    }
    write_header(
        out,
        img.chroma(),
        img.width(),
        img.height(),
        masks,
        source,
        outputs,
    );
    for q in img.quant() {
        for v in q {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    for plane in img.planes() {
        for band in (0..64).filter_map(|k| plane.band(k)) {
            put_band(out, band);
        }
    }
    write_outputs(out, outputs);
}

/// Appends a band's values, little-endian: one copy where that is the
/// machine's order (a push per value costs several times more).
fn put_band(out: &mut Vec<u8>, band: &[i16]) {
    if cfg!(target_endian = "little") {
        out.extend_from_slice(bytemuck::cast_slice(band));
    } else {
        out.extend(band.iter().flat_map(|v| v.to_le_bytes()));
    }
}

/// The `n` little-endian values of a band in `raw` (`2 * n` bytes, at any
/// alignment).
fn take_band(raw: &[u8], n: usize) -> Vec<i16> {
    let mut band = vec![0i16; n];
    bytemuck::cast_slice_mut::<i16, u8>(&mut band).copy_from_slice(raw);
    for v in &mut band {
        *v = i16::from_le(*v); // no-op on little-endian machines
    }
    band
}

/// A value with no band: the image's size and source plus the outputs the
/// model functions reading it need (their bands were never read).
pub fn encode_outputs_only(
    width: u32,
    height: u32,
    chroma: Chroma,
    source: Option<ValueSource>,
    outputs: &[InlineOutput],
    out: &mut Vec<u8>,
) {
    write_header(out, chroma, width, height, [0; 3], source, outputs);
    out.extend(std::iter::repeat_n(0u8, 128 * chroma.planes()));
    write_outputs(out, outputs);
}

/// What the header of an image value says, without decoding its bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub width: u32,
    pub height: u32,
    pub chroma: Chroma,
    pub masks: [u64; 3],
    /// The stored image the value was read from, if it says.
    pub source: Option<ValueSource>,
    has_outputs: bool,
    /// Where the quantization tables start.
    body: usize,
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
    let flags = u16::from_le_bytes([bytes[6], bytes[7]]);
    if flags & !(FLAG_SOURCE | FLAG_OUTPUTS) != 0 {
        return Err(bad(format!("unknown flags {flags:#x}")));
    }
    let (width, height) = (u32_at(8), u32_at(12));
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(bad(format!("size {width}x{height} out of range")));
    }
    let mut masks = [u64_at(16), u64_at(24), u64_at(32)];
    for m in masks.iter_mut().skip(chroma.planes()) {
        *m = 0;
    }
    let mut body = HEADER;
    let source = if flags & FLAG_SOURCE != 0 {
        if bytes.len() < HEADER + 16 {
            return Err(bad("truncated source"));
        }
        body += 16;
        Some(ValueSource {
            table: u64_at(HEADER),
            id: u64_at(HEADER + 8),
        })
    } else {
        None
    };
    Ok(ImageHeader {
        width,
        height,
        chroma,
        masks,
        source,
        has_outputs: flags & FLAG_OUTPUTS != 0,
        body,
    })
}

/// Where the bands of a value with `header` end (the outputs, if any, follow).
fn bands_end(header: &ImageHeader) -> usize {
    let planes = header.chroma.planes();
    let mut pos = header.body + 128 * planes;
    for (p, mask) in header.masks.iter().enumerate().take(planes) {
        let (w, h) = header.chroma.plane_dims(p, header.width, header.height);
        let blocks = (w as usize).div_ceil(8) * (h as usize).div_ceil(8);
        pos += 2 * blocks * mask.count_ones() as usize;
    }
    pos
}

/// The outputs a value carries (none for most values).
pub fn inline_outputs(bytes: &[u8]) -> Result<Vec<InlineOutput>> {
    let header = read_image_header(bytes)?;
    if !header.has_outputs {
        return Ok(Vec::new());
    }
    let (outputs, end) = parse_outputs(bytes, bands_end(&header))?;
    if end != bytes.len() {
        return Err(bad(format!("{} trailing bytes", bytes.len() - end)));
    }
    Ok(outputs)
}

/// Parses the outputs section starting at `pos`; returns them and its end.
fn parse_outputs(bytes: &[u8], mut pos: usize) -> Result<(Vec<InlineOutput>, usize)> {
    let take = |pos: &mut usize, n: usize| -> Result<&[u8]> {
        let s = bytes
            .get(*pos..pos.saturating_add(n))
            .ok_or_else(|| bad("truncated outputs"))?;
        *pos += n;
        Ok(s)
    };
    let count = u16::from_le_bytes(take(&mut pos, 2)?.try_into().expect("2 bytes")) as usize;
    let mut out = Vec::with_capacity(count.min(MAX_OUTPUTS));
    for _ in 0..count {
        let key = u64::from_le_bytes(take(&mut pos, 8)?.try_into().expect("8 bytes"));
        let tag = take(&mut pos, 1)?[0];
        let len = u32::from_le_bytes(take(&mut pos, 4)?.try_into().expect("4 bytes")) as usize;
        let value = match tag {
            0 => OutputValue::Vector(
                take(&mut pos, len.saturating_mul(4))?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            1 => OutputValue::Label(
                String::from_utf8(take(&mut pos, len)?.to_vec())
                    .map_err(|_| bad("an output label is not UTF-8"))?,
            ),
            2 if len == 1 => OutputValue::Class(i64::from_le_bytes(
                take(&mut pos, 8)?.try_into().expect("8 bytes"),
            )),
            t => return Err(bad(format!("unknown output tag {t}"))),
        };
        out.push(InlineOutput { key, value });
    }
    Ok((out, pos))
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
    let mut pos = header.body;
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
            plane.set_band(k, take_band(raw, n))?;
            pos += 2 * n;
        }
        out_planes.push(plane);
    }
    if header.has_outputs {
        pos = parse_outputs(bytes, pos)?.1;
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

    #[test]
    fn carries_its_source_and_outputs() {
        let img = encode_rgb(&[90; 24 * 16 * 3], 24, 16, EncodeOptions::default()).unwrap();
        let source = ValueSource { table: 42, id: 7 };
        let outputs = vec![
            InlineOutput {
                key: 1,
                value: OutputValue::Vector(vec![0.5, -1.0].into()),
            },
            InlineOutput {
                key: 2,
                value: OutputValue::Label("tabby".into()),
            },
            InlineOutput {
                key: 3,
                value: OutputValue::Class(281),
            },
        ];
        let mut buf = Vec::new();
        encode_image_value_with(&img, Some(source), &outputs, &mut buf);
        assert_eq!(read_image_header(&buf).unwrap().source, Some(source));
        assert_eq!(decode_image_value(&buf).unwrap(), img);
        assert_eq!(inline_outputs(&buf).unwrap(), outputs);

        let mut bare = Vec::new();
        encode_outputs_only(
            24,
            16,
            Chroma::Yuv420,
            Some(source),
            &outputs[..1],
            &mut bare,
        );
        let h = read_image_header(&bare).unwrap();
        assert_eq!((h.width, h.height, h.band_count()), (24, 16, 0));
        assert_eq!(inline_outputs(&bare).unwrap(), outputs[..1].to_vec());
        let err = inline_outputs(&bare[..bare.len() - 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated outputs"), "{err}");
        // A value without outputs has none.
        let mut plain = Vec::new();
        encode_image_value(&img, &mut plain);
        assert!(inline_outputs(&plain).unwrap().is_empty());
    }
}
