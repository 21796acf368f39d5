//! Reads image table files, touching only the band columns asked for.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::{Array, BinaryArray, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::ProjectionMask;
use parquet::file::reader::{ChunkReader, Length};

use super::bands::decode_band;
use super::catalog::{FileStats, UserColumn};
use super::huffman::HuffmanDecoder;
use super::layout::*;
use super::page_guard::{check_page_header, chunk_at, chunk_bounds, chunk_index_at, ChunkBounds};
use super::remote::{self, RemoteFile};
pub use crate::codec::BandSelection;
use crate::codec::{Chroma, CoefPlane, CoefficientImage, QuantTable};
use crate::error::{Error, Result};

/// Largest width or height a stored image may claim (JPEG's own limit is 65,535).
pub use crate::codec::MAX_DIMENSION;

/// Most bytes a coded band of `blocks` values can take: every value costs
/// at most a 12-bit code and 15 extra bits, a zero run of 16 or more at most
/// 30 bits, the end-of-band code 12 bits.
fn max_band_bytes(blocks: usize) -> usize {
    // 4 bytes cover a value's longest code and bits; the rest covers the
    // end of band and, for a band in two halves, the length and padding.
    blocks.saturating_mul(4).saturating_add(16)
}

/// Where a table file's bytes come from.
#[derive(Clone)]
enum Source {
    Disk(Arc<File>),
    /// A file already in memory (a fuzzer's input, a file fetched whole).
    Memory(Bytes),
    /// An object in a store, read by ranged GETs through a read-ahead
    /// window per column chunk.
    Remote(Arc<RemoteReads>),
}

/// Bytes read ahead of a request to an object store, within its column
/// chunk: the Parquet reader asks for one page header, then one page, at a
/// time, and a request per page would cost a round trip per 32 images.
const REMOTE_READ_AHEAD: u64 = 1 << 20;

/// Bytes of the file's tail fetched at open: the footer of a file of one
/// row group (with its band codes) fits, so opening costs one GET; a
/// larger footer costs one more.
const REMOTE_TAIL: u64 = 64 << 10;

/// The fetched windows of a remote file, by index of their column chunk
/// (the tail under `usize::MAX`): those of the row group being read and of
/// the ones prefetched after it (at most [`REMOTE_PREFETCH`] bytes).
struct RemoteReads {
    file: RemoteFile,
    windows: Mutex<HashMap<usize, (u64, Bytes)>>,
    requests: AtomicU64,
    fetched: AtomicU64,
}

/// Most bytes a scan of a remote file fetches ahead, all at once, before
/// its Parquet reader asks (the rest comes window by window).
const REMOTE_PREFETCH: u64 = 64 << 20;

impl RemoteReads {
    /// Fetches the windows `(key, start, end)` concurrently.
    fn prefetch(&self, windows: Vec<(usize, u64, u64)>) -> Result<()> {
        let ranges = windows.iter().map(|&(_, start, end)| start..end).collect();
        let fetched = self.file.read_ranges(ranges)?;
        self.requests
            .fetch_add(windows.len() as u64, Ordering::Relaxed);
        let mut held = self.windows.lock().expect("windows lock");
        for ((key, start, _), bytes) in windows.into_iter().zip(fetched) {
            self.fetched
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            held.insert(key, (start, bytes));
        }
        Ok(())
    }

    /// Bytes `start..start + length`, from a window or fetched with those
    /// up to `limit` (the end of the column chunk) read ahead. A read in a
    /// chunk of row group `g` (of `chunks`) frees the windows of earlier
    /// row groups: the Parquet reader is done with them.
    fn read(
        &self,
        chunks: &[ChunkBounds],
        key: usize,
        start: u64,
        length: u64,
        limit: u64,
    ) -> std::io::Result<Bytes> {
        let end = start + length;
        if length == 0 {
            return Ok(Bytes::new());
        }
        {
            let mut windows = self.windows.lock().expect("windows lock");
            if let Some(g) = chunks.get(key).map(|c| c.row_group) {
                windows.retain(|&k, _| chunks.get(k).is_none_or(|c| c.row_group >= g));
            }
            if let Some((at, bytes)) = windows.get(&key) {
                if *at <= start && end <= at + bytes.len() as u64 {
                    return Ok(bytes.slice((start - at) as usize..(end - at) as usize));
                }
            }
        }
        let until = limit.min(start + length.max(REMOTE_READ_AHEAD)).max(end);
        let bytes = self
            .file
            .read_range(start..until)
            .map_err(std::io::Error::other)?;
        if bytes.len() as u64 != until - start {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: the store returned {} of {} bytes",
                    self.file.url(),
                    bytes.len(),
                    until - start
                ),
            ));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.fetched
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let out = bytes.slice(0..length as usize);
        self.windows
            .lock()
            .expect("windows lock")
            .insert(key, (start, bytes));
        Ok(out)
    }
}

/// A file that counts the bytes the Parquet reader pulls from it, and
/// checks every page header before the reader sees it (see
/// [`super::page_guard`]).
#[derive(Clone)]
struct CountingFile {
    source: Source,
    len: u64,
    read: Arc<AtomicU64>,
    /// The footer's column chunks, once it is read.
    chunks: Arc<OnceLock<Vec<ChunkBounds>>>,
}

/// Bytes of a page header read ahead to check it (headers of spectradb's
/// pages take a few dozen).
const HEADER_READ_AHEAD: u64 = 8 << 10;

/// A reader at a page header that checks the header (see
/// [`super::page_guard`]) before the first byte is handed on.
struct GuardedRead {
    inner: Box<dyn BufRead + Send>,
    /// The column chunk the header is in, if any.
    chunk: Option<ChunkBounds>,
    start: u64,
    checked: bool,
}

