//! Checks each Parquet page header against what the file's footer allows
//! before the Parquet reader acts on it.
//!
//! The parquet crate sizes buffers from page headers: a damaged header
//! that claims, say, a delta-encoded page of two billion values makes it
//! allocate and fill gigabytes before any check fails. The reader hands
//! every page header to [`check_page_header`] first (through the file
//! wrapper in `reader`, which sees each header's bytes), so a damaged page
//! becomes an error naming the column, in bounded memory.
//!
//! What is allowed is what spectradb writes: data pages (v1 or v2) and
//! dictionary pages, PLAIN or dictionary encoded values, RLE or bit-packed
//! levels, no more values than the column chunk holds, and no more than the
//! page's bytes can carry.

use parquet::basic::{Compression, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;

/// One column chunk of the file, as the footer describes it.
#[derive(Debug, Clone)]
pub(crate) struct ChunkBounds {
    /// First byte (dictionary page or first data page) and one past the last.
    pub start: u64,
    pub end: u64,
    /// Values the footer says the chunk holds.
    pub num_values: u64,
    pub column: String,
    /// The chunk's row group, and its column's index in it.
    pub row_group: usize,
    pub column_index: usize,
    physical: PhysicalType,
    uncompressed: bool,
    /// Whether values may be null (then a page's values may be levels only).
    nullable: bool,
}

/// The column chunks of a file in file order, for finding the chunk a
/// page header belongs to.
pub(crate) fn chunk_bounds(metadata: &ParquetMetaData) -> Vec<ChunkBounds> {
    let mut out = Vec::new();
    for (row_group, rg) in metadata.row_groups().iter().enumerate() {
        for (column_index, c) in rg.columns().iter().enumerate() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let (Ok(start), Ok(len)) = (u64::try_from(start), u64::try_from(c.compressed_size()))
            else {
                continue; // refused when the file is opened
            };
            out.push(ChunkBounds {
                start,
                end: start.saturating_add(len),
                num_values: c.num_values().max(0) as u64,
                column: c.column_path().string(),
                row_group,
                column_index,
                physical: c.column_type(),
                uncompressed: c.compression() == Compression::UNCOMPRESSED,
                nullable: c.column_descr().max_def_level() > 0,
            });
        }
    }
    out.sort_by_key(|c| c.start);
    out
}

/// The chunk holding byte `at`, if any.
pub(crate) fn chunk_at(chunks: &[ChunkBounds], at: u64) -> Option<&ChunkBounds> {
    chunk_index_at(chunks, at).map(|i| &chunks[i])
}

/// The index in `chunks` of the chunk holding byte `at`, if any.
pub(crate) fn chunk_index_at(chunks: &[ChunkBounds], at: u64) -> Option<usize> {
    let i = chunks.partition_point(|c| c.start <= at);
    i.checked_sub(1).filter(|&i| at < chunks[i].end)
}

// Page types and encodings (parquet.thrift).
const DATA_PAGE: i32 = 0;
const DICTIONARY_PAGE: i32 = 2;
const DATA_PAGE_V2: i32 = 3;
const PLAIN: i32 = 0;
const PLAIN_DICTIONARY: i32 = 2;
const RLE: i32 = 3;
const BIT_PACKED: i32 = 4;
const RLE_DICTIONARY: i32 = 8;

/// What the checks need of a page header.
#[derive(Debug, Default, PartialEq, Eq)]
struct PageHeader {
    page_type: Option<i32>,
    uncompressed_size: Option<i32>,
    compressed_size: Option<i32>,
    /// From the data, dictionary or v2 header.
    num_values: Option<i32>,
    encoding: Option<i32>,
    level_encodings: Vec<i32>,
    /// v2: bytes of levels before the values.
    levels_bytes: Vec<i32>,
}

