//! `spectradb._spectradb`: the embedded database as a Python extension.
//!
//! The `spectradb` Python package (`python/spectradb`) is a thin layer over
//! this module: it finds ONNX Runtime, and turns results into pyarrow,
//! pandas and polars objects. Everything that costs time runs here, with
//! the GIL released.
//!
//! - [`waiting`]: the one runtime statements run on, and waiting for them
//!   with the GIL released while Ctrl-C and `interrupt()` are watched
//! - [`connection`]: `connect()`: a database and one client of it
//! - [`relation`]: a statement's result, handed over as Arrow C streams
//!   (zero copy: the PyCapsule interface, no pyarrow needed)
//! - [`images`]: image values as pixels and model tensors
//! - [`tensors`]: the training loader: batches of tensors decoded on Rust
//!   threads, shuffled by seed
//! - [`errors`]: spectradb's errors as Python exceptions

mod connection;
mod errors;
mod images;
mod relation;
mod tensors;
mod waiting;

use pyo3::prelude::*;

/// Uses the ONNX Runtime library at `path` for model functions, unless
/// `SPECTRADB_ONNXRUNTIME` or `ORT_DYLIB_PATH` names one. Returns whether
/// it was taken (not once a model has run).
#[pyfunction]
fn use_onnxruntime(path: std::path::PathBuf) -> bool {
    spectradb::model::runtime::use_library(path)
}

#[pymodule]
fn _spectradb(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(connection::connect, m)?)?;
    m.add_function(wrap_pyfunction!(use_onnxruntime, m)?)?;
    m.add_function(wrap_pyfunction!(images::decode_rgb, m)?)?;
    m.add_function(wrap_pyfunction!(images::image_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(images::image_info, m)?)?;
    m.add_class::<connection::Connection>()?;
    m.add_class::<relation::Relation>()?;
    m.add_class::<relation::Batches>()?;
    m.add_class::<tensors::TensorLoader>()?;
    m.add_class::<tensors::TensorBatches>()?;
    errors::register(m)
}