impl Read for GuardedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.checked {
            self.checked = true;
            if let Some(c) = &self.chunk {
                let header = self.inner.fill_buf()?;
                check_page_header(c, self.start, header).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("column {}: page at byte {}: {e}", c.column, self.start),
                    )
                })?;
            }
        }
        self.inner.read(buf)
    }
}

/// Counts what the Parquet reader consumes, not what the buffer prefetches.
struct CountingRead {
    inner: Box<dyn Read + Send>,
    read: Arc<AtomicU64>,
}

impl Read for CountingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl CountingFile {
    /// The window key of a read at `start` and where its read-ahead must
    /// stop: its column chunk (index, end), else the file's tail.
    fn window_of(&self, start: u64) -> (usize, u64) {
        let chunks = self.chunk_list();
        match chunk_index_at(chunks, start) {
            Some(i) => (i, chunks[i].end.min(self.len)),
            None => (usize::MAX, self.len),
        }
    }

    /// The footer's column chunks, ordered by start (none before it is read).
    fn chunk_list(&self) -> &[ChunkBounds] {
        self.chunks.get().map_or(&[][..], Vec::as_slice)
    }
}

/// A remote column chunk from `at` to `end`, read through its window.
struct RemoteRead {
    remote: Arc<RemoteReads>,
    chunks: Arc<OnceLock<Vec<ChunkBounds>>>,
    key: usize,
    at: u64,
    end: u64,
}

impl Read for RemoteRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.end - self.at);
        if n == 0 {
            return Ok(0);
        }
        let chunks = self.chunks.get().map_or(&[][..], Vec::as_slice);
        let bytes = self.remote.read(chunks, self.key, self.at, n, self.end)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.at += n;
        Ok(n as usize)
    }
}

impl Length for CountingFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for CountingFile {
    type T = CountingRead;

    /// The Parquet reader reads page headers through this (and page data
    /// through `get_bytes`): within a column chunk, the header at `start`
    /// is checked when it is first read (the reader also asks for readers
    /// it never reads, at data offsets), and reading stops at the chunk's
    /// end.
    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let chunk = self.chunks.get().and_then(|c| chunk_at(c, start)).cloned();
        let end = chunk.as_ref().map_or(self.len, |c| c.end.min(self.len));
        let limit = end.saturating_sub(start);
        let ahead = limit.clamp(1, HEADER_READ_AHEAD) as usize;
        let inner: Box<dyn BufRead + Send> = match &self.source {
            Source::Disk(file) => {
                let mut file = file.try_clone()?;
                file.seek(SeekFrom::Start(start))?;
                Box::new(BufReader::with_capacity(ahead, file.take(limit)))
            }
            Source::Memory(bytes) => {
                let from = start.min(end) as usize;
                let rest = bytes.slice(from..end as usize);
                Box::new(BufReader::with_capacity(
                    ahead,
                    ChunkReader::get_read(&rest, 0)?,
                ))
            }
            Source::Remote(remote) => {
                let (key, _) = self.window_of(start);
                Box::new(BufReader::with_capacity(
                    ahead,
                    RemoteRead {
                        remote: remote.clone(),
                        chunks: self.chunks.clone(),
                        key,
                        at: start.min(end),
                        end,
                    },
                ))
            }
        };
        Ok(CountingRead {
            inner: Box::new(GuardedRead {
                inner,
                chunk,
                start,
                checked: false,
            }),
            read: self.read.clone(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        // Lengths come from the file's own metadata: check them against the
        // file before allocating, so a corrupt footer cannot ask for terabytes.
        if start
            .checked_add(length as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "{length} bytes at offset {start} lie past the end of the file ({} bytes)",
                self.len
            )));
        }
        // Page data and footers, not headers: read as they are (get_read
        // checks headers).
        self.read.fetch_add(length as u64, Ordering::Relaxed);
        match &self.source {
            Source::Memory(bytes) => ChunkReader::get_bytes(bytes, start, length),
            Source::Remote(remote) => {
                let (key, limit) = self.window_of(start);
                Ok(remote.read(self.chunk_list(), key, start, length as u64, limit)?)
            }
            Source::Disk(file) => {
                let mut file = file.try_clone()?;
                file.seek(SeekFrom::Start(start))?;
                let mut buf = vec![0u8; length];
                file.read_exact(&mut buf)?;
                Ok(buf.into())
            }
        }
    }
}

/// An open image table file (a clone shares the open file and footer).
#[derive(Clone)]
pub struct ImageFileReader {
    path: PathBuf,
    input: CountingFile,
    metadata: ArrowReaderMetadata,
    chroma: Chroma,
    quality: u8,
    /// Decoders of the band columns, indexed `plane * 64 + k`.
    decoders: Vec<Option<Arc<HuffmanDecoder>>>,
    /// Format version of the file (see [`band_is_split`]).
    version: u32,
}

