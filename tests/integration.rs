//! All integration tests, built into one binary (one link, one run).

mod integration {
    mod cli;
    mod codec_photos;
    pub mod common;
    mod concurrency;
    mod corrupt_inputs;
    mod crash;
    mod ctas;
    mod damaged;
    mod database_api;
    #[cfg(feature = "distributed")]
    mod distributed;
    #[cfg(feature = "serve")]
    pub mod flight;
    mod ingest_db;
    mod models;
    mod module_graph;
    pub mod object_storage;
    mod planner;
    mod reuse;
    mod scan;
    mod slt;
    mod source_files;
    mod storage_files;
}
