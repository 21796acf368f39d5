//! The training loader: a query's rows as batches of model tensors.
//!
//! The query runs once, when the loader is made, and its rows stay in
//! memory (as the compact image values the scan produced, not as pixels).
//! Each epoch visits them in query order or in a permutation drawn from
//! the seed and the epoch number, so a run is repeatable. A producer
//! thread decodes the next batches on `workers` threads while Python
//! trains on the current one (two batches ahead), with the GIL never held
//! while decoding.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::datatypes::{DataType, Schema};
use ndarray::Array4;
use numpy::{IntoPyArray, PyArrayDyn};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use spectradb::codec::tensor::{Layout, TensorScratch, TensorSpec};
use spectradb::image_value::binary_values;
use spectradb::Database;

use crate::errors;
use crate::images::{tensor_into, TensorArgs};
use crate::relation::Batches;

/// Batches decoded ahead of the one Python holds.
const PREFETCH: usize = 2;
/// How often a waiting `__next__` looks for Ctrl-C.
const TICK: Duration = Duration::from_millis(50);

/// The tensor a loader makes: a model's input, or ImageNet's at `size`.
pub fn tensor_spec(db: &Database, model: Option<&str>, size: Option<u32>) -> PyResult<TensorArgs> {
    let Some(name) = model else {
        return Ok(TensorArgs {
            spec: TensorSpec::imagenet(size.unwrap_or(224)),
            bgr: false,
        });
    };
    let spec = db.model_spec(name).ok_or_else(|| {
        errors::error(format!("no model named '{name}' (CREATE MODEL makes one)"))
    })?;
    if spec.coefficient_bands.is_some() {
        return Err(errors::error(format!(
            "model '{name}' takes DCT coefficients, not pixels: the loader makes pixel tensors"
        )));
    }
    let side = size.or(spec.size).ok_or_else(|| {
        errors::error(format!(
            "model '{name}' takes inputs of any size: pass size="
        ))
    })?;
    Ok(TensorArgs {
        spec: spec.tensor(side),
        bgr: spec.bgr,
    })
}

/// How a loader cuts and orders its rows.
#[derive(Debug, Clone, Copy)]
pub struct LoaderOptions {
    pub spec: TensorArgs,
    pub batch: usize,
    pub shuffle: bool,
    pub seed: u64,
    pub workers: usize,
    pub drop_last: bool,
}

/// A query's rows, ready to be cut into batches (see the module docs).
#[pyclass(module = "spectradb._spectradb", frozen)]
pub struct TensorLoader {
    rows: Arc<Rows>,
    options: LoaderOptions,
}

/// The rows of a loader: the image column and the others.
struct Rows {
    /// One batch holding every row.
    all: RecordBatch,
    image: usize,
    /// The other columns, in query order.
    others: Vec<usize>,
    others_schema: Arc<Schema>,
}

impl TensorLoader {
    pub fn new(
        py: Python<'_>,
        query: &str,
        batches: Batches,
        image: Option<&str>,
        options: LoaderOptions,
    ) -> PyResult<Self> {
        if options.batch == 0 {
            return Err(PyValueError::new_err("batch must be at least 1"));
        }
        let schema = batches.schema_ref().clone();
        let is_binary = |t: &DataType| matches!(t, DataType::Binary | DataType::LargeBinary);
        let image = match image {
            Some(name) => schema.index_of(name).map_err(|_| {
                errors::statement_error(py, query, format!("the result has no column '{name}'"))
            })?,
            None => match schema.index_of("image") {
                Ok(i) => i,
                Err(_) => schema
                    .fields()
                    .iter()
                    .position(|f| is_binary(f.data_type()))
                    .ok_or_else(|| {
                        errors::statement_error(
                            py,
                            query,
                            "the result has no image column (name one with image=...)",
                        )
                    })?,
            },
        };
        if !is_binary(schema.field(image).data_type()) {
            return Err(errors::statement_error(
                py,
                query,
                format!(
                    "column '{}' is {}, not an image",
                    schema.field(image).name(),
                    schema.field(image).data_type()
                ),
            ));
        }
        let all = arrow::compute::concat_batches(&schema, batches.record_batches())
            .map_err(|e| errors::error(format!("cannot gather the rows: {e}")))?;
        let others: Vec<usize> = (0..schema.fields().len()).filter(|&i| i != image).collect();
        let others_schema = Arc::new(
            schema
                .project(&others)
                .map_err(|e| errors::error(e.to_string()))?,
        );
        Ok(TensorLoader {
            rows: Arc::new(Rows {
                all,
                image,
                others,
                others_schema,
            }),
            options,
        })
    }

    /// Row numbers in the order epoch `epoch` visits them.
    fn order(&self, epoch: u64) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.rows.all.num_rows() as u32).collect();
        if self.options.shuffle {
            // One stream per (seed, epoch): epochs differ, runs repeat.
            let stream = self
                .options
                .seed
                .wrapping_add(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            fastrand::Rng::with_seed(stream).shuffle(&mut order);
        }
        order
    }
}