impl ImageFileReader {
    /// Opens a file (or an object, at an `s3://` location: see
    /// [`super::remote`]) and checks its format version and layout.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if remote::is_remote(&path) {
            return Self::open_remote(RemoteFile::new(&path.to_string_lossy())?);
        }
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let input = CountingFile {
            source: Source::Disk(Arc::new(file)),
            len,
            read: Arc::new(AtomicU64::new(0)),
            chunks: Arc::default(),
        };
        Self::with_input(path, input)
    }

    /// Opens an object of a store: a HEAD for its size, a GET of its tail
    /// for the footer, then ranged GETs of the column chunks a scan reads.
    fn open_remote(file: RemoteFile) -> Result<Self> {
        let path = PathBuf::from(file.url());
        let len = file.size()?;
        if len == 0 {
            return Err(Error::corrupt(
                &path,
                "the object is empty: not a spectradb image table file",
            ));
        }
        let remote = Arc::new(RemoteReads {
            file,
            windows: Mutex::default(),
            requests: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
        });
        let tail = len.saturating_sub(REMOTE_TAIL);
        remote
            .read(&[], usize::MAX, tail, len - tail, len)
            .map_err(|e| Error::io(&path, e))?;
        let input = CountingFile {
            source: Source::Remote(remote),
            len,
            read: Arc::new(AtomicU64::new(0)),
            chunks: Arc::default(),
        };
        Self::with_input(path, input)
    }

    /// Opens a table file held in memory, with the checks of
    /// [`ImageFileReader::open`]; `name` stands for it in error messages.
    pub fn from_bytes(name: impl AsRef<Path>, data: impl Into<Bytes>) -> Result<Self> {
        let data: Bytes = data.into();
        let input = CountingFile {
            len: data.len() as u64,
            source: Source::Memory(data),
            read: Arc::new(AtomicU64::new(0)),
            chunks: Arc::default(),
        };
        Self::with_input(name.as_ref().to_path_buf(), input)
    }

    fn with_input(path: PathBuf, input: CountingFile) -> Result<Self> {
        // The Arrow types of spectradb's columns follow from the Parquet
        // schema alone; decoding the embedded Arrow schema as well would run
        // arrow-ipc code that panics on a malformed one.
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let metadata =
            ArrowReaderMetadata::load(&input, options).map_err(|e| Error::parquet(&path, e))?;
        // The Parquet reader asserts that these are not negative.
        for (g, rg) in metadata.metadata().row_groups().iter().enumerate() {
            for c in rg.columns() {
                let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
                if start < 0 || c.compressed_size() < 0 {
                    return Err(Error::corrupt(
                        &path,
                        format!(
                            "row group {g}, column {}: negative offset or size",
                            c.column_path()
                        ),
                    ));
                }
            }
        }
        let _ = input.chunks.set(chunk_bounds(metadata.metadata()));
        let kv = |key: &str| {
            metadata
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .and_then(|kvs| kvs.iter().find(|kv| kv.key == key))
                .and_then(|kv| kv.value.clone())
        };
        let version = kv(META_FORMAT_VERSION).ok_or_else(|| {
            Error::corrupt(
                &path,
                "not a spectradb image table file (no format version)",
            )
        })?;
        let version = match version.parse::<u32>() {
            Ok(v @ 1..=FORMAT_VERSION) => v,
            Ok(v) if v > FORMAT_VERSION => {
                return Err(Error::corrupt(
                    &path,
                    format!("written by a newer spectradb (format version {v}, this build reads {FORMAT_VERSION}): upgrade spectradb"),
                ))
            }
            _ => return Err(Error::corrupt(&path, format!("unknown format version '{version}'"))),
        };
        let chroma = Chroma::parse(&kv(META_CHROMA).unwrap_or_default())
            .map_err(|e| Error::corrupt(&path, format!("chroma metadata: {e}")))?;
        let quality = kv(META_QUALITY).and_then(|q| q.parse().ok()).unwrap_or(0);
        let codes = parse_band_codes(&kv(META_BAND_CODES).unwrap_or_default())
            .map_err(|e| Error::corrupt(&path, e))?;
        let schema = metadata.schema().clone();
        let mut decoders = vec![None; 3 * 64];
        for plane in 0..chroma.planes() {
            for k in 0..64 {
                let name = band_column(plane, k);
                if schema.index_of(&name).is_err() {
                    return Err(Error::corrupt(&path, format!("column {name} is missing")));
                }
                let code = codes.get(&name).ok_or_else(|| {
                    Error::corrupt(&path, format!("no code table for column {name}"))
                })?;
                decoders[plane * 64 + k] = Some(Arc::new(code.decoder()));
            }
        }
        for col in [COL_ID, COL_URI, COL_WIDTH, COL_HEIGHT, COL_QUANT] {
            if schema.index_of(col).is_err() {
                return Err(Error::corrupt(&path, format!("column {col} is missing")));
            }
        }
        Ok(ImageFileReader {
            path,
            input,
            metadata,
            chroma,
            quality,
            decoders,
            version,
        })
    }

    /// The file's format version (1 or 2; see [`band_is_split`]).
    pub fn format_version(&self) -> u32 {
        self.version
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Arrow schema of the file (plain, user and band columns).
    pub fn schema(&self) -> SchemaRef {
        self.metadata.schema().clone()
    }

    pub fn num_rows(&self) -> usize {
        self.metadata.metadata().file_metadata().num_rows() as usize
    }

    pub fn chroma(&self) -> Chroma {
        self.chroma
    }

    /// Quality the pixel path used when the file was written.
    pub fn quality(&self) -> u8 {
        self.quality
    }

    /// On-disk bytes of each column (all row groups), in schema order.
    pub fn column_bytes(&self) -> Vec<(String, u64)> {
        let meta = self.metadata.metadata();
        let schema = meta.file_metadata().schema_descr();
        (0..schema.num_columns())
            .map(|c| {
                let bytes = meta
                    .row_groups()
                    .iter()
                    .map(|rg| rg.column(c).compressed_size() as u64)
                    .sum();
                (schema.column(c).name().to_string(), bytes)
            })
            .collect()
    }

    /// What the catalog records of this file, read from it: for files
    /// listed by catalogs written before statistics were kept. Reads the
    /// `id`, `width` and `height` columns, no band.
    pub fn file_stats(&self) -> Result<FileStats> {
        let mut stats = FileStats {
            columns: self
                .schema()
                .fields()
                .iter()
                .filter(|f| {
                    let n = f.name().as_str();
                    !is_image_column(n) && ![COL_ID, COL_URI, COL_WIDTH, COL_HEIGHT].contains(&n)
                })
                .map(|f| UserColumn {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                })
                .collect(),
            ..FileStats::default()
        };
        for batch in self.scan(
            &[COL_ID, COL_WIDTH, COL_HEIGHT],
            &BandSelection::none(),
            8192,
        )? {
            let batch = batch?.batch;
            let column = |name: &str| batch.column_by_name(name).map(|c| c.as_any());
            let ids = column(COL_ID).and_then(|c| c.downcast_ref::<UInt64Array>());
            let widths = column(COL_WIDTH).and_then(|c| c.downcast_ref::<UInt32Array>());
            let heights = column(COL_HEIGHT).and_then(|c| c.downcast_ref::<UInt32Array>());
            let (Some(ids), Some(widths), Some(heights)) = (ids, widths, heights) else {
                return Err(Error::corrupt(
                    &self.path,
                    "id, width or height is not of its type",
                ));
            };
            for i in 0..batch.num_rows() {
                stats.add_row(ids.value(i), widths.value(i), heights.value(i));
            }
        }
        Ok(stats)
    }

    /// Reads every column of every row and decodes every image, as a scan
    /// would: what `CHECK TABLE` runs on each file. Returns the rows read;
    /// the first damage found is the error.
    pub fn verify(&self) -> Result<usize> {
        let schema = self.schema();
        let plain: Vec<&str> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| !is_image_column(n))
            .collect();
        let mut rows = 0;
        for batch in self.scan(&plain, &BandSelection::all(), 16)? {
            let batch = batch?;
            for row in 0..batch.num_rows() {
                batch.image(row)?;
            }
            rows += batch.num_rows();
        }
        if rows != self.num_rows() {
            return Err(Error::corrupt(
                &self.path,
                format!("{rows} rows read, the footer says {}", self.num_rows()),
            ));
        }
        Ok(rows)
    }

    /// Bytes read from the file so far, footer included.
    pub fn bytes_read(&self) -> u64 {
        self.input.read.load(Ordering::Relaxed)
    }

    /// For an object in a store: the requests made and the bytes they
    /// fetched so far (read-ahead included); `None` for a local file.
    pub fn store_reads(&self) -> Option<(u64, u64)> {
        match &self.input.source {
            Source::Remote(r) => Some((
                r.requests.load(Ordering::Relaxed),
                r.fetched.load(Ordering::Relaxed),
            )),
            _ => None,
        }
    }

    /// Starts a scan of the named plain columns plus the selected bands
    /// (which bring `width`, `height` and `image.quant` along).
    pub fn scan(
        &self,
        columns: &[&str],
        bands: &BandSelection,
        batch_size: usize,
    ) -> Result<ImageScan> {
        self.scan_rows(columns, bands, batch_size, None)
    }

    /// Like [`ImageFileReader::scan`], reading only the rows at the given
    /// (ascending) indices when `rows` is given.
    pub fn scan_rows(
        &self,
        columns: &[&str],
        bands: &BandSelection,
        batch_size: usize,
        rows: Option<&[usize]>,
    ) -> Result<ImageScan> {
        let schema = self.schema();
        let mut names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        if !bands.is_empty() {
            for c in [COL_WIDTH, COL_HEIGHT, COL_QUANT] {
                names.push(c.to_string());
            }
            for plane in 0..self.chroma.planes() {
                for k in 0..64 {
                    if bands.contains(plane, k) {
                        names.push(band_column(plane, k));
                    }
                }
            }
        }
        let mut indices = Vec::with_capacity(names.len());
        for n in &names {
            let i = schema.index_of(n).map_err(|_| {
                Error::InvalidArgument(format!("{}: no column named '{n}'", self.path.display()))
            })?;
            indices.push(i);
        }
        indices.sort_unstable();
        indices.dedup();
        let selection = rows.map(|r| self.row_group_selection(r)).transpose()?;
        self.prefetch(
            &indices,
            selection.as_ref().map(|(groups, _)| groups.as_slice()),
        )?;
        let reader = self.parquet_reader(&indices, batch_size, selection.clone())?;
        let mut band_cols = Vec::new();
        for plane in 0..self.chroma.planes() {
            for k in 0..64 {
                if bands.contains(plane, k) {
                    let dec = self.decoders[plane * 64 + k]
                        .clone()
                        .expect("checked at open");
                    band_cols.push(ScanBand {
                        plane,
                        k,
                        decoder: dec,
                        version: self.version,
                    });
                }
            }
        }
        Ok(ImageScan {
            reader,
            file: self.clone(),
            columns: indices,
            selection,
            failed: false,
            chroma: self.chroma,
            bands: Arc::new(band_cols),
        })
    }

    /// For a remote file: fetches the first window of each chunk of
    /// `columns` in `groups` (all row groups when `None`) at once, up to
    /// [`REMOTE_PREFETCH`] bytes, so that the Parquet reader, which asks
    /// for one chunk after another, finds them there.
    fn prefetch(&self, columns: &[usize], groups: Option<&[usize]>) -> Result<()> {
        let Source::Remote(remote) = &self.input.source else {
            return Ok(());
        };
        let mut windows = Vec::new();
        let mut total = 0;
        for (key, chunk) in self.input.chunk_list().iter().enumerate() {
            let wanted = groups.is_none_or(|g| g.contains(&chunk.row_group))
                && columns.contains(&chunk.column_index);
            let end = chunk
                .end
                .min(self.input.len)
                .min(chunk.start + REMOTE_READ_AHEAD);
            // (A damaged footer may put a chunk past the end: the reader
            // reports it when it gets there.)
            if !wanted || end <= chunk.start || total + (end - chunk.start) > REMOTE_PREFETCH {
                continue;
            }
            total += end - chunk.start;
            windows.push((key, chunk.start, end));
        }
        remote.prefetch(windows)
    }

    /// The Parquet reader of the given columns (and rows).
    fn parquet_reader(
        &self,
        columns: &[usize],
        batch_size: usize,
        selection: Option<(Vec<usize>, RowSelection)>,
    ) -> Result<ParquetRecordBatchReader> {
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.input.clone(),
            self.metadata.clone(),
        );
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
        let mut builder = builder
            .with_projection(mask)
            .with_batch_size(batch_size.max(1));
        if let Some((groups, selection)) = selection {
            builder = builder
                .with_row_groups(groups)
                .with_row_selection(selection);
        }
        builder.build().map_err(|e| Error::parquet(&self.path, e))
    }

    /// After the Parquet reader failed with `error` on some of `columns`:
    /// which one it was, found by reading each alone (only on this error
    /// path), so the error can name the column.
    fn locate_damage(
        &self,
        columns: &[usize],
        selection: &Option<(Vec<usize>, RowSelection)>,
        error: &arrow_schema::ArrowError,
    ) -> Error {
        let schema = self.metadata.schema().clone();
        for &c in columns {
            let Ok(reader) = self.parquet_reader(&[c], 1024, selection.clone()) else {
                continue;
            };
            let mut reader = reader;
            while let Some(batch) = next_batch(&mut reader) {
                if let Err(e) = batch {
                    let (column, reason) = (schema.field(c).name(), parquet_reason(&e));
                    // The page guard's messages name the column already.
                    return Error::corrupt(
                        &self.path,
                        if reason.contains(&format!("column {column}:")) {
                            reason
                        } else {
                            format!("column {column}: {reason}")
                        },
                    );
                }
            }
        }
        Error::corrupt(&self.path, parquet_reason(error))
    }
}

