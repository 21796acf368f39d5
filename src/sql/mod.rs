//! spectradb's SQL layer on top of DataFusion: the image table provider,
//! the image column's value format, image functions and the statements
//! DataFusion lacks.

pub mod display;
pub(crate) mod functions;
pub(crate) mod image_scan;
pub mod image_table;
pub mod image_value;
pub mod output_slots;
pub mod statements;
