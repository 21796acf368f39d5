//! All integration tests, built into one binary (one link, one run).

mod integration {
    pub mod common;
    mod codec_photos;
    mod source_files;
    mod storage_files;
}