/// The reader's next batch. The Parquet decoder asserts on some damaged
/// values (a dictionary page's bit width, for one) instead of returning an
/// error; such a panic becomes the error of the batch, so a damaged page
/// fails its statement with the file's name like any other damage.
fn next_batch(
    reader: &mut ParquetRecordBatchReader,
) -> Option<std::result::Result<RecordBatch, arrow_schema::ArrowError>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.next())).unwrap_or_else(
        |panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Some(Err(arrow_schema::ArrowError::ParquetError(format!(
                "the decoder failed on damaged data ({what})"
            ))))
        },
    )
}

/// A Parquet reader error as a reason (Arrow's wrapper names Parquet twice,
/// and the page guard's refusals come back marked "External").
fn parquet_reason(e: &arrow_schema::ArrowError) -> String {
    match e {
        arrow_schema::ArrowError::ParquetError(m) => {
            m.strip_prefix("External: ").unwrap_or(m).to_string()
        }
        other => other.to_string(),
    }
}

impl ImageFileReader {
    /// The row groups holding any of `rows` (ascending file row indices),
    /// and the selection of `rows` within those groups: row groups and
    /// pages without a wanted row are never read.
    fn row_group_selection(&self, rows: &[usize]) -> Result<(Vec<usize>, RowSelection)> {
        if rows.windows(2).any(|w| w[0] >= w[1])
            || rows.last().is_some_and(|&r| r >= self.num_rows())
        {
            return Err(Error::Internal(format!(
                "{}: rows to read are not ascending file rows",
                self.path.display()
            )));
        }
        let mut groups = Vec::new();
        let mut ranges = Vec::new();
        // `base` is where the current group starts in the file, `kept` in
        // the concatenation of the kept groups.
        let (mut base, mut kept, mut next) = (0usize, 0usize, 0usize);
        for (g, rg) in self.metadata.metadata().row_groups().iter().enumerate() {
            let len = rg.num_rows().max(0) as usize;
            let end = base + len;
            let first = next;
            while next < rows.len() && rows[next] < end {
                next += 1;
            }
            if next > first {
                groups.push(g);
                // Consecutive rows become one range.
                let mut i = first;
                while i < next {
                    let mut j = i + 1;
                    while j < next && rows[j] == rows[j - 1] + 1 {
                        j += 1;
                    }
                    ranges.push(rows[i] - base + kept..rows[j - 1] - base + kept + 1);
                    i = j;
                }
                kept += len;
            }
            base = end;
        }
        Ok((
            groups,
            RowSelection::from_consecutive_ranges(ranges.into_iter(), kept),
        ))
    }
}