#[pymethods]
impl TensorLoader {
    /// Rows the query gave.
    #[getter]
    fn num_rows(&self) -> usize {
        self.rows.all.num_rows()
    }

    /// Batches per epoch.
    fn __len__(&self) -> usize {
        let (n, b) = (self.rows.all.num_rows(), self.options.batch);
        if self.options.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The batches of epoch `epoch` (0, 1, ...), decoding starting now.
    fn epoch(&self, epoch: u64) -> PyResult<TensorBatches> {
        let mut order = self.order(epoch);
        if self.options.drop_last {
            order.truncate(order.len() / self.options.batch * self.options.batch);
        }
        let (tx, rx) = sync_channel(PREFETCH);
        let rows = self.rows.clone();
        let options = self.options;
        std::thread::Builder::new()
            .name("spectradb-loader".into())
            .spawn(move || {
                for chunk in order.chunks(options.batch) {
                    let decoded = decode_batch(&rows, chunk, &options);
                    if tx.send(decoded).is_err() {
                        return; // The iterator was dropped.
                    }
                }
            })
            .map_err(|e| errors::error(format!("cannot start the loader's thread: {e}")))?;
        Ok(TensorBatches {
            rx: Mutex::new(rx),
            spec: options.spec,
        })
    }
}

/// One decoded batch: the tensors, and the batch's other columns.
struct Decoded {
    tensors: Vec<f32>,
    rows: usize,
    others: RecordBatch,
}

/// Decodes the rows `chunk` of `rows` on `options.workers` threads.
fn decode_batch(rows: &Rows, chunk: &[u32], options: &LoaderOptions) -> Result<Decoded, String> {
    let column = rows.all.column(rows.image);
    let values = binary_values(column.as_ref()).ok_or("the image column is not binary")?;
    let per = options.spec.spec.len();
    let mut tensors = vec![0f32; per * chunk.len()];
    let workers = options.workers.clamp(1, chunk.len().max(1));
    let rows_each = chunk.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let jobs: Vec<_> = chunk
            .chunks(rows_each)
            .zip(tensors.chunks_mut(per * rows_each))
            .map(|(ids, out)| {
                let values = &values;
                scope.spawn(move || -> Result<(), String> {
                    let mut scratch = TensorScratch::new();
                    for (&row, out) in ids.iter().zip(out.chunks_exact_mut(per)) {
                        let value = values[row as usize]
                            .ok_or_else(|| format!("row {row} has no image (NULL)"))?;
                        tensor_into(value, &options.spec, out, &mut scratch)
                            .map_err(|e| format!("row {row}: {e}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter().try_for_each(|j| {
            j.join()
                .unwrap_or_else(|_| Err("a decoding thread panicked".into()))
        })
    })?;
    let indices = UInt32Array::from(chunk.to_vec());
    let columns = rows
        .others
        .iter()
        .map(|&i| arrow::compute::take(rows.all.column(i).as_ref(), &indices, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let others = RecordBatch::try_new_with_options(
        rows.others_schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(chunk.len())),
    )
    .map_err(|e| e.to_string())?;
    Ok(Decoded {
        tensors,
        rows: chunk.len(),
        others,
    })
}

/// One epoch's batches: `(tensors, other columns)` pairs.
#[pyclass(module = "spectradb._spectradb", frozen)]
pub struct TensorBatches {
    rx: Mutex<Receiver<Result<Decoded, String>>>,
    spec: TensorArgs,
}

#[pymethods]
impl TensorBatches {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next batch: float32 tensors of shape (n, 3, h, w) (or
    /// (n, h, w, 3) for HWC models), and the rows' other columns.
    fn __next__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<(Bound<'py, PyArrayDyn<f32>>, Batches)>> {
        let rx = &self.rx;
        let decoded = loop {
            let next = py.detach(|| {
                rx.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .recv_timeout(TICK)
            });
            match next {
                Ok(decoded) => break decoded,
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            }
        };
        let decoded = decoded.map_err(errors::error)?;
        let [a, b, c] = self.spec.shape();
        let shape = [decoded.rows, a, b, c];
        let array = Array4::from_shape_vec(shape, decoded.tensors)
            .map_err(|e| errors::error(format!("batch has the wrong size: {e}")))?
            .into_dyn();
        let schema = decoded.others.schema();
        Ok(Some((
            array.into_pyarray(py),
            Batches::new(schema, vec![decoded.others]),
        )))
    }

    /// The tensor layout batches come in: "chw" or "hwc".
    #[getter]
    fn layout(&self) -> &'static str {
        match self.spec.spec.layout {
            Layout::Chw => "chw",
            Layout::Hwc => "hwc",
        }
    }
}
