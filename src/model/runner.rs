//! A loaded model: checked against its options, with a pool of ONNX
//! Runtime sessions, run on whole batches of images.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::runtime::environment;
use crate::codec::tensor::{choose_scale, to_tensor_at, Layout, TensorScratch};
use crate::codec::CoefficientImage;
use crate::error::{Error, Result};
use crate::read_format::model_spec::ModelSpec;
use crate::read_format::space::{ReadFormat, Representation};

/// Largest input side in pixels, as `size` accepts: a model or a stored
/// read format that declares more is refused rather than sized into a buffer.
pub const MAX_INPUT_SIDE: u32 = 8192;

/// Bytes of input tensor built at once: a batch holds as many images as fit
/// (at least one), so a 8192 x 8192 input runs one image at a time instead
/// of asking for tens of gigabytes.
pub const TENSOR_BUDGET_BYTES: usize = 256 << 20;

/// A model ready to run.
pub struct Model {
    pub name: String,
    pub path: PathBuf,
    pub spec: ModelSpec,
    /// Input side in pixels.
    pub size: u32,
    /// Input shape as the model declares it (-1 = dynamic).
    pub input_shape: Vec<i64>,
    pub input_name: String,
    /// Length of the output vector per image.
    pub outputs: usize,
    pub labels: Option<Arc<Vec<String>>>,
    /// For a head: the length of the feature vector it takes per image.
    pub features: Option<usize>,
    threads: usize,
    /// Idle sessions (`run` needs `&mut Session`): one per concurrent batch.
    pool: Mutex<Vec<Session>>,
    /// A finished batch's buffer for the next pixel batch (see
    /// [`Model::recycle`]).
    spare_batch: Mutex<Vec<f32>>,
}

fn ort_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Model(format!("{what}: {e}"))
}

fn new_session(path: &Path, threads: usize) -> Result<Session> {
    let env = environment()?;
    let load = |e: &dyn std::fmt::Display| {
        ort_err(format_args!("cannot load model {}", path.display()), e)
    };
    Session::builder(env)
        .map_err(|e| load(&e))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| load(&e))?
        .with_intra_threads(threads)
        .map_err(|e| load(&e))?
        .commit_from_file(path)
        .map_err(|e| load(&e))
}

impl Model {
    /// Loads `path`, checks its input and output against `spec` and the
    /// labels, and runs it once on a blank image.
    pub fn load(
        name: &str,
        path: &Path,
        spec: ModelSpec,
        labels: Option<Vec<String>>,
        threads: usize,
    ) -> Result<Model> {
        let threads = threads.max(1);
        let mut session = new_session(path, threads)?;
        let bad = |msg: String| Error::Model(format!("model {}: {msg}", path.display()));
        let (input_name, ty, shape) =
            single_input(&session, "spectradb runs models with one image input").map_err(bad)?;
        if ty != TensorElementType::Float32 {
            return Err(bad(format!(
                "input '{input_name}' holds {ty:?}; pixel input must be float32"
            )));
        }
        let size = input_side_of(&input_name, &shape, &spec).map_err(bad)?;
        // One blank image through the model: it runs, and gives the output size.
        let shape1 = spec.shape(1, size);
        let probe = vec![0f32; image_floats(&spec, size)?];
        let outputs = run_session(&mut session, &input_name, shape1.to_vec(), &probe)
            .map_err(|e| bad(format!("does not run on a {size}x{size} image: {e}")))?
            .len();
        check_labels(labels.as_deref(), outputs).map_err(bad)?;
        Ok(Model {
            name: name.to_string(),
            path: path.to_path_buf(),
            spec,
            size,
            input_shape: shape,
            input_name,
            outputs,
            labels: labels.map(Arc::new),
            features: None,
            threads,
            pool: Mutex::new(vec![session]),
            spare_batch: Mutex::new(Vec::new()),
        })
    }