/// A band column a scan decodes: its place, its code, and the file's
/// format version (which says whether the band is coded as two halves).
#[derive(Clone)]
struct ScanBand {
    plane: usize,
    k: usize,
    decoder: Arc<HuffmanDecoder>,
    version: u32,
}

/// An iterator of [`ImageBatch`]es. It ends after its first error.
pub struct ImageScan {
    reader: ParquetRecordBatchReader,
    /// The file, to name the damaged column when the reader fails.
    file: ImageFileReader,
    columns: Vec<usize>,
    selection: Option<(Vec<usize>, RowSelection)>,
    failed: bool,
    chroma: Chroma,
    bands: Arc<Vec<ScanBand>>,
}

impl Iterator for ImageScan {
    type Item = Result<ImageBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = match next_batch(&mut self.reader)? {
            Ok(batch) => ImageBatch::new(
                batch,
                self.file.path.clone(),
                self.chroma,
                self.bands.clone(),
            ),
            Err(e) => Err(self.file.locate_damage(&self.columns, &self.selection, &e)),
        };
        self.failed = result.is_err();
        Some(result)
    }
}

/// A record batch of a scan, able to decode the images of its rows.
pub struct ImageBatch {
    pub batch: RecordBatch,
    path: PathBuf,
    chroma: Chroma,
    bands: Arc<Vec<ScanBand>>,
    band_arrays: Vec<BinaryArray>,
}

