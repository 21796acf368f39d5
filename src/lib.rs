//! # spectradb
//!
//! An embedded SQL database for image AI. Images are stored as Parquet
//! columns of DCT frequency coefficients, one column per frequency band as
//! JPEG computes them, so that a query reads and decodes only the bands its
//! models need. [`Database`] is the entry point: a database directory seen
//! through a DataFusion session, with image tables, image functions and
//! statements of its own.
//!
//! # Layout
//!
//! - [`codec`]: pure maths, no I/O: colour, 8x8 DCT, quantization, zigzag,
//!   DCT-domain scaled decode, model-ready tensors
//! - [`source`]: image files (JPEG, PNG, WebP) to coefficients; sequential
//!   JPEGs are taken over coefficient for coefficient
//! - [`storage`]: image table files: one Parquet column per band, a
//!   Huffman code per column (dense low bands as two streams that decode in
//!   parallel), a reader that touches only the bands asked for (every page header
//!   checked against the footer first, so damage is an error, not a huge
//!   allocation);
//!   the database directory's catalog (atomic publish, one-writer lock) and
//!   the one commit path every write takes (superseded files kept for
//!   older snapshots until `VACUUM` or the retention period); data files
//!   and ingest sources on S3 (`storage::remote`: ranged GETs through a
//!   read-ahead window per column chunk, whole-object uploads)
//! - [`read_format`]: the vocabulary models, planner and catalog share:
//!   model specs, read formats and their design space, CALIBRATE profiles
//!   (a leaf: no cycles through it)
//! - [`image_value`]: the `image` column's value, one self-contained blob
//!   per row (the bands a scan read, or the model outputs that stand in
//!   for them)
//! - [`ingest`]: files -> data files of a table -> one commit, decoding on
//!   all cores, all or nothing
//! - [`reuse`]: what lets a query take a model's output instead of
//!   computing it: the output cache (moka, bounded in bytes, keyed by model
//!   file, read format, table identity, image id), the keys outputs travel
//!   under, the slots a scan fills from the cache and materialized views
//! - [`sql`]: the SQL layer: the image table provider (band projection),
//!   image functions, spectradb's statements
//! - [`model`]: ONNX models as SQL functions (ort, runtime loaded at run
//!   time); heads take a backbone's output (`ON FEATURES OF`)
//! - [`cancel`]: a statement's cancellation token, carried in its session
//!   so that model functions stop between chunks of images
//! - [`planner`]: the format planner: read formats, CALIBRATE profiles, the
//!   optimizer rule that picks each model's format and pushes its bands
//!   into the scan, with what [`reuse`] offers instead
//! - [`db`]: [`Database`]: catalog -> registered tables, statement
//!   dispatch, writes (each one transaction, blocking work off the async
//!   workers), ordinary tables and materialized views kept in the catalog,
//!   the blocking wrapper
//! - `serve` (feature `serve`, on by default): `spectradb serve`, an Arrow
//!   Flight SQL server over a [`Database`]: one connection per client (its
//!   own `SET`), results streamed with back-pressure, tokens, TLS, a data
//!   root for every file a statement names, limits
//! - `distributed` (feature `distributed`): queries on a Ballista cluster:
//!   codecs for image tables, scans and model functions; a scheduler,
//!   executors and the client session of `Database::open_on_cluster`
//! - [`error`]: the one error type
//!
//! # Data flow
//!
//! ```text
//!  ingest:  file bytes ──source──▶ CoefficientImage ──storage::tokens (on the decoding
//!           thread, while in cache)──▶ TokenizedImage ──storage::writer──▶ part.parquet
//!           (JPEG: coefficients as stored; else pixels ─codec::encode─▶ coefficients)
//!
//!  SQL:     db.sql ──statements (ours) or DataFusion──▶ logical plan
//!           ──planner::rule (model call -> read format; union of bands -> scan)──▶
//!           sql::image_scan (rows split over partitions at page boundaries; per
//!           partition: blocking pool ─bounded channel─▶ stream): filters on plain
//!           columns first, then for the rows they keep plain columns
//!           only, or the chosen bands ─▶ image value per row (a row whose model
//!           outputs are cached or in a materialized view: no bands, the outputs)
//!           ──model functions (cache ─miss─▶ format's scale, channels, size; a head:
//!           its backbone's output first) / sql::functions──▶ results
//!
//!  CALIBRATE: sample rows ──each format of read_format::space's design space: read its
//!           bands, tensor, model──▶ accuracy/agreement + cost ──▶ profile in the catalog
//!
//!  read:    part.parquet ──storage::reader (BandSelection = s x s corner)──▶ CoefficientImage
//!             ──codec::decode (s x s IDCT, s/8 size)──▶ planes ──codec::tensor (resize,
//!             colour, normalise)──▶ f32 tensor for a model
//! ```
//!
//! # Example
//!
//! ```
//! use spectradb::codec::encode::{encode_rgb, EncodeOptions};
//! use spectradb::codec::tensor::{to_tensor, TensorSpec};
//! use spectradb::storage::{write_image_file, BandSelection, ImageFileReader, ImageRow, WriteOptions};
//!
//! # fn main() -> spectradb::Result<()> {
//! let (w, h) = (64, 48);
//! let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
//! let image = encode_rgb(&rgb, w, h, EncodeOptions::default())?;
//! let dir = std::env::temp_dir().join(format!("spectradb-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("t.parquet");
//! let row = ImageRow { id: 1, uri: "mem://0".into(), image };
//! write_image_file(&path, &WriteOptions::default(), &[row], &[])?;
//!
//! // A 24x24 tensor needs only the 4x4 low bands of each block (scale 4/8).
//! let reader = ImageFileReader::open(&path)?;
//! let batch = reader.scan(&["id"], &BandSelection::for_scale(4), 64)?.next().unwrap()?;
//! let tensor = to_tensor(&batch.image(0)?, &TensorSpec::imagenet(24))?;
//! assert_eq!(tensor.len(), 3 * 24 * 24);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

pub mod cancel;
pub mod codec;
pub mod db;
#[cfg(feature = "distributed")]
pub mod distributed;
pub mod error;
pub mod image_value;
pub mod ingest;
pub mod model;
pub mod planner;
pub mod read_format;
pub mod reuse;
#[cfg(feature = "serve")]
pub mod serve;
pub mod source;
pub mod sql;
pub mod storage;

pub use db::{BlockingDatabase, Database, IngestMode, IngestProgress};
pub use error::{Error, Result};
