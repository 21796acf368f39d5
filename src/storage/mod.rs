//! Image tables on disk: one Parquet column per (channel, band).
//!
//! - [`catalog`]: the database directory: catalog, atomic publish, writer lock
//! - [`commit`]: one write: lock, change, publish, retire superseded files
//! - [`checksum`]: a CRC-32 of each file, made while writing, for CHECK
//! - [`layout`]: column names, schema, metadata keys, format version
//! - [`huffman`]: length-limited canonical Huffman codes
//! - `bands`: the coded form of one band of one image
//! - [`tokens`]: an image's bands as symbols, made once right after decoding
//! - [`writer`]: images -> a Parquet file with per-file band codes
//! - [`reader`]: a Parquet file -> images, reading only the selected bands
//! - [`remote`]: files on object storage (S3): locations, ranged reads, uploads
//! - `page_guard`: every page header checked against the footer before the
//!   Parquet reader sizes a buffer from it

pub(crate) mod bands;
pub mod catalog;
pub mod checksum;
pub mod commit;
pub mod huffman;
pub mod layout;
mod page_guard;
pub mod reader;
pub mod remote;
pub mod tokens;
pub mod writer;

pub use reader::{BandSelection, ImageBatch, ImageFileReader, ImageScan};
pub use tokens::TokenizedImage;
pub use writer::{
    write_image_file, write_tokenized_file, ImageRow, TokenizedRow, WriteOptions, WriteStats,
    DEFAULT_PAGE_ROWS,
};
