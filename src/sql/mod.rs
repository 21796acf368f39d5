//! spectradb's SQL layer on top of DataFusion: the image table provider
//! and its scan, image functions (PNG output, thumbnails) and the
//! statements DataFusion lacks.

pub mod display;
pub mod functions;
pub(crate) mod image_scan;
pub mod image_table;
pub mod statements;