    /// Loads a head: a model whose one input is a backbone's output,
    /// `[N, features]` float32, checked by running it once on zeros.
    /// `size` is the backbone's input side (its images are read for it).
    pub fn load_head(
        name: &str,
        path: &Path,
        spec: ModelSpec,
        labels: Option<Vec<String>>,
        threads: usize,
        features: usize,
        size: u32,
    ) -> Result<Model> {
        let threads = threads.max(1);
        let mut session = new_session(path, threads)?;
        let bad = |msg: String| Error::Model(format!("model {}: {msg}", path.display()));
        let (input_name, ty, shape) =
            single_input(&session, "a head takes one input, its backbone's output").map_err(bad)?;
        if ty != TensorElementType::Float32 {
            return Err(bad(format!(
                "input '{input_name}' holds {ty:?}; a head takes a float32 [N, {features}] tensor"
            )));
        }
        let fits = shape.len() == 2 && (shape[1] == features as i64 || shape[1] < 1);
        if !fits {
            return Err(bad(format!(
                "input '{input_name}' has shape {shape:?}, but its backbone gives {features} values per image (expected [N, {features}])"
            )));
        }
        let probe = vec![0f32; features];
        let outputs = run_session(&mut session, &input_name, vec![1, features as i64], &probe)
            .map_err(|e| bad(format!("does not run on a [1, {features}] input: {e}")))?
            .len();
        check_labels(labels.as_deref(), outputs).map_err(bad)?;
        Ok(Model {
            name: name.to_string(),
            path: path.to_path_buf(),
            spec,
            size,
            input_shape: shape,
            input_name,
            outputs,
            labels: labels.map(Arc::new),
            features: Some(features),
            threads,
            pool: Mutex::new(vec![session]),
            spare_batch: Mutex::new(Vec::new()),
        })
    }

    /// Runs a head on `n` feature vectors (`n * features` floats).
    pub fn run_features(&self, batch: &[f32], n: usize) -> Result<Vec<f32>> {
        let features = self
            .features
            .ok_or_else(|| Error::Internal(format!("model {} is not a head", self.name)))?;
        if n == 0 {
            return Ok(Vec::new());
        }
        self.run_shaped(batch, n, vec![n as i64, features as i64])
    }

    /// Turns images into one batch tensor, in the model's layout and channel
    /// order, at the model's own size (each image decoded at the smallest
    /// scale that reaches it).
    pub fn batch_tensor(&self, images: &[CoefficientImage]) -> Result<Vec<f32>> {
        if self.spec.coefficient_bands.is_some() {
            return self.coefficient_batch(images);
        }
        self.pixel_batch(images, self.size, 8)
    }

    /// Hands a batch tensor back once it has run, for the next pixel batch
    /// to fill: a batch of 32 224x224 tensors is 19 MB that a fresh
    /// allocation would zero (or fault in) only for every float to be
    /// overwritten. One buffer, the largest, is kept per model.
    pub fn recycle(&self, batch: Vec<f32>) {
        let mut spare = self.spare_batch.lock().expect("no panics inside");
        if batch.capacity() > spare.capacity() {
            *spare = batch;
        }
    }

    /// Like [`Model::batch_tensor`], under read format `format`: `images`
    /// hold (at least) the format's bands. Returns the tensor and the input
    /// side it was built at.
    pub fn format_tensor(
        &self,
        images: Vec<CoefficientImage>,
        format: &ReadFormat,
    ) -> Result<(Vec<f32>, u32)> {
        let model_bands = self.spec.coefficient_bands.unwrap_or(0);
        let shaped: Vec<CoefficientImage> = images
            .into_iter()
            .map(|img| format.shape_image(img, model_bands))
            .collect();
        format.check_fits(&self.name, &self.spec, self.size, self.dynamic_size())?;
        match format.repr {
            Representation::Coefficients { .. } => {
                Ok((self.coefficient_batch(&shaped)?, self.size))
            }
            Representation::Pixels { scale, size, .. } => {
                Ok((self.pixel_batch(&shaped, size, scale as usize)?, size))
            }
        }
    }

    /// Pixel tensors of side `size`. A format's scale is the most it reads:
    /// each image decodes at the smallest scale up to `max_scale` that
    /// reaches the input size (the DCT-domain downscale keeps what a larger
    /// decode and a resize would).
    fn pixel_batch(
        &self,
        images: &[CoefficientImage],
        size: u32,
        max_scale: usize,
    ) -> Result<Vec<f32>> {
        let tspec = self.spec.tensor(size);
        let per = image_floats(&self.spec, size)?;
        let len = batch_floats(per, images.len())?;
        // Every float is written below, so a recycled buffer's old values
        // never show; only growth is zero-filled.
        let mut batch = std::mem::take(&mut *self.spare_batch.lock().expect("no panics inside"));
        batch.resize(len, 0.0);
        let mut scratch = TensorScratch::new();
        for (img, out) in images.iter().zip(batch.chunks_exact_mut(per)) {
            let s = max_scale.min(choose_scale(img.width(), img.height(), size, size));
            to_tensor_at(img, &tspec, s, out, &mut scratch)?;
            if self.spec.bgr {
                swap_red_blue(out, self.spec.layout);
            }
        }
        Ok(batch)
    }

