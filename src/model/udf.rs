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
use crate::cancel::QueryCancel;
use crate::error::Error;
use crate::image_value::{
    binary_values, decode_image_value_bands, inline_outputs, read_image_header, InlineOutput,
    OutputValue, ValueSource,
};
use crate::read_format::model_spec::OutputKind;
use crate::read_format::space::ReadFormat;
use crate::reuse::cache::{Output, OutputKey};
use crate::reuse::keys::{raw_output_key, result_key};

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
    /// Set when the planner feeds it from a compressed view: its results
    /// are near the exact ones, not equal, so they stay out of the cache.
    approximate: bool,
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
            && self.approximate == other.approximate
    }
}
impl Eq for ModelFn {}
impl Hash for ModelFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.model.entry.checksum.hash(state);
        self.format.hash(state);
        self.approximate.hash(state);
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
            approximate: false,
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::LargeBinary]),
                    TypeSignature::Exact(vec![DataType::Binary]),
                ],
                Volatility::Immutable,
            ),
        }
    }

    /// `model`'s function (its `_scores` one when `raw_scores`), bound as
    /// given: how a function sent to another process is rebuilt there.
    #[cfg(feature = "distributed")]
    pub(crate) fn rebuilt(
        model: Arc<ModelHandle>,
        raw_scores: bool,
        format: Option<ReadFormat>,
        approximate: bool,
    ) -> ScalarUDF {
        ScalarUDF::from(ModelFn {
            format,
            approximate,
            ..ModelFn::new(model, raw_scores)
        })
    }

    /// Whether this is the model's `_scores` function.
    #[cfg(feature = "distributed")]
    pub(crate) fn raw_scores(&self) -> bool {
        self.raw_scores
    }

    /// The registered model this function runs.
    pub fn handle(&self) -> &Arc<ModelHandle> {
        &self.model
    }

    /// The read format the planner bound, if any.
    pub fn format(&self) -> Option<ReadFormat> {
        self.format
    }

    /// Whether the planner feeds it from a compressed view.
    pub fn approximate(&self) -> bool {
        self.approximate
    }

    /// This function bound to `format` (same name and result type);
    /// `approximate` when a compressed view feeds it.
    pub fn with_format(&self, format: ReadFormat, approximate: bool) -> ScalarUDF {
        ScalarUDF::from(ModelFn {
            format: Some(format),
            approximate,
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

    /// The function's result per row: a label or class a view handed over
    /// with the value, else the model's raw output; `None` rows stay null.
    /// Stops before the next chunk of images once `cancel` fires.
    fn results(
        &self,
        images: &[Option<&[u8]>],
        cancel: Option<&QueryCancel>,
    ) -> crate::Result<Vec<Option<Result_>>> {
        let mut out: Vec<Option<Result_>> = vec![None; images.len()];
        let mut inputs = Vec::new();
        let mut rows = Vec::new();
        let final_key = matches!(self.kind(), OutputKind::Label | OutputKind::Class)
            .then(|| result_key(&self.name, &self.model.entry.checksum, self.format.as_ref()));
        for (i, bytes) in images.iter().enumerate() {
            let Some(bytes) = bytes else { continue };
            let input = RowInput::parse(bytes)?;
            if let Some(k) = final_key {
                if let Some(o) = input.inline.iter().find(|o| o.key == k) {
                    self.model.stats.reused(1);
                    out[i] = Some(Result_::Final(o.value.clone()));
                    continue;
                }
            }
            inputs.push(input);
            rows.push(i);
        }
        let refs: Vec<&RowInput> = inputs.iter().collect();
        let cached = !self.approximate;
        let raw = raw_outputs(&self.model, self.format, &refs, cached, cancel)?;
        for (i, r) in rows.into_iter().zip(raw) {
            out[i] = Some(Result_::Raw(r));
        }
        Ok(out)
    }
}

/// One row's result: the raw output, or a final value a view held.
#[derive(Clone)]
enum Result_ {
    Raw(Output),
    Final(OutputValue),
}

/// One image value as a model function sees it.
struct RowInput<'a> {
    bytes: &'a [u8],
    source: Option<ValueSource>,
    bands: u32,
    inline: Vec<InlineOutput>,
}

impl<'a> RowInput<'a> {
    fn parse(bytes: &'a [u8]) -> crate::Result<Self> {
        let header = read_image_header(bytes)?;
        Ok(RowInput {
            bytes,
            source: header.source,
            bands: header.band_count(),
            inline: inline_outputs(bytes)?,
        })
    }

    fn inline_vector(&self, key: u64) -> Option<Output> {
        self.inline.iter().find_map(|o| match &o.value {
            OutputValue::Vector(v) if o.key == key => Some(v.clone()),
            _ => None,
        })
    }
}

/// `model`'s raw outputs under `format` for `rows`: handed over with the
/// value, cached, or computed (a head from its backbone's outputs, which
/// are found the same way); computed ones go into the cache. `cached`
/// false keeps the cache out of it (a head fed from a compressed view
/// would otherwise leave near results under the exact ones' keys).
fn raw_outputs(
    model: &ModelHandle,
    format: Option<ReadFormat>,
    rows: &[&RowInput],
    cached: bool,
    cancel: Option<&QueryCancel>,
) -> crate::Result<Vec<Output>> {
    let key = raw_output_key(&model.entry.checksum, format.as_ref());
    let mut out: Vec<Option<Output>> = rows.iter().map(|r| r.inline_vector(key)).collect();
    let inline = out.iter().filter(|o| o.is_some()).count();
    model.stats.reused(inline);
    let todo: Vec<usize> = (0..rows.len()).filter(|&i| out[i].is_none()).collect();
    if todo.is_empty() {
        return Ok(out.into_iter().map(|o| o.expect("all found")).collect());
    }
    let cache = model.cache.as_ref().filter(|c| cached && c.enabled());
    let checksum: Arc<str> = model.entry.checksum.as_str().into();
    let keys: Option<Vec<OutputKey>> = todo
        .iter()
        .map(|&i| {
            rows[i].source.map(|s| OutputKey {
                model: checksum.clone(),
                format,
                table: s.table,
                id: s.id,
            })
        })
        .collect();
    let compute = |idx: &[usize]| -> crate::Result<Vec<Output>> {
        let inputs: Vec<&RowInput> = idx.iter().map(|&j| rows[todo[j]]).collect();
        compute_outputs(model, format, &inputs, cancel)
    };
    let computed = match (cache, keys) {
        (Some(cache), Some(keys)) => {
            let (values, lookup) = cache.get_or_compute(&keys, compute)?;
            model.stats.cache_lookups(lookup.hits, lookup.misses);
            values
        }
        _ => {
            let all: Vec<usize> = (0..todo.len()).collect();
            compute(&all)?
        }
    };
    for (&i, v) in todo.iter().zip(computed) {
        out[i] = Some(v);
    }
    Ok(out.into_iter().map(|o| o.expect("all computed")).collect())
}

/// Runs `model` on `rows` (batched): a head on its backbone's outputs, any
/// other model on the rows' bands. Checks `cancel` before every chunk, so a
/// cancelled query runs at most the chunk in flight.
fn compute_outputs(
    model: &ModelHandle,
    format: Option<ReadFormat>,
    rows: &[&RowInput],
    cancel: Option<&QueryCancel>,
) -> crate::Result<Vec<Output>> {
    // A family runs the member trained for `format`; counters stay the family's.
    let loaded = model.runner(format.as_ref()).model()?;
    let stats = &model.stats;
    let mut out = Vec::with_capacity(rows.len());
    let check = |done: usize| match cancel {
        Some(c) => c.check(|| {
            format!(
                "{}: the query was cancelled ({done} of {} images run)",
                model.name,
                rows.len()
            )
        }),
        None => Ok(()),
    };
    if let Some(backbone) = &model.backbone {
        // Backbone outputs not handed over are computed from the bands: exact.
        let features = raw_outputs(backbone, format, rows, true, cancel)?;
        for chunk in features.chunks(INFERENCE_BATCH) {
            check(out.len())?;
            let started = Instant::now();
            let mut batch = Vec::with_capacity(chunk.len() * backbone.outputs());
            for f in chunk {
                batch.extend_from_slice(f);
            }
            let tensors_done = Instant::now();
            let scores = loaded.run_features(&batch, chunk.len())?;
            stats.record(chunk.len(), tensors_done - started, tensors_done.elapsed());
            out.extend(scores.chunks_exact(loaded.outputs).map(Output::from));
        }
        return Ok(out);
    }
    if let Some(r) = rows.iter().find(|r| r.bands == 0) {
        return Err(Error::Internal(format!(
            "model {}: an image value without bands{} reached it",
            model.name,
            r.source
                .map(|s| format!(" (image id {})", s.id))
                .unwrap_or_default()
        )));
    }
    let batch_len = INFERENCE_BATCH.min(loaded.max_batch(loaded.input_side(format.as_ref())));
    for chunk in rows.chunks(batch_len) {
        check(out.len())?;
        let started = Instant::now();
        let (batch, size) = match &format {
            Some(format) => {
                let masks = format.bands().masks;
                let decoded = chunk
                    .iter()
                    .map(|r| decode_image_value_bands(r.bytes, masks))
                    .collect::<crate::Result<Vec<_>>>()?;
                loaded.format_tensor(decoded, format)?
            }
            None => {
                let decoded = chunk
                    .iter()
                    .map(|r| {
                        // Copy out only the bands the scaled decode will use.
                        let h = read_image_header(r.bytes)?;
                        let mask = loaded.spec.band_mask(h.width, h.height, loaded.size);
                        decode_image_value_bands(r.bytes, [mask; 3])
                    })
                    .collect::<crate::Result<Vec<_>>>()?;
                (loaded.batch_tensor(&decoded)?, loaded.size)
            }
        };
        let tensors_done = Instant::now();
        let scores = loaded.run_at(&batch, chunk.len(), size)?;
        loaded.recycle(batch);
        stats.record(chunk.len(), tensors_done - started, tensors_done.elapsed());
        out.extend(scores.chunks_exact(loaded.outputs).map(Output::from));
    }
    Ok(out)
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

impl ModelFn {
    fn wrong_inline(&self, v: &OutputValue) -> DfResult<ColumnarValue> {
        exec_err!(
            "{}: a value handed over for it holds {v:?}, not this function's result type",
            self.name
        )
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
        let cancel = QueryCancel::of_options(&args.config_options);
        let results = off_runtime(|| self.results(&images, cancel)).map_err(|e| match e {
            // The message names the function already; a client tells a
            // cancel by its kind.
            Error::Cancelled(_) => DataFusionError::from(e),
            e => DataFusionError::from(Error::Function {
                name: self.name.clone(),
                source: Box::new(e),
            }),
        })?;
        let out: ArrayRef = match self.kind() {
            OutputKind::Label => {
                let labels = self.model.labels.as_ref().expect("checked at CREATE MODEL");
                let mut b = StringBuilder::new();
                for r in &results {
                    match r {
                        Some(Result_::Raw(s)) => b.append_value(labels[argmax(s)].as_str()),
                        Some(Result_::Final(OutputValue::Label(l))) => b.append_value(l),
                        Some(Result_::Final(v)) => return self.wrong_inline(v),
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            OutputKind::Class => {
                let mut b = Int64Builder::new();
                for r in &results {
                    match r {
                        Some(Result_::Raw(s)) => b.append_value(argmax(s) as i64),
                        Some(Result_::Final(OutputValue::Class(c))) => b.append_value(*c),
                        Some(Result_::Final(v)) => return self.wrong_inline(v),
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            OutputKind::Scores | OutputKind::Embedding => {
                let n = self.model.outputs();
                let mut values = Vec::with_capacity(results.len() * n);
                for r in &results {
                    match r {
                        Some(Result_::Raw(s)) if s.len() == n => values.extend_from_slice(s),
                        Some(Result_::Raw(s)) => {
                            return exec_err!(
                                "{}: an output of {} values, expected {n}",
                                self.name,
                                s.len()
                            )
                        }
                        Some(Result_::Final(v)) => return self.wrong_inline(v),
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