/// Checks the page header at the start of `bytes` (the bytes from the
/// header's first byte up to at most the chunk's end) of a page at byte
/// `at` of `chunk`. `Err` says what is wrong.
pub(crate) fn check_page_header(chunk: &ChunkBounds, at: u64, bytes: &[u8]) -> Result<(), String> {
    let mut r = Compact { bytes, pos: 0 };
    let header = r.page_header()?;
    let header_len = r.pos as u64;
    let remaining = chunk.end.saturating_sub(at).saturating_sub(header_len);
    let page_type = header.page_type.ok_or("no page type")?;
    let compressed = header.compressed_size.ok_or("no page size")?;
    let uncompressed = header.uncompressed_size.ok_or("no page size")?;
    if compressed < 0 || compressed as u64 > remaining {
        return Err(format!(
            "page of {compressed} bytes, {remaining} left in the column chunk"
        ));
    }
    if uncompressed < 0 || (chunk.uncompressed && uncompressed != compressed) {
        return Err(format!(
            "uncompressed page of {compressed} bytes claims {uncompressed} bytes"
        ));
    }
    let values = header.num_values.ok_or("no value count")?;
    if values < 0 || values as u64 > chunk.num_values {
        return Err(format!(
            "page of {values} values, the column chunk holds {}",
            chunk.num_values
        ));
    }
    let encoding = header.encoding.ok_or("no encoding")?;
    let allowed: &[i32] = match page_type {
        DATA_PAGE | DATA_PAGE_V2 => &[PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY],
        DICTIONARY_PAGE => &[PLAIN, PLAIN_DICTIONARY],
        other => return Err(format!("page type {other}, which spectradb does not write")),
    };
    if !allowed.contains(&encoding) {
        return Err(format!(
            "value encoding {encoding}, which spectradb does not write"
        ));
    }
    if let Some(e) = header
        .level_encodings
        .iter()
        .find(|e| ![RLE, BIT_PACKED].contains(e))
    {
        return Err(format!(
            "level encoding {e}, which spectradb does not write"
        ));
    }
    let levels: i64 = header.levels_bytes.iter().map(|&b| b as i64).sum();
    if header.levels_bytes.iter().any(|&b| b < 0) || levels > compressed as i64 {
        return Err(format!(
            "levels of {levels} bytes in a page of {compressed}"
        ));
    }
    // Plain values take at least this many bytes each; dictionary indices
    // are decoded a batch at a time, so only their count is bounded.
    let min_bytes = match chunk.physical {
        PhysicalType::BYTE_ARRAY | PhysicalType::INT32 | PhysicalType::FLOAT => 4,
        PhysicalType::INT64 | PhysicalType::DOUBLE => 8,
        PhysicalType::INT96 => 12,
        PhysicalType::BOOLEAN | PhysicalType::FIXED_LEN_BYTE_ARRAY => 0,
    };
    let plain = encoding == PLAIN || (page_type == DICTIONARY_PAGE);
    // A data page's values may be nulls (levels only): only dictionary
    // pages and pages of required columns are bounded by their bytes.
    let bounded = page_type == DICTIONARY_PAGE || !chunk.nullable;
    if plain && bounded && values as i64 * min_bytes > compressed as i64 {
        return Err(format!(
            "{values} plain values cannot fit in a page of {compressed} bytes"
        ));
    }
    Ok(())
}

/// Deepest nesting of structs skipped (statistics hold none deeper).
const MAX_DEPTH: usize = 8;