    fn coefficient_batch(&self, images: &[CoefficientImage]) -> Result<Vec<f32>> {
        let bands = self.spec.coefficient_bands.unwrap_or(64);
        let per = image_floats(&self.spec, self.size)?;
        let mut batch = vec![0f32; batch_floats(per, images.len())?];
        for (img, out) in images.iter().zip(batch.chunks_exact_mut(per)) {
            coefficient_tensor(img, bands, self.size / 8, self.spec.layout, out)?;
        }
        Ok(batch)
    }

    /// The input side the model runs at under `format` (its own size when none).
    pub fn input_side(&self, format: Option<&ReadFormat>) -> u32 {
        match format.map(|f| f.repr) {
            Some(Representation::Pixels { size, .. }) => size,
            _ => self.size,
        }
    }

    /// Images per batch at input side `size`: as many as fit
    /// [`TENSOR_BUDGET_BYTES`], at least one.
    pub fn max_batch(&self, size: u32) -> usize {
        batch_limit(&self.spec, size)
    }

    /// Whether the model takes inputs of any height and width.
    pub fn dynamic_size(&self) -> bool {
        spatial_dims_dynamic(&self.input_shape, self.spec.layout)
    }

    /// Runs a batch of `n` tensors; returns `n * outputs` floats.
    pub fn run(&self, batch: &[f32], n: usize) -> Result<Vec<f32>> {
        self.run_at(batch, n, self.size)
    }

    /// Runs a batch of `n` tensors of side `size`.
    pub fn run_at(&self, batch: &[f32], n: usize, size: u32) -> Result<Vec<f32>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.run_shaped(batch, n, self.spec.shape(n, size).to_vec())
    }

    /// Runs a batch of `n` inputs of shape `shape` on a pooled session.
    fn run_shaped(&self, batch: &[f32], n: usize, shape: Vec<i64>) -> Result<Vec<f32>> {
        let pooled = self.pool.lock().expect("session pool").pop();
        let mut session = match pooled {
            Some(s) => s,
            None => new_session(&self.path, self.threads)?,
        };
        let result = run_session(&mut session, &self.input_name, shape, batch);
        self.pool.lock().expect("session pool").push(session);
        let out = result.map_err(|e| Error::Model(format!("model {}: {e}", self.name)))?;
        if out.len() != n * self.outputs {
            return Err(Error::Model(format!(
                "model {}: returned {} values for {n} images, expected {} each",
                self.name,
                out.len(),
                self.outputs
            )));
        }
        Ok(out)
    }
}

/// A session's one input: its name, element type and shape (`what` says
/// what that input should be, for the error).
fn single_input(
    session: &Session,
    what: &str,
) -> std::result::Result<(String, TensorElementType, Vec<i64>), String> {
    if session.inputs().len() != 1 {
        return Err(format!("has {} inputs; {what}", session.inputs().len()));
    }
    let input = &session.inputs()[0];
    let name = input.name().to_string();
    match input.dtype() {
        ValueType::Tensor { ty, shape, .. } => Ok((name, *ty, shape.to_vec())),
        other => Err(format!("input '{name}' is {other:?}, not a tensor")),
    }
}

/// A labels file must name every output.
fn check_labels(labels: Option<&[String]>, outputs: usize) -> std::result::Result<(), String> {
    match labels {
        Some(l) if l.len() != outputs => Err(format!(
            "the labels file has {} lines but the model has {outputs} outputs",
            l.len()
        )),
        _ => Ok(()),
    }
}

