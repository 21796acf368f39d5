//! Human-readable rendering of result batches: image values and other
//! binary data become short summaries instead of pages of hex.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};

use crate::error::Result;
use crate::image_value::{binary_values, read_image_header};

/// Binary values up to this length are shown in full (as hex).
const SHORT_BINARY: usize = 16;

/// Summarises one binary value: `<image 640x480 420, 192 bands>`,
/// `<png 112x84, 9.1 KiB>`, short values as hex, others as their size.
pub fn describe_binary(bytes: &[u8]) -> String {
    if let Ok(h) = read_image_header(bytes) {
        return format!(
            "<image {}x{} {}, {} bands>",
            h.width,
            h.height,
            h.chroma.name(),
            h.band_count()
        );
    }
    if bytes.len() >= 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let w = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
        let h = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
        return format!("<png {w}x{h}, {}>", human_bytes(bytes.len() as u64));
    }
    if bytes.len() <= SHORT_BINARY {
        return bytes.iter().map(|b| format!("{b:02x}")).collect();
    }
    format!("<{}>", human_bytes(bytes.len() as u64))
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Replaces every binary column of `batch` with its summaries (Utf8).
pub fn summarize_binary_columns(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        match binary_values(col.as_ref()) {
            Some(values) => {
                let mut b = StringBuilder::new();
                for v in values {
                    b.append_option(v.map(describe_binary));
                }
                fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
                columns.push(Arc::new(b.finish()));
            }
            None => {
                fields.push(field.clone());
                columns.push(col.clone());
            }
        }
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_images_pngs_and_blobs() {
        let img = crate::codec::encode::encode_rgb(
            &[7; 16 * 8 * 3],
            16,
            8,
            crate::codec::encode::EncodeOptions::default(),
        )
        .unwrap();
        let mut v = Vec::new();
        crate::image_value::encode_image_value(&img, &mut v);
        assert_eq!(describe_binary(&v), "<image 16x8 420, 192 bands>");
        assert_eq!(describe_binary(&[1, 0xab]), "01ab");
        assert_eq!(describe_binary(&[0; 3000]), "<2.9 KiB>");
        let mut png = Vec::new();
        image::RgbImage::new(5, 3)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(describe_binary(&png).starts_with("<png 5x3, "));
    }
}