/// A reader of Thrift's compact protocol over a byte slice: enough of it
/// to read a page header and skip what the checks do not need.
struct Compact<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Compact<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or("page header runs past the column chunk")?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("malformed page header (varint too long)".into())
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, String> {
        i32::try_from(self.zigzag()?).map_err(|_| "malformed page header (i32 out of range)".into())
    }

    /// The next field's (id, type), `None` at the end of a struct.
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, String> {
        let b = self.byte()?;
        if b == 0 {
            return Ok(None);
        }
        let (delta, kind) = (b >> 4, b & 0x0f);
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| "malformed page header (field id)")?
        } else {
            last.saturating_add(i16::from(delta))
        };
        *last = id;
        Ok(Some((id, kind)))
    }

    /// Skips a value of compact type `kind`.
    fn skip(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("malformed page header (nested too deep)".into());
        }
        match kind {
            1 | 2 => Ok(()),
            3 => self.byte().map(drop),
            4..=6 => self.varint().map(drop),
            7 => self.advance(8),
            8 => {
                let n = self.varint()?;
                self.advance(n)
            }
            9 | 10 => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                let element = h & 0x0f;
                for _ in 0..n {
                    // Booleans in lists take a byte each.
                    if element == 1 || element == 2 {
                        self.byte()?;
                    } else {
                        self.skip(element, depth + 1)?;
                    }
                    self.bounded()?;
                }
                Ok(())
            }
            11 => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                for _ in 0..n {
                    self.skip(kv >> 4, depth + 1)?;
                    self.skip(kv & 0x0f, depth + 1)?;
                    self.bounded()?;
                }
                Ok(())
            }
            12 => {
                let mut last = 0;
                while let Some((_, k)) = self.field(&mut last)? {
                    self.skip(k, depth + 1)?;
                }
                Ok(())
            }
            other => Err(format!("malformed page header (type {other})")),
        }
    }

    fn advance(&mut self, n: u64) -> Result<(), String> {
        let end = (self.pos as u64).saturating_add(n);
        if end > self.bytes.len() as u64 {
            return Err("page header runs past the column chunk".into());
        }
        self.pos = end as usize;
        Ok(())
    }

    /// Ends a loop over a damaged count once the input is used up.
    fn bounded(&self) -> Result<(), String> {
        if self.pos > self.bytes.len() {
            return Err("page header runs past the column chunk".into());
        }
        Ok(())
    }

    fn page_header(&mut self) -> Result<PageHeader, String> {
        let mut h = PageHeader::default();
        let mut last = 0;
        while let Some((id, kind)) = self.field(&mut last)? {
            match (id, kind) {
                (1, 5) => h.page_type = Some(self.i32()?),
                (2, 5) => h.uncompressed_size = Some(self.i32()?),
                (3, 5) => h.compressed_size = Some(self.i32()?),
                (5, 12) => self.values_header(
                    &mut h,
                    &[
                        (1, Field::Values),
                        (2, Field::Encoding),
                        (3, Field::Levels),
                        (4, Field::Levels),
                    ],
                )?,
                (7, 12) => {
                    self.values_header(&mut h, &[(1, Field::Values), (2, Field::Encoding)])?
                }
                (8, 12) => self.values_header(
                    &mut h,
                    &[
                        (1, Field::Values),
                        (4, Field::Encoding),
                        (5, Field::LevelBytes),
                        (6, Field::LevelBytes),
                    ],
                )?,
                (_, k) => self.skip(k, 1)?,
            }
        }
        Ok(h)
    }

    /// A data, dictionary or v2 header: the i32 fields named in `wanted`.
    fn values_header(&mut self, h: &mut PageHeader, wanted: &[(i16, Field)]) -> Result<(), String> {
        let mut last = 0;
        while let Some((id, kind)) = self.field(&mut last)? {
            match wanted.iter().find(|(w, _)| *w == id) {
                Some((_, field)) if kind == 5 => {
                    let v = self.i32()?;
                    match field {
                        Field::Values => h.num_values = Some(v),
                        Field::Encoding => h.encoding = Some(v),
                        Field::Levels => h.level_encodings.push(v),
                        Field::LevelBytes => h.levels_bytes.push(v),
                    }
                }
                _ => self.skip(kind, 2)?,
            }
        }
        Ok(())
    }
}

