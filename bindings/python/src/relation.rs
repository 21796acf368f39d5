//! A statement's result, handed to Python as Arrow C streams.
//!
//! Both classes implement the Arrow PyCapsule interface
//! (`__arrow_c_stream__`, `__arrow_c_schema__`), so pyarrow, polars,
//! pandas and DuckDB take their batches without a copy and without
//! spectradb depending on any of them. A [`Relation`] is the lazy
//! statement: each read runs it again, as a DuckDB relation does;
//! [`Batches`] are the rows of one run, already in memory.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ffi::FFI_ArrowSchema;
use arrow::ffi_stream::FFI_ArrowArrayStream;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use spectradb::cancel::QueryCancel;

use crate::errors::{interrupted, statement_error};
use crate::waiting::{runtime, wait, OnStop, Stopped};

/// Rows `__repr__` shows.
const REPR_ROWS: usize = 10;

/// The result of `Connection.sql`: runs when read.
#[pyclass(module = "spectradb._spectradb", frozen)]
pub struct Relation {
    df: DataFrame,
    sql: String,
    interrupt: Arc<AtomicBool>,
}

impl Relation {
    pub fn new(df: DataFrame, sql: &str, interrupt: Arc<AtomicBool>) -> Self {
        Relation {
            df,
            sql: sql.to_string(),
            interrupt,
        }
    }

    /// The frame for one run, with a cancellation token of its own (a
    /// run stopped earlier must not stop this one).
    fn fresh_frame(&self) -> DataFrame {
        QueryCancel::renew(self.df.clone())
    }

    fn schema(&self) -> SchemaRef {
        self.df.schema().inner().clone()
    }

    /// Runs the statement to its end: the GIL is released meanwhile, and
    /// Ctrl-C or `Connection.interrupt()` drops it.
    pub fn collect_batches(&self, py: Python<'_>) -> PyResult<Batches> {
        let df = self.fresh_frame();
        let cancel = QueryCancel::of_frame(&df);
        let outcome = wait(
            py,
            async move { df.collect().await },
            &self.interrupt,
            OnStop::Abort(cancel),
        )?;
        match outcome {
            Ok(Ok(batches)) => Ok(Batches::new(self.schema(), batches)),
            Ok(Err(e)) => Err(statement_error(py, &self.sql, spectradb::Error::from(e))),
            Err(Stopped::Signal(signal)) => Err(signal),
            Err(Stopped::Interrupt) => Err(interrupted(py, &self.sql)),
        }
    }
}

#[pymethods]
impl Relation {
    /// The statement this relation runs.
    #[getter]
    fn sql(&self) -> &str {
        &self.sql
    }

    /// The result's column names.
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Runs the statement and keeps its rows (see `Batches`).
    fn collect(&self, py: Python<'_>) -> PyResult<Batches> {
        self.collect_batches(py)
    }

    /// The result as an Arrow C stream that runs the statement batch by
    /// batch as the consumer reads it.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema; // The stream keeps the result's own types.
        let df = self.fresh_frame();
        let cancel = QueryCancel::of_frame(&df);
        let outcome = wait(
            py,
            async move { df.execute_stream().await },
            &self.interrupt,
            OnStop::Abort(cancel.clone()),
        )?;
        let stream = match outcome {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(statement_error(py, &self.sql, spectradb::Error::from(e))),
            Err(Stopped::Signal(signal)) => return Err(signal),
            Err(Stopped::Interrupt) => return Err(interrupted(py, &self.sql)),
        };
        let reader = StreamReader {
            schema: self.schema(),
            stream,
            cancel,
            sql: crate::errors::one_line(&self.sql),
        };
        stream_capsule(py, Box::new(reader))
    }

    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.schema())
    }

    /// The first rows as a table (running the statement, as DuckDB does).
    fn __repr__(&self, py: Python<'_>) -> String {
        let df = match self.fresh_frame().limit(0, Some(REPR_ROWS + 1)) {
            Ok(df) => df,
            Err(e) => return format!("<spectradb.Relation: {e}>"),
        };
        let limited = Relation::new(df, &self.sql, self.interrupt.clone());
        match limited.collect_batches(py) {
            Ok(b) => b.pretty(REPR_ROWS),
            Err(e) => format!("<spectradb.Relation: {e}>"),
        }
    }
}

/// Rows of one run, in memory: read them as often as wanted.
#[pyclass(module = "spectradb._spectradb", frozen)]
pub struct Batches {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Batches {
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        // Batches may carry field metadata the plan's schema lacks: the
        // stream's schema is the one its batches have.
        let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
        Batches { schema, batches }
    }

    pub fn schema_ref(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn record_batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    fn pretty(&self, rows: usize) -> String {
        let total: usize = self.batches.iter().map(|b| b.num_rows()).sum();
        let mut shown = Vec::new();
        let mut left = rows;
        for b in &self.batches {
            if left == 0 {
                break;
            }
            let take = b.num_rows().min(left);
            shown.push(b.slice(0, take));
            left -= take;
        }
        let table = if shown.is_empty() {
            RecordBatch::new_empty(self.schema.clone())
        } else {
            arrow::compute::concat_batches(&self.schema, &shown)
                .unwrap_or_else(|_| RecordBatch::new_empty(self.schema.clone()))
        };
        let mut text = arrow::util::pretty::pretty_format_batches(&[table])
            .map(|t| t.to_string())
            .unwrap_or_else(|e| format!("<{e}>"));
        if total > rows {
            text.push_str(&format!("\n({rows} of more rows shown)"));
        }
        text
    }
}

#[pymethods]
impl Batches {
    #[getter]
    fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    fn __len__(&self) -> usize {
        self.num_rows()
    }

    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema; // The stream keeps the result's own types.
        let batches = self.batches.clone().into_iter().map(Ok);
        let reader = RecordBatchIterator::new(batches, self.schema.clone());
        stream_capsule(py, Box::new(reader))
    }

    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.schema)
    }

    fn __repr__(&self) -> String {
        self.pretty(REPR_ROWS)
    }
}

/// A running query read batch by batch from a thread outside the runtime
/// (the consumer's). Dropping it (the consumer released the stream)
/// stops the query.
struct StreamReader {
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
    cancel: Option<QueryCancel>,
    sql: String,
}

impl Iterator for StreamReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(e) => return Some(Err(ArrowError::ExternalError(e.to_string().into()))),
        };
        let next = rt.block_on(self.stream.next())?;
        Some(next.map_err(|e| {
            let e = spectradb::Error::from(e);
            ArrowError::ExternalError(format!("statement `{}`: {e}", self.sql).into())
        }))
    }
}

impl RecordBatchReader for StreamReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        if let Some(cancel) = &self.cancel {
            cancel.cancel();
        }
    }
}

fn stream_capsule<'py>(
    py: Python<'py>,
    reader: Box<dyn RecordBatchReader + Send>,
) -> PyResult<Bound<'py, PyCapsule>> {
    // The consumer moves the stream out (leaving it released); one it
    // never took is released when the capsule is dropped.
    PyCapsule::new_with_value(py, FFI_ArrowArrayStream::new(reader), c"arrow_array_stream")
}

fn schema_capsule<'py>(py: Python<'py>, schema: &SchemaRef) -> PyResult<Bound<'py, PyCapsule>> {
    let ffi = FFI_ArrowSchema::try_from(schema.as_ref())
        .map_err(|e| crate::errors::error(format!("cannot export the schema: {e}")))?;
    PyCapsule::new_with_value(py, ffi, c"arrow_schema")
}
