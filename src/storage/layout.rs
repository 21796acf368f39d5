//! Column names, the Arrow schema of an image table file and its metadata keys.
//! docs/format.md is the prose version of this file.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use base64::Engine;

use super::huffman::HuffmanCode;

use crate::codec::{Chroma, CHANNEL_NAMES};

/// Newest version of the file layout (file metadata
/// `spectradb.format_version`); readers refuse versions they do not know.
/// Version 2 codes the dense low bands of larger planes as two halves
/// ([`band_is_split`]); a file with no such band is written as version 1,
/// which older builds read too.
pub const FORMAT_VERSION: u32 = 2;

/// Fewest blocks a plane needs for its low bands to be split in two.
pub const SPLIT_MIN_BLOCKS: usize = 256;

/// Whether band `k` (zigzag) of a plane of `blocks` blocks is coded as two
/// halves in a file of format `version`: from version 2, the bands of the
/// 4x4 low-frequency corner (dense, most of the bits) of planes of at
/// least [`SPLIT_MIN_BLOCKS`] blocks.
pub fn band_is_split(version: u32, k: usize, blocks: usize) -> bool {
    let natural = crate::codec::quant::ZIGZAG[k];
    version >= 2 && blocks >= SPLIT_MIN_BLOCKS && natural % 8 < 4 && natural / 8 < 4
}

/// Most pixels a stored image may claim: the writer refuses more, so a
/// file that says more is damaged, and its claim must not size a buffer
/// (65,535 x 65,535 would ask for ~8 GB per plane).
pub const MAX_PIXELS: u64 = 100_000_000;

pub const META_FORMAT_VERSION: &str = "spectradb.format_version";
pub const META_CHROMA: &str = "spectradb.chroma";
pub const META_QUALITY: &str = "spectradb.quality";
/// Per band column, the Huffman code its values are written with.
pub const META_BAND_CODES: &str = "spectradb.band_codes";

pub const COL_ID: &str = "id";
pub const COL_URI: &str = "uri";
pub const COL_WIDTH: &str = "width";
pub const COL_HEIGHT: &str = "height";
/// Quantization tables of the image: 64 little-endian u16 per plane, zigzag order.
pub const COL_QUANT: &str = "image.quant";

/// Name of the column holding band `k` of `plane` (`image.y.0` .. `image.cr.63`).
pub fn band_column(plane: usize, k: usize) -> String {
    format!("image.{}.{k}", CHANNEL_NAMES[plane])
}

/// Inverse of [`band_column`].
pub fn parse_band_column(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("image.")?;
    let (chan, k) = rest.split_once('.')?;
    let plane = CHANNEL_NAMES.iter().position(|&c| c == chan)?;
    let k: usize = k.parse().ok()?;
    (k < 64).then_some((plane, k))
}

/// True for the columns that are part of the image itself.
pub fn is_image_column(name: &str) -> bool {
    name == COL_QUANT || parse_band_column(name).is_some()
}

/// The schema of an image table file: plain columns, user columns, then the image.
pub fn file_schema(chroma: Chroma, user_fields: &[Arc<Field>]) -> Schema {
    let mut fields: Vec<Arc<Field>> = vec![
        Arc::new(Field::new(COL_ID, DataType::UInt64, false)),
        Arc::new(Field::new(COL_URI, DataType::Utf8, false)),
        Arc::new(Field::new(COL_WIDTH, DataType::UInt32, false)),
        Arc::new(Field::new(COL_HEIGHT, DataType::UInt32, false)),
    ];
    fields.extend(user_fields.iter().cloned());
    fields.push(Arc::new(Field::new(COL_QUANT, DataType::Binary, false)));
    for plane in 0..chroma.planes() {
        for k in 0..64 {
            fields.push(Arc::new(Field::new(
                band_column(plane, k),
                DataType::Binary,
                false,
            )));
        }
    }
    Schema::new(fields)
}

/// The `spectradb.band_codes` metadata value: `column=base64(code)` for
/// each band column in schema order, joined by `;`.
pub fn format_band_codes(codes: &[HuffmanCode]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    codes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{}={}",
                band_column(i / 64, i % 64),
                b64.encode(c.to_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Parses the `spectradb.band_codes` metadata value into codes by column name.
pub(crate) fn parse_band_codes(
    value: &str,
) -> std::result::Result<HashMap<String, HuffmanCode>, String> {
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = HashMap::new();
    for entry in value.split(';').filter(|e| !e.is_empty()) {
        let (name, code) = entry
            .split_once('=')
            .ok_or_else(|| format!("malformed band code entry '{entry}'"))?;
        let bytes = b64
            .decode(code)
            .map_err(|e| format!("band code of {name}: {e}"))?;
        let code =
            HuffmanCode::from_bytes(&bytes).map_err(|e| format!("band code of {name}: {e}"))?;
        out.insert(name.to_string(), code);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_names_round_trip() {
        for p in 0..3 {
            for k in 0..64 {
                assert_eq!(parse_band_column(&band_column(p, k)), Some((p, k)));
            }
        }
        assert_eq!(parse_band_column("image.y.64"), None);
        assert_eq!(parse_band_column("image.q.1"), None);
        assert_eq!(parse_band_column("uri"), None);
        assert_eq!(file_schema(Chroma::Gray, &[]).fields().len(), 5 + 64);
        assert_eq!(file_schema(Chroma::Yuv420, &[]).fields().len(), 5 + 192);
    }
}
