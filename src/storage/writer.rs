//! Writes image table files: plain columns, then one Binary column per band.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::BinaryBuilder;
use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::Field;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::bands::{count_tokens, encode_band_tokens};
use super::catalog::{DataFile, FileStats, UserColumn};
use super::checksum::ChecksumWriter;
use super::huffman::HuffmanCode;
use super::layout::*;
use super::tokens::TokenizedImage;
use crate::codec::{Chroma, CoefficientImage};
use crate::error::{Error, Result};

/// Fewest rows per data page: small enough that a scan split between cores
/// or filtered to a few rows skips most bytes of a table of photos.
pub const DEFAULT_PAGE_ROWS: usize = 32;

/// Pixels a data page should cover at least: each page of each column costs
/// a header of ~20 bytes, a fraction of a percent of a page of photos, but a
/// tenth of a page of 32 thumbnails; small images get longer pages.
const PAGE_PIXELS: u64 = 1 << 20;

/// Table-level settings recorded in every file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    pub chroma: Chroma,
    /// Quality the pixel path quantizes with (JPEG sources keep their own tables).
    pub quality: u8,
    /// Rows per Parquet row group.
    pub row_group_size: usize,
    /// Rows per data page, the unit a scan can skip without reading it (a
    /// filtered or split scan reads only the pages holding its rows);
    /// `None` picks it from the images' size: about a megapixel per page.
    pub page_rows: Option<usize>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            chroma: Chroma::Yuv420,
            quality: 90,
            row_group_size: 1024,
            page_rows: None,
        }
    }
}

/// Rows per data page for images of these pixel counts: a power of two
/// from [`DEFAULT_PAGE_ROWS`] (photos) up to a row group (thumbnails), so
/// that a page covers about [`PAGE_PIXELS`].
fn page_rows_for(pixels: impl ExactSizeIterator<Item = u64>, row_group_size: usize) -> usize {
    let n = pixels.len().max(1) as u64;
    let mean = (pixels.sum::<u64>() / n).max(1);
    let want = PAGE_PIXELS.div_ceil(mean).next_power_of_two() as usize;
    want.clamp(DEFAULT_PAGE_ROWS, row_group_size.max(DEFAULT_PAGE_ROWS))
}

/// One image to write.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub id: u64,
    pub uri: String,
    pub image: CoefficientImage,
}

/// One image to write, tokenized (see [`TokenizedImage`]): what ingest
/// makes on its decoding threads.
#[derive(Debug, Clone)]
pub struct TokenizedRow {
    pub id: u64,
    pub uri: String,
    pub image: TokenizedImage,
}

impl TokenizedRow {
    /// Tokenizes `row`'s image; the error names the image and the column.
    pub fn new(row: &ImageRow) -> Result<Self> {
        Ok(TokenizedRow {
            id: row.id,
            uri: row.uri.clone(),
            image: TokenizedImage::new(&row.image)
                .map_err(|e| Error::InvalidArgument(format!("{}: {e}", row.uri)))?,
        })
    }
}

/// What a write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteStats {
    pub rows: usize,
    /// Size of the file on disk.
    pub file_bytes: u64,
    /// What the catalog records of the file (id, width and height ranges,
    /// user columns).
    pub stats: FileStats,
    /// The file's checksum (see [`super::checksum`]).
    pub checksum: String,
}

impl WriteStats {
    /// The catalog's entry for the file written, at `path` relative to the
    /// database directory.
    pub fn data_file(self, path: String) -> DataFile {
        DataFile {
            path,
            rows: self.rows as u64,
            bytes: self.file_bytes,
            stats: Some(self.stats),
            checksum: Some(self.checksum),
        }
    }
}

