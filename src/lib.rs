//! spectradb (work in progress; crate docs are written in full below).
pub mod codec;
pub mod error;
pub use error::{Error, Result};
pub mod source;
pub mod storage;