/// The input side (pixels) a model with input `shape` runs at under
/// `spec`: checks the rank, the channels and a square size within
/// 1..=[`MAX_INPUT_SIDE`] (an ONNX dimension is an i64: never truncated).
fn input_side_of(
    input_name: &str,
    shape: &[i64],
    spec: &ModelSpec,
) -> std::result::Result<u32, String> {
    if shape.len() != 4 {
        return Err(format!(
            "input '{input_name}' has shape {shape:?}; an image input has 4 dimensions (N, C, H, W or N, H, W, C)"
        ));
    }
    let (c, h, w) = match spec.layout {
        Layout::Chw => (shape[1], shape[2], shape[3]),
        Layout::Hwc => (shape[3], shape[1], shape[2]),
    };
    let layout = if spec.layout == Layout::Chw {
        "nchw"
    } else {
        "nhwc"
    };
    let want_c = spec.channels() as i64;
    if c != want_c && c != -1 {
        let what = match spec.coefficient_bands {
            Some(k) => format!("{want_c} (3 planes x {k} bands)"),
            None => "3".to_string(),
        };
        return Err(format!(
            "input '{input_name}' has shape {shape:?}: with layout = '{layout}' the channel dimension is {c}, expected {what}"
        ));
    }
    let unit = spec.unit() as i64;
    // The side in pixels, if it fits the limit (a huge i64 never wraps).
    let side = |h: i64| {
        h.checked_mul(unit)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p <= MAX_INPUT_SIDE)
    };
    let size = match (h, w, spec.size) {
        (-1, -1, Some(s)) => s,
        (-1, -1, None) => {
            return Err(format!(
                "input '{input_name}' has a dynamic size {shape:?}: give size = <pixels> (for example 224)"
            ))
        }
        (h, w, _) if h != w || h < 1 => {
            return Err(format!(
                "input '{input_name}' has shape {shape:?}: only square inputs are supported"
            ))
        }
        (h, _, given) => match (side(h), given) {
            (None, _) => {
                return Err(format!(
                    "input '{input_name}' has shape {shape:?}: over the largest input side, {MAX_INPUT_SIDE} pixels"
                ))
            }
            (Some(p), Some(s)) if s != p => {
                return Err(format!(
                    "input '{input_name}' is fixed at {p}x{p} pixels but size = {s}"
                ))
            }
            (Some(p), _) => p,
        },
    };
    Ok(size)
}

/// Floats in one image's input tensor at side `size` (1..=[`MAX_INPUT_SIDE`]).
fn image_floats(spec: &ModelSpec, size: u32) -> Result<usize> {
    if !(1..=MAX_INPUT_SIDE).contains(&size) {
        return Err(Error::InvalidArgument(format!(
            "model input side {size} out of range 1..={MAX_INPUT_SIDE}"
        )));
    }
    // At most 192 channels x 8192^2: no overflow on 64-bit targets.
    Ok(spec
        .shape(1, size)
        .iter()
        .skip(1)
        .map(|&d| d as usize)
        .product())
}

/// Images of side `size` that fit [`TENSOR_BUDGET_BYTES`], at least one.
fn batch_limit(spec: &ModelSpec, size: u32) -> usize {
    let per = image_floats(spec, size.clamp(1, MAX_INPUT_SIDE)).unwrap_or(usize::MAX);
    (TENSOR_BUDGET_BYTES / per.saturating_mul(4)).max(1)
}

/// Floats in a batch of `n` images of `per` floats each, refusing a batch
/// over the budget (callers chunk by [`Model::max_batch`]).
fn batch_floats(per: usize, n: usize) -> Result<usize> {
    let total = per.saturating_mul(n);
    if n > 1 && total.saturating_mul(4) > TENSOR_BUDGET_BYTES {
        return Err(Error::Internal(format!(
            "a batch of {n} images of {per} floats is over the {TENSOR_BUDGET_BYTES}-byte tensor budget"
        )));
    }
    Ok(total)
}

/// Whether a declared input shape leaves height and width open (-1).
pub fn spatial_dims_dynamic(shape: &[i64], layout: Layout) -> bool {
    let (h, w) = match layout {
        Layout::Chw => (shape.get(2), shape.get(3)),
        Layout::Hwc => (shape.get(1), shape.get(2)),
    };
    matches!((h, w), (Some(h), Some(w)) if *h < 1 && *w < 1)
}

