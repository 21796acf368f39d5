//! All integration tests, built into one binary (one link, one run).

mod integration {
    mod codec_photos;
    pub mod common;
    mod crash;
    mod ingest_db;
    mod source_files;
    mod storage_files;
}