impl ImageBatch {
    fn new(
        batch: RecordBatch,
        path: PathBuf,
        chroma: Chroma,
        bands: Arc<Vec<ScanBand>>,
    ) -> Result<Self> {
        let mut band_arrays = Vec::with_capacity(bands.len());
        for band in bands.iter() {
            let name = band_column(band.plane, band.k);
            band_arrays.push(binary_column(&batch, &name, &path)?);
        }
        Ok(ImageBatch {
            batch,
            path,
            chroma,
            bands,
            band_arrays,
        })
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Decodes the selected bands of `row` (other bands are `None`).
    pub fn image(&self, row: usize) -> Result<CoefficientImage> {
        let corrupt = |what: String| Error::corrupt(&self.path, format!("row {row}: {what}"));
        let dim = |name: &str| -> Result<u32> {
            let a = self
                .batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
                .ok_or_else(|| corrupt(format!("column {name} missing or not u32")))?;
            let v = a.value(row);
            if v == 0 || v > MAX_DIMENSION {
                return Err(corrupt(format!(
                    "{name} {v} out of range 1..={MAX_DIMENSION}"
                )));
            }
            Ok(v)
        };
        let (width, height) = (dim(COL_WIDTH)?, dim(COL_HEIGHT)?);
        if width as u64 * height as u64 > MAX_PIXELS {
            return Err(corrupt(format!(
                "claims {width}x{height} pixels, over the limit of {MAX_PIXELS}"
            )));
        }
        let quant_col = binary_column(&self.batch, COL_QUANT, &self.path)?;
        let qbytes = quant_col.value(row);
        let np = self.chroma.planes();
        if qbytes.len() != np * 128 {
            return Err(corrupt(format!(
                "{COL_QUANT} holds {} bytes, expected {}",
                qbytes.len(),
                np * 128
            )));
        }
        let quant: Vec<QuantTable> = qbytes
            .chunks_exact(128)
            .map(|t| std::array::from_fn(|i| u16::from_le_bytes([t[2 * i], t[2 * i + 1]])))
            .collect();
        let mut planes: Vec<CoefPlane> = (0..np)
            .map(|p| {
                let (w, h) = self.chroma.plane_dims(p, width, height);
                CoefPlane::empty(w, h).map_err(|e| corrupt(e.to_string()))
            })
            .collect::<Result<_>>()?;
        for (band, arr) in self.bands.iter().zip(&self.band_arrays) {
            let (plane, k) = (&band.plane, &band.k);
            let column = band_column(*plane, *k);
            let p = planes
                .get_mut(*plane)
                .ok_or_else(|| corrupt(format!("{column}: no plane {plane} in this layout")))?;
            let data = arr.value(row);
            if data.len() > max_band_bytes(p.blocks()) {
                return Err(corrupt(format!(
                    "{column}: {} bytes for {} blocks, more than a {}x{} plane can code",
                    data.len(),
                    p.blocks(),
                    p.width(),
                    p.height()
                )));
            }
            let mut values = vec![0i16; p.blocks()];
            let split = band_is_split(band.version, *k, p.blocks());
            decode_band(
                data,
                p.blocks_w(),
                *k == 0,
                split,
                &band.decoder,
                &mut values,
            )
            .map_err(|e| corrupt(format!("{column}: {e}")))?;
            p.set_band(*k, values)
                .map_err(|e| corrupt(format!("{column}: {e}")))?;
        }
        CoefficientImage::new(width, height, self.chroma, quant, planes)
            .map_err(|e| corrupt(e.to_string()))
    }
}

fn binary_column(batch: &RecordBatch, name: &str, path: &Path) -> Result<BinaryArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<BinaryArray>())
        .cloned()
        .ok_or_else(|| Error::corrupt(path, format!("column {name} missing or not binary")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode::{encode_rgb, EncodeOptions};
    use crate::storage::{write_image_file, ImageRow, WriteOptions};
    use arrow_array::ArrayRef;

    /// A one-image file, scanned with every band; `edit` changes the batch
    /// before its image is decoded (as a damaged file would present it).
    fn decode_edited(edit: impl Fn(&RecordBatch) -> RecordBatch) -> Result<CoefficientImage> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let rgb: Vec<u8> = (0..16 * 16 * 3).map(|i| (i * 13 % 256) as u8).collect();
        let image = encode_rgb(&rgb, 16, 16, EncodeOptions::default()).unwrap();
        let row = ImageRow {
            id: 0,
            uri: "mem://0".into(),
            image,
        };
        write_image_file(&path, &WriteOptions::default(), &[row], &[]).unwrap();
        let reader = ImageFileReader::open(&path).unwrap();
        let b = reader
            .scan(&[], &BandSelection::all(), 8)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert!(b.image(0).is_ok());
        let edited = ImageBatch::new(edit(&b.batch), b.path.clone(), b.chroma, b.bands.clone())?;
        edited.image(0)
    }

    fn replace(batch: &RecordBatch, name: &str, column: ArrayRef) -> RecordBatch {
        let i = batch.schema().index_of(name).unwrap();
        let mut columns = batch.columns().to_vec();
        columns[i] = column;
        RecordBatch::try_new(batch.schema(), columns).unwrap()
    }

    #[test]
    fn a_huge_claimed_size_is_refused_before_allocating() {
        // 65,535 x 65,535 with bands that end in end-of-band codes would
        // decode "fine" into ~25 GB of zeros.
        let err = decode_edited(|b| {
            let side: ArrayRef = Arc::new(UInt32Array::from(vec![MAX_DIMENSION]));
            replace(&replace(b, COL_WIDTH, side.clone()), COL_HEIGHT, side)
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("65535x65535") && err.contains("over the limit"),
            "{err}"
        );
        assert!(err.contains("t.parquet"), "{err}");
    }

    #[test]
    fn a_band_longer_than_its_blocks_can_code_is_corrupt() {
        let err = decode_edited(|b| {
            let long: ArrayRef = Arc::new(BinaryArray::from(vec![&[0x55u8; 1000][..]]));
            replace(b, &band_column(1, 5), long)
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("image.cb.5") && err.contains("1000 bytes for 1 blocks"),
            "{err}"
        );
    }

    #[test]
    fn a_file_in_memory_reads_as_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let (w, h) = (40, 24);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        let image = encode_rgb(&rgb, w, h, EncodeOptions::default()).unwrap();
        let row = ImageRow {
            id: 7,
            uri: "mem://0".into(),
            image: image.clone(),
        };
        write_image_file(&path, &WriteOptions::default(), &[row], &[]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mem = ImageFileReader::from_bytes("in-memory.parquet", bytes.clone()).unwrap();
        let batch = mem.scan(&["id"], &BandSelection::all(), 8).unwrap();
        let batch = batch.into_iter().next().unwrap().unwrap();
        assert_eq!(batch.image(0).unwrap(), image);
        assert!(mem.bytes_read() > 0 && mem.bytes_read() <= bytes.len() as u64);

        let err = ImageFileReader::from_bytes("cut.parquet", bytes[..bytes.len() / 2].to_vec())
            .err()
            .expect("half a file is an error")
            .to_string();
        assert!(err.contains("cut.parquet"), "{err}");
    }

    #[test]
    fn an_object_reads_as_the_file_through_few_ranged_requests() {
        use object_store::{memory::InMemory, ObjectStore, ObjectStoreExt, PutPayload};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_rows(&path, 100, 40, 4);
        let bytes = std::fs::read(&path).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let payload = PutPayload::from(bytes.clone());
        futures::executor::block_on(store.put(&"t/part.parquet".into(), payload)).unwrap();
        let url = "s3://test/t/part.parquet";
        let open = || {
            ImageFileReader::open_remote(RemoteFile::in_store(store.clone(), "t/part.parquet", url))
                .unwrap()
        };
        let local = ImageFileReader::open(&path).unwrap();
        let remote = open();
        assert_eq!(remote.path(), Path::new(url));
        // Every row, and a few rows of the middle row group, as from disk.
        assert_eq!(
            read_rows(&remote, &(0..100).collect::<Vec<_>>()),
            read_rows(&local, &(0..100).collect::<Vec<_>>())
        );
        let some = [41, 42, 77];
        let remote = open();
        assert_eq!(read_rows(&remote, &some), read_rows(&local, &some));
        let (requests, fetched) = remote.store_reads().unwrap();
        // (The HEAD is not counted.) The tail, then one window per column
        // chunk of the one row group read (id, width, height, quant and
        // 192 bands), not a request per page header and page (10 pages each).
        let chunks = 4 + 192;
        assert!(
            (2..=1 + chunks).contains(&(requests as usize)),
            "{requests} requests for {chunks} column chunks"
        );
        assert!(
            fetched <= bytes.len() as u64,
            "{fetched} of {} bytes",
            bytes.len()
        );
        assert_eq!(local.store_reads(), None);
        // One low band of every row: a fraction of the file.
        let remote = open();
        let scan = remote
            .scan(&["id"], &BandSelection::for_scale(1), 64)
            .unwrap();
        assert_eq!(scan.map(|b| b.unwrap().num_rows()).sum::<usize>(), 100);
        let (_, fetched) = remote.store_reads().unwrap();
        assert!(
            fetched * 4 < bytes.len() as u64,
            "{fetched} of {} bytes",
            bytes.len()
        );
        // A missing object names its URL.
        let gone =
            RemoteFile::in_store(store.clone(), "t/gone.parquet", "s3://test/t/gone.parquet");
        let err = ImageFileReader::open_remote(gone)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("s3://test/t/gone.parquet: no such object"),
            "{err}"
        );
    }

    #[test]
    fn large_planes_split_their_low_bands_and_small_files_stay_version_1() {
        let dir = tempfile::tempdir().unwrap();
        for (w, h, version) in [(256, 256, 2), (40, 24, 1)] {
            let path = dir.path().join(format!("{w}.parquet"));
            let rgb: Vec<u8> = (0..w * h * 3)
                .map(|i| ((i * 7 + i / 97) % 251) as u8)
                .collect();
            let image = encode_rgb(&rgb, w, h, EncodeOptions::default()).unwrap();
            let row = ImageRow {
                id: 0,
                uri: "mem://0".into(),
                image: image.clone(),
            };
            write_image_file(&path, &WriteOptions::default(), &[row], &[]).unwrap();
            let reader = ImageFileReader::open(&path).unwrap();
            assert_eq!(reader.format_version(), version, "{w}x{h}");
            let batch = reader.scan(&[], &BandSelection::all(), 8).unwrap();
            let batch = batch.into_iter().next().unwrap().unwrap();
            assert_eq!(batch.image(0).unwrap(), image, "{w}x{h}");
        }
    }

    /// `n` distinct small images written with the given row group and page sizes.
    fn write_rows(path: &Path, n: usize, row_group_size: usize, page_rows: usize) -> Vec<ImageRow> {
        let rows: Vec<ImageRow> = (0..n)
            .map(|i| {
                let rgb: Vec<u8> = (0..32 * 16 * 3)
                    .map(|j| ((j * 7 + i * 31) % 251) as u8)
                    .collect();
                ImageRow {
                    id: i as u64,
                    uri: format!("img{i}"),
                    image: encode_rgb(&rgb, 32, 16, EncodeOptions::default()).unwrap(),
                }
            })
            .collect();
        let opts = WriteOptions {
            row_group_size,
            page_rows: Some(page_rows),
            ..Default::default()
        };
        write_image_file(path, &opts, &rows, &[]).unwrap();
        rows
    }

    fn read_rows(reader: &ImageFileReader, rows: &[usize]) -> Vec<(u64, CoefficientImage)> {
        let mut out = Vec::new();
        for batch in reader
            .scan_rows(&["id"], &BandSelection::all(), 3, Some(rows))
            .unwrap()
        {
            let batch = batch.unwrap();
            let ids = batch.batch.column_by_name("id").unwrap();
            let ids = ids
                .as_any()
                .downcast_ref::<arrow_array::UInt64Array>()
                .unwrap();
            for r in 0..batch.num_rows() {
                out.push((ids.value(r), batch.image(r).unwrap()));
            }
        }
        out
    }

    #[test]
    fn selected_rows_read_only_their_row_groups_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let written = write_rows(&path, 100, 40, 4);
        let full = ImageFileReader::open(&path).unwrap();
        let footer = full.bytes_read();
        let all: Vec<usize> = (0..100).collect();
        assert_eq!(read_rows(&full, &all).len(), 100);
        let all_bytes = full.bytes_read() - footer;

        // Rows in all three row groups, runs and single rows, each read
        // back as written.
        let wanted = [0, 1, 2, 39, 40, 41, 77, 99];
        let some = ImageFileReader::open(&path).unwrap();
        let got = read_rows(&some, &wanted);
        let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, wanted.iter().map(|&r| r as u64).collect::<Vec<_>>());
        for ((_, image), &r) in got.iter().zip(&wanted) {
            assert_eq!(image, &written[r].image);
        }
        // One page of 4 rows among 25 per column.
        let few = ImageFileReader::open(&path).unwrap();
        read_rows(&few, &[50, 51]);
        let few_bytes = few.bytes_read() - footer;
        assert!(
            few_bytes * 10 < all_bytes,
            "2 of 100 rows read {few_bytes} of {all_bytes} bytes"
        );
        assert!(read_rows(&few, &[]).is_empty());
    }

    /// A file of 40 small images whose data pages are damaged (footer
    /// intact): every 97th byte from byte 100 to two thirds of the file.
    pub(crate) fn damaged_pages_file(path: &Path) {
        write_rows(path, 40, 40, 8);
        let mut bytes = std::fs::read(path).unwrap();
        let end = bytes.len() * 2 / 3;
        for i in (100..end).step_by(97) {
            bytes[i] ^= 0x5A;
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn damaged_pages_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.parquet");
        damaged_pages_file(&path);
        let reader = ImageFileReader::open(&path).unwrap();
        let err = reader.verify().expect_err("damaged pages are an error");
        assert!(matches!(err, Error::CorruptFile { .. }), "{err:?}");
        assert!(err.to_string().contains("damaged.parquet"), "{err}");
    }

    #[test]
    fn a_refused_page_header_names_file_column_and_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_rows(&path, 10, 4, 2);
        let reader = ImageFileReader::open(&path).unwrap();
        let chunk = reader
            .metadata
            .metadata()
            .row_group(0)
            .columns()
            .iter()
            .find(|c| c.column_path().string() == "id")
            .unwrap();
        let at = chunk
            .dictionary_page_offset()
            .unwrap_or(chunk.data_page_offset()) as usize;
        // The header's first field is the page type (a zigzag varint after
        // its field byte): 63 is no page type.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at + 1] = 0x7e;
        std::fs::write(&path, bytes).unwrap();
        let reader = ImageFileReader::open(&path).unwrap();
        let err = match reader.scan(&["id"], &BandSelection::none(), 8) {
            Ok(batches) => batches.filter_map(|b| b.err()).next().expect("an error"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert!(matches!(err, Error::CorruptFile { .. }), "{err:?}");
        assert!(
            text.contains("t.parquet") && text.contains(&format!("column id: page at byte {at}")),
            "{text}"
        );
        assert!(!text.contains("External"), "{text}");
    }

    #[test]
    fn rows_out_of_order_or_past_the_end_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_rows(&path, 10, 4, 2);
        let reader = ImageFileReader::open(&path).unwrap();
        for rows in [&[3, 2][..], &[4, 4], &[10]] {
            let err = reader
                .scan_rows(&["id"], &BandSelection::none(), 8, Some(rows))
                .err()
                .expect("refused");
            assert!(err.to_string().contains("t.parquet"), "{err}");
        }
    }

    /// What the table-file fuzz target does: open, scan every column and
    /// band, decode every row.
    fn read_everything(name: &str) -> Result<usize> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/fuzz")
            .join(name);
        let reader = ImageFileReader::from_bytes(name, std::fs::read(path).unwrap())?;
        let schema = reader.schema();
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let mut rows = 0;
        for batch in reader.scan(&columns, &BandSelection::all(), 16)? {
            let batch = batch?;
            for row in 0..batch.num_rows() {
                batch.image(row)?;
                rows += 1;
            }
        }
        Ok(rows)
    }

    #[test]
    fn fuzzed_table_files_are_errors_not_panics() {
        // A malformed Arrow schema in the footer made arrow-ipc panic; it
        // is no longer decoded (the Parquet schema gives the same columns).
        // What else the fuzzer damaged may still be an error.
        for name in [
            "table_arrow_schema_type_none.parquet",
            "table_arrow_schema_int_width_0.parquet",
            "table_arrow_schema_missing_field.parquet",
        ] {
            if let Err(e) = read_everything(name) {
                assert!(!matches!(e, Error::Internal(_)), "{name}: {e}");
            }
        }
        // A negative column chunk offset tripped an assertion in the Parquet reader.
        let err = read_everything("table_negative_chunk_offset.parquet")
            .unwrap_err()
            .to_string();
        assert!(err.contains("negative offset"), "{err}");
    }

    #[test]
    fn lengths_past_the_end_are_errors_not_allocations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::write(&path, b"0123456789").unwrap();
        let disk = CountingFile {
            source: Source::Disk(Arc::new(File::open(&path).unwrap())),
            len: 10,
            read: Arc::new(AtomicU64::new(0)),
            chunks: Arc::default(),
        };
        let memory = CountingFile {
            source: Source::Memory(Bytes::from_static(b"0123456789")),
            len: 10,
            read: Arc::new(AtomicU64::new(0)),
            chunks: Arc::default(),
        };
        for f in [disk, memory] {
            // A corrupt footer can declare any chunk length.
            assert!(f.get_bytes(2, usize::MAX).is_err());
            assert!(f.get_bytes(u64::MAX, 1).is_err());
            assert!(f.get_bytes(8, 3).is_err());
            assert_eq!(&f.get_bytes(8, 2).unwrap()[..], b"89");
        }
    }
}