/// The coefficient input: for each plane (Y, Cb, Cr) its first `bands`
/// zigzag bands, dequantized, on a `grid x grid` block grid taken from the
/// image's top-left (zero beyond its edge); 4:2:0 chroma blocks are
/// repeated 2x2 to line up with luma, gray images get zero chroma.
/// Channel `plane * bands + k`.
pub fn coefficient_tensor(
    img: &CoefficientImage,
    bands: usize,
    grid: u32,
    layout: Layout,
    out: &mut [f32],
) -> Result<()> {
    let g = grid as usize;
    let channels = 3 * bands;
    out.fill(0.0);
    for (p, plane) in img.planes().iter().enumerate().take(3) {
        let sub = if p > 0 && img.chroma() == crate::codec::Chroma::Yuv420 {
            2
        } else {
            1
        };
        let (bw, bh) = (plane.blocks_w(), plane.blocks_h());
        for k in 0..bands {
            let band = plane.band(k).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "coefficient input needs band {k} of plane {p}, which was not read"
                ))
            })?;
            let q = img.quant()[p][k] as f32;
            let ch = p * bands + k;
            for y in 0..g {
                let by = y / sub;
                if by >= bh {
                    break;
                }
                for x in 0..g {
                    let bx = x / sub;
                    if bx >= bw {
                        break;
                    }
                    let v = band[by * bw + bx] as f32 * q;
                    let i = match layout {
                        Layout::Chw => (ch * g + y) * g + x,
                        Layout::Hwc => (y * g + x) * channels + ch,
                    };
                    out[i] = v;
                }
            }
        }
    }
    Ok(())
}

/// Swaps the red and blue planes of one RGB tensor (for BGR models; the
/// Python training loader makes the same tensors).
pub fn swap_red_blue(t: &mut [f32], layout: Layout) {
    match layout {
        Layout::Chw => {
            let plane = t.len() / 3;
            let (r, rest) = t.split_at_mut(plane);
            r.swap_with_slice(&mut rest[plane..]);
        }
        Layout::Hwc => t.chunks_exact_mut(3).for_each(|px| px.swap(0, 2)),
    }
}

fn run_session(
    session: &mut Session,
    input: &str,
    shape: Vec<i64>,
    batch: &[f32],
) -> std::result::Result<Vec<f32>, String> {
    let tensor = TensorRef::from_array_view((shape, batch)).map_err(|e| e.to_string())?;
    let outputs = session
        .run(ort::inputs![input => tensor])
        .map_err(|e| e.to_string())?;
    let (_, first) = outputs
        .iter()
        .next()
        .ok_or("the model returned no output")?;
    let (_, values) = first
        .try_extract_tensor::<f32>()
        .map_err(|e| format!("its first output is not a float32 tensor: {e}"))?;
    Ok(values.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_side_comes_from_the_shape_checked_not_truncated() {
        let mut spec = ModelSpec::imagenet(224);
        spec.size = None;
        assert_eq!(input_side_of("x", &[1, 3, 224, 224], &spec), Ok(224));
        // 2^32 + 224 used to wrap to 224; 100,000 asked for a 120 GB probe.
        for side in [(1i64 << 32) + 224, 100_000, 8193, i64::MAX] {
            let err = input_side_of("x", &[1, 3, side, side], &spec).unwrap_err();
            assert!(err.contains("largest input side"), "{side}: {err}");
        }
        spec.size = Some(256);
        let err = input_side_of("x", &[1, 3, 224, 224], &spec).unwrap_err();
        assert!(err.contains("fixed at 224x224"), "{err}");
        // Coefficient input counts blocks: 8 pixels per step, no overflow.
        spec.size = None;
        spec.coefficient_bands = Some(4);
        assert_eq!(input_side_of("x", &[1, 12, 4, 4], &spec), Ok(32));
        let err = input_side_of("x", &[1, 12, i64::MAX / 4, i64::MAX / 4], &spec).unwrap_err();
        assert!(err.contains("largest input side"), "{err}");
    }

    #[test]
    fn batches_are_capped_by_bytes_not_by_count() {
        let spec = ModelSpec::imagenet(224);
        // 224 x 224 x 3 floats is 588 KiB: hundreds fit the budget.
        assert_eq!(
            batch_limit(&spec, 224),
            TENSOR_BUDGET_BYTES / (224 * 224 * 3 * 4)
        );
        // 8192 x 8192 x 3 floats is 768 MiB: one image at a time.
        assert_eq!(batch_limit(&spec, 8192), 1);
        let per = image_floats(&spec, 8192).unwrap();
        assert_eq!(batch_floats(per, 1).unwrap(), per);
        assert!(batch_floats(per, 32).is_err());
        assert!(image_floats(&spec, 0).is_err());
        assert!(image_floats(&spec, 100_000).is_err());
    }
}
