//! A model as SQL scalar functions: `<model>(image)` returns what the
//! model's `output` option says (label, class or vector), and
//! `<model>_scores(image)` always returns the raw output vector.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Int64Builder, StringBuilder,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field};
use datafusion::common::{exec_err, DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use super::ModelHandle;
use crate::error::Error;
use crate::format::model_spec::OutputKind;
use crate::format::read_format::ReadFormat;
use crate::sql::image_value::{binary_values, decode_image_value_bands, read_image_header};

/// Images per model call.
const INFERENCE_BATCH: usize = 32;

/// Both functions of a model.
pub fn model_functions(model: Arc<ModelHandle>) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(ModelFn::new(model.clone(), false)),
        ScalarUDF::from(ModelFn::new(model, true)),
    ]
}

/// One of a model's functions, optionally bound to a read format by the
/// format planner (unbound: each image decoded at the smallest scale that
/// reaches the model's size).
#[derive(Clone)]
pub struct ModelFn {
    name: String,
    raw_scores: bool,
    model: Arc<ModelHandle>,
    format: Option<ReadFormat>,
    signature: Signature,
}

/// The model function behind `udf`, if it is one.
pub fn as_model_fn(udf: &ScalarUDF) -> Option<&ModelFn> {
    let inner: &dyn std::any::Any = udf.inner().as_ref();
    inner.downcast_ref::<ModelFn>()
}

impl std::fmt::Debug for ModelFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelFn({})", self.name)
    }
}

impl PartialEq for ModelFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.model.entry.checksum == other.model.entry.checksum
            && self.format == other.format
    }
}
impl Eq for ModelFn {}
impl Hash for ModelFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.model.entry.checksum.hash(state);
        self.format.hash(state);
    }
}

impl ModelFn {
    fn new(model: Arc<ModelHandle>, raw_scores: bool) -> Self {
        let name = if raw_scores {
            format!("{}_scores", model.name)
        } else {
            model.name.clone()
        };
        ModelFn {
            name,
            raw_scores,
            model,
            format: None,
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::LargeBinary]),
                    TypeSignature::Exact(vec![DataType::Binary]),
                ],
                Volatility::Immutable,
            ),
        }
    }

    /// The registered model this function runs.
    pub fn handle(&self) -> &Arc<ModelHandle> {
        &self.model
    }

    /// The read format the planner bound, if any.
    pub fn format(&self) -> Option<ReadFormat> {
        self.format
    }

    /// This function bound to `format` (same name and result type).
    pub fn with_format(&self, format: ReadFormat) -> ScalarUDF {
        ScalarUDF::from(ModelFn {
            format: Some(format),
            ..self.clone()
        })
    }

    fn kind(&self) -> OutputKind {
        if self.raw_scores {
            OutputKind::Scores
        } else {
            self.model.spec.output
        }
    }

    /// Runs the model over the non-null images; `None` rows stay null.
    fn infer(&self, images: &[Option<&[u8]>]) -> crate::Result<Vec<Option<Vec<f32>>>> {
        let mut out: Vec<Option<Vec<f32>>> = vec![None; images.len()];
        let rows: Vec<usize> = (0..images.len()).filter(|&i| images[i].is_some()).collect();
        if rows.is_empty() {
            return Ok(out);
        }
        let model = self.model.model()?;
        let stats = &self.model.stats;
        let batch_len =
            INFERENCE_BATCH.min(model.max_batch(model.input_side(self.format.as_ref())));
        for chunk in rows.chunks(batch_len) {
            let started = Instant::now();
            let (batch, size) = match &self.format {
                Some(format) => {
                    let masks = format.bands().masks;
                    let decoded = chunk
                        .iter()
                        .map(|&i| decode_image_value_bands(images[i].expect("non-null"), masks))
                        .collect::<crate::Result<Vec<_>>>()?;
                    model.format_tensor(decoded, format)?
                }
                None => {
                    let decoded = chunk
                        .iter()
                        .map(|&i| {
                            // Copy out only the bands the scaled decode will use.
                            let bytes = images[i].expect("non-null");
                            let h = read_image_header(bytes)?;
                            let mask = model.spec.band_mask(h.width, h.height, model.size);
                            decode_image_value_bands(bytes, [mask; 3])
                        })
                        .collect::<crate::Result<Vec<_>>>()?;
                    (model.batch_tensor(&decoded)?, model.size)
                }
            };
            let tensors_done = Instant::now();
            let scores = model.run_at(&batch, chunk.len(), size)?;
            stats.record(chunk.len(), tensors_done - started, tensors_done.elapsed());
            for (&i, s) in chunk.iter().zip(scores.chunks_exact(model.outputs)) {
                out[i] = Some(s.to_vec());
            }
        }
        Ok(out)
    }
}

/// Index of the largest value (the top class).
pub(crate) fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

/// Runs CPU-heavy work without stalling the async runtime's other tasks.
pub(crate) fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl ScalarUDFImpl for ModelFn {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind() {
            OutputKind::Label => DataType::Utf8,
            OutputKind::Class => DataType::Int64,
            OutputKind::Scores | OutputKind::Embedding => DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                self.model.outputs() as i32,
            ),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let a = &arrays[0];
        let Some(images) = binary_values(a.as_ref()) else {
            return exec_err!(
                "{}: expected an image column, got {}",
                self.name,
                a.data_type()
            );
        };
        let results = off_runtime(|| self.infer(&images)).map_err(|e| {
            DataFusionError::from(Error::Function {
                name: self.name.clone(),
                source: Box::new(e),
            })
        })?;
        let out: ArrayRef = match self.kind() {
            OutputKind::Label => {
                let labels = self.model.labels.as_ref().expect("checked at CREATE MODEL");
                let mut b = StringBuilder::new();
                for r in &results {
                    b.append_option(r.as_ref().map(|s| labels[argmax(s)].as_str()));
                }
                Arc::new(b.finish())
            }
            OutputKind::Class => {
                let mut b = Int64Builder::new();
                for r in &results {
                    b.append_option(r.as_ref().map(|s| argmax(s) as i64));
                }
                Arc::new(b.finish())
            }
            OutputKind::Scores | OutputKind::Embedding => {
                let n = self.model.outputs();
                let mut values = Vec::with_capacity(results.len() * n);
                for r in &results {
                    match r {
                        Some(s) => values.extend_from_slice(s),
                        None => values.extend(std::iter::repeat_n(0.0, n)),
                    }
                }
                let nulls =
                    NullBuffer::from(results.iter().map(|r| r.is_some()).collect::<Vec<_>>());
                Arc::new(FixedSizeListArray::try_new(
                    Arc::new(Field::new("item", DataType::Float32, true)),
                    n as i32,
                    Arc::new(Float32Array::from(values)),
                    Some(nulls),
                )?)
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}