/// The i32 fields of a values header the checks read.
#[derive(Debug, Clone, Copy)]
enum Field {
    Values,
    Encoding,
    Levels,
    LevelBytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Thrift compact bytes of an i32 field (`delta` from the last id).
    fn i32_field(delta: u8, v: i32) -> Vec<u8> {
        let mut out = vec![(delta << 4) | 5];
        let mut z = ((v << 1) ^ (v >> 31)) as u32;
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    /// A v1 data page header: `size` bytes, `values` values in `encoding`.
    fn data_page(size: i32, values: i32, encoding: i32) -> Vec<u8> {
        page(size, size, values, encoding)
    }

    fn page(uncompressed: i32, size: i32, values: i32, encoding: i32) -> Vec<u8> {
        let mut h = [
            i32_field(1, DATA_PAGE),
            i32_field(1, uncompressed),
            i32_field(1, size),
        ]
        .concat();
        h.push((2 << 4) | 12); // field 5: the data page header
        h.extend(
            [
                i32_field(1, values),
                i32_field(1, encoding),
                i32_field(1, RLE),
                i32_field(1, RLE),
            ]
            .concat(),
        );
        h.extend([0, 0]); // end of both structs
        h
    }

    fn chunk(num_values: u64, nullable: bool) -> ChunkBounds {
        ChunkBounds {
            start: 1000,
            end: 2000,
            num_values,
            column: "image.y.0".into(),
            row_group: 0,
            column_index: 0,
            physical: PhysicalType::BYTE_ARRAY,
            uncompressed: true,
            nullable,
        }
    }

    #[test]
    fn pages_as_spectradb_writes_them_pass() {
        let c = chunk(32, false);
        assert_eq!(
            check_page_header(&c, 1000, &data_page(400, 32, PLAIN)),
            Ok(())
        );
        assert_eq!(
            check_page_header(&c, 1000, &data_page(40, 32, RLE_DICTIONARY)),
            Ok(())
        );
        // Nullable: 32 values may all be nulls in a few bytes.
        assert_eq!(
            check_page_header(&chunk(32, true), 1000, &data_page(8, 32, PLAIN)),
            Ok(())
        );
    }

    #[test]
    fn damaged_headers_are_refused_before_anything_is_sized_from_them() {
        let c = chunk(32, false);
        let refused = |bytes: &[u8], what: &str| {
            let err = check_page_header(&c, 1000, bytes).unwrap_err();
            assert!(err.contains(what), "{what}: {err}");
        };
        // A delta encoding sizes its lengths from the page's own count.
        refused(&data_page(400, 32, 6), "value encoding 6");
        refused(&data_page(400, i32::MAX, PLAIN), "column chunk holds 32");
        refused(&data_page(1 << 20, 32, PLAIN), "left in the column chunk");
        refused(&data_page(40, 32, PLAIN), "cannot fit");
        refused(&data_page(-5, 32, PLAIN), "page of -5 bytes");
        let mut cut = data_page(400, 32, PLAIN);
        cut.truncate(cut.len() - 4);
        refused(&cut, "runs past");
        // Uncompressed pages claim their own size twice.
        refused(&page(1 << 30, 400, 32, PLAIN), "claims 1073741824 bytes");
        // Structs nested without end, and a list claiming 2^60 elements.
        refused(&[(6 << 4) | 12; 64], "nested too deep");
        refused(
            &[
                (6 << 4) | 9,
                0xf5,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x0f,
            ],
            "runs past",
        );
        refused(&[], "runs past");
    }

    #[test]
    fn the_chunk_of_a_byte_is_found() {
        let chunks = vec![
            ChunkBounds {
                start: 4,
                end: 10,
                ..chunk(1, false)
            },
            ChunkBounds {
                start: 10,
                end: 30,
                ..chunk(1, false)
            },
        ];
        assert_eq!(chunk_at(&chunks, 3).map(|c| c.start), None);
        assert_eq!(chunk_at(&chunks, 4).map(|c| c.start), Some(4));
        assert_eq!(chunk_at(&chunks, 10).map(|c| c.start), Some(10));
        assert_eq!(chunk_at(&chunks, 29).map(|c| c.start), Some(10));
        assert_eq!(chunk_at(&chunks, 30).map(|c| c.start), None);
    }
}