/// Writes `rows` (with `user_columns`, one array per extra column, aligned
/// with `rows`) to a new Parquet file at `path`.
///
/// Band codes are fitted to this file's images, so every file carries the
/// codes of its own columns in its metadata.
pub fn write_image_file(
    path: &Path,
    opts: &WriteOptions,
    rows: &[ImageRow],
    user_columns: &[(Arc<Field>, ArrayRef)],
) -> Result<WriteStats> {
    let rows = rows
        .iter()
        .map(TokenizedRow::new)
        .collect::<Result<Vec<_>>>()?;
    write_tokenized_file(path, opts, &rows, user_columns)
}

/// [`write_image_file`] for rows tokenized beforehand.
pub fn write_tokenized_file(
    path: &Path,
    opts: &WriteOptions,
    rows: &[TokenizedRow],
    user_columns: &[(Arc<Field>, ArrayRef)],
) -> Result<WriteStats> {
    let chroma = opts.chroma;
    for (f, a) in user_columns {
        if a.len() != rows.len() {
            return Err(Error::InvalidArgument(format!(
                "user column '{}' has {} values for {} images",
                f.name(),
                a.len(),
                rows.len()
            )));
        }
        if is_image_column(f.name())
            || [COL_ID, COL_URI, COL_WIDTH, COL_HEIGHT].contains(&f.name().as_str())
        {
            return Err(Error::InvalidArgument(format!(
                "user column '{}' clashes with a built-in column",
                f.name()
            )));
        }
    }
    for r in rows {
        check_row(r, chroma)?;
    }
    let codes = fit_codes(rows, chroma);
    let pixels = rows
        .iter()
        .map(|r| r.image.width() as u64 * r.image.height() as u64);
    let page = opts
        .page_rows
        .unwrap_or_else(|| page_rows_for(pixels, opts.row_group_size))
        .max(1);
    let user_fields: Vec<Arc<Field>> = user_columns.iter().map(|(f, _)| f.clone()).collect();
    let schema = Arc::new(file_schema(chroma, &user_fields));

    // Version 1 where nothing is split: older builds read such files too.
    let version = if rows.iter().any(|r| r.image.has_split_bands()) {
        FORMAT_VERSION
    } else {
        1
    };
    let mut meta = vec![
        KeyValue::new(META_FORMAT_VERSION.to_string(), version.to_string()),
        KeyValue::new(META_CHROMA.to_string(), chroma.name().to_string()),
        KeyValue::new(META_QUALITY.to_string(), opts.quality.to_string()),
    ];
    meta.push(KeyValue::new(
        META_BAND_CODES.to_string(),
        format_band_codes(&codes),
    ));

    let mut props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(opts.row_group_size.max(1)))
        .set_data_page_row_count_limit(page)
        .set_write_batch_size(page)
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_key_value_metadata(Some(meta));
    for name in [COL_ID, COL_WIDTH, COL_HEIGHT] {
        props = props.set_column_statistics_enabled(
            ColumnPath::new(vec![name.into()]),
            EnabledStatistics::Chunk,
        );
    }
    // Most images of a table share their quantization tables.
    props = props.set_column_dictionary_enabled(ColumnPath::new(vec![COL_QUANT.into()]), true);
    for f in &user_fields {
        let col = ColumnPath::new(vec![f.name().clone()]);
        props = props
            .set_column_dictionary_enabled(col.clone(), true)
            .set_column_statistics_enabled(col, EnabledStatistics::Chunk);
    }

    let file = ChecksumWriter::new(File::create(path).map_err(|e| Error::io(path, e))?);
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props.build()))
        .map_err(|e| Error::parquet(path, e))?;
    let step = opts.row_group_size.max(1);
    for start in (0..rows.len()).step_by(step) {
        let end = (start + step).min(rows.len());
        let chunk = &rows[start..end];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(chunk.iter().map(|r| r.id))),
            Arc::new(StringArray::from_iter_values(
                chunk.iter().map(|r| r.uri.as_str()),
            )),
            Arc::new(UInt32Array::from_iter_values(
                chunk.iter().map(|r| r.image.width()),
            )),
            Arc::new(UInt32Array::from_iter_values(
                chunk.iter().map(|r| r.image.height()),
            )),
        ];
        columns.extend(
            user_columns
                .iter()
                .map(|(_, a)| a.slice(start, end - start)),
        );
        let mut quant = BinaryBuilder::new();
        for r in chunk {
            let bytes: Vec<u8> = r
                .image
                .quant()
                .iter()
                .flatten()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            quant.append_value(bytes);
        }
        columns.push(Arc::new(quant.finish()));
        // Row by row, so that each image's tokens are read in order.
        let mut bands: Vec<BinaryBuilder> = codes
            .iter()
            .map(|_| BinaryBuilder::with_capacity(chunk.len(), 0))
            .collect();
        let mut blob = Vec::new();
        for r in chunk {
            for (col, (code, builder)) in codes.iter().zip(&mut bands).enumerate() {
                blob.clear();
                let tokens = r.image.column(col);
                encode_band_tokens(tokens, r.image.first_half(col), code, &mut blob).map_err(
                    |e| {
                        Error::InvalidArgument(format!(
                            "{}: {}: {e}",
                            r.uri,
                            band_column(col / 64, col % 64)
                        ))
                    },
                )?;
                builder.append_value(&blob);
            }
        }
        columns.extend(bands.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        writer.write(&batch).map_err(|e| Error::parquet(path, e))?;
    }
    let (file, checksum) = writer
        .into_inner()
        .map_err(|e| Error::parquet(path, e))?
        .finish();
    file.sync_all().map_err(|e| Error::io(path, e))?;
    let file_bytes = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut stats = FileStats {
        columns: user_fields
            .iter()
            .map(|f| UserColumn {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
            })
            .collect(),
        ..FileStats::default()
    };
    for r in rows {
        stats.add_row(r.id, r.image.width(), r.image.height());
    }
    Ok(WriteStats {
        rows: rows.len(),
        file_bytes,
        stats,
        checksum,
    })
}

/// The table's layout and a size the reader accepts (all 64 bands of
/// every plane are there: tokenizing required them).
fn check_row(r: &TokenizedRow, chroma: Chroma) -> Result<()> {
    let img = &r.image;
    let bad = |why: String| Err(Error::InvalidArgument(format!("{}: {why}", r.uri)));
    if img.chroma() != chroma {
        return bad(format!(
            "image has chroma {} but the table stores {}",
            img.chroma().name(),
            chroma.name()
        ));
    }
    let pixels = img.width() as u64 * img.height() as u64;
    if pixels > MAX_PIXELS {
        return bad(format!(
            "{}x{} pixels, over the {MAX_PIXELS} a table file may hold",
            img.width(),
            img.height()
        ));
    }
    Ok(())
}

/// One Huffman code per band column, fitted to the symbols of all rows.
fn fit_codes(rows: &[TokenizedRow], chroma: Chroma) -> Vec<HuffmanCode> {
    let mut hists = vec![[0u64; 256]; chroma.planes() * 64];
    for r in rows {
        for (col, hist) in hists.iter_mut().enumerate() {
            count_tokens(r.image.column(col), hist);
        }
    }
    hists.iter().map(HuffmanCode::from_histogram).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_about_a_megapixel_within_bounds() {
        let rows = |w: u64, h: u64, n: usize| std::iter::repeat_n(w * h, n);
        // Photos: the shortest pages; thumbnails: longer ones.
        assert_eq!(page_rows_for(rows(512, 512, 200), 1024), 32);
        assert_eq!(page_rows_for(rows(100, 100, 200), 1024), 128);
        // MNIST-sized: one page per row group.
        assert_eq!(page_rows_for(rows(28, 28, 2000), 1024), 1024);
        assert_eq!(page_rows_for(rows(28, 28, 10), 7), 32);
        assert_eq!(page_rows_for(std::iter::empty(), 1024), 1024);
    }
}
