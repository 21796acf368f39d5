//! ONNX models as SQL functions: finding ONNX Runtime, model options,
//! checking and running models, and the functions they become.
//!
//! `CREATE MODEL m FROM 'file.onnx' WITH (...)` copies the model (and its
//! labels file) into the database directory, checks it by loading it and
//! running it once, and records it in the catalog; every session then has
//! `m(image)` and `m_scores(image)`. Sessions are created when a function
//! first runs, so a database with models opens without ONNX Runtime.

pub mod runner;
pub mod runtime;
pub(crate) mod udf;
pub(crate) mod vector;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::format::model_spec::ModelSpec;
use crate::storage::catalog::{DatabaseDir, ModelEntry, MODELS_DIR};
use crate::storage::commit::Transaction;
use runner::Model;

/// A registered model; loads its sessions on first use.
pub struct ModelHandle {
    pub name: String,
    pub entry: ModelEntry,
    pub spec: ModelSpec,
    pub labels: Option<Arc<Vec<String>>>,
    /// What this model's functions have run, for EXPLAIN ANALYZE.
    pub stats: ModelStats,
    path: PathBuf,
    loaded: OnceLock<std::result::Result<Arc<Model>, String>>,
}

/// Running totals of a model's function calls.
#[derive(Debug, Default)]
pub struct ModelStats {
    pub images: AtomicU64,
    /// Turning image values into input tensors.
    pub tensor_ns: AtomicU64,
    /// ONNX Runtime.
    pub inference_ns: AtomicU64,
}

impl ModelStats {
    pub fn record(&self, images: usize, tensors: Duration, inference: Duration) {
        self.images.fetch_add(images as u64, Ordering::Relaxed);
        self.tensor_ns
            .fetch_add(tensors.as_nanos() as u64, Ordering::Relaxed);
        self.inference_ns
            .fetch_add(inference.as_nanos() as u64, Ordering::Relaxed);
    }

    /// (images, tensor time, inference time) so far.
    pub fn snapshot(&self) -> (u64, Duration, Duration) {
        (
            self.images.load(Ordering::Relaxed),
            Duration::from_nanos(self.tensor_ns.load(Ordering::Relaxed)),
            Duration::from_nanos(self.inference_ns.load(Ordering::Relaxed)),
        )
    }
}

impl ModelHandle {
    /// The handle of a catalog entry (reads the labels file, not the model).
    pub fn new(dir: &DatabaseDir, name: &str, entry: &ModelEntry) -> Result<Self> {
        let labels = match &entry.labels_file {
            Some(f) => Some(Arc::new(read_labels(&dir.root().join(f))?)),
            None => None,
        };
        let mut spec = ModelSpec::parse(&entry.options, labels.is_some())?;
        spec.size = Some(entry.size);
        Ok(ModelHandle {
            name: name.to_string(),
            entry: entry.clone(),
            spec,
            labels,
            stats: ModelStats::default(),
            path: dir.root().join(&entry.file),
            loaded: OnceLock::new(),
        })
    }

    /// Whether the model takes inputs of any height and width.
    pub fn dynamic_size(&self) -> bool {
        runner::spatial_dims_dynamic(&self.entry.input_shape, self.spec.layout)
    }

    pub fn outputs(&self) -> usize {
        self.entry.outputs as usize
    }

    /// The loaded model (ONNX Runtime sessions), loading it the first time.
    pub fn model(&self) -> Result<Arc<Model>> {
        self.loaded
            .get_or_init(|| {
                Model::load(
                    &self.name,
                    &self.path,
                    self.spec.clone(),
                    self.labels.as_ref().map(|l| l.to_vec()),
                    default_threads(),
                )
                .map(Arc::new)
                .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(Error::Model)
    }
}

/// Intra-op threads per session: `SPECTRADB_MODEL_THREADS`, else all cores.
pub fn default_threads() -> usize {
    std::env::var("SPECTRADB_MODEL_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// One class name per line (blank lines at the end ignored).
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    while labels.last().is_some_and(|l| l.is_empty()) {
        labels.pop();
    }
    if labels.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: the labels file is empty",
            path.display()
        )));
    }
    Ok(labels)
}

fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, total))
}

/// The first `n` characters of a checksum for names and display; the whole
/// value when it is shorter or not ASCII (catalog values are not trusted).
pub fn short_checksum(checksum: &str, n: usize) -> &str {
    checksum.get(..n).unwrap_or(checksum)
}

/// Checks a model file against its options and copies it (and its labels)
/// into the database directory as part of `tx`. Returns the catalog entry
/// to publish; if `tx` does not commit, the copies are removed.
pub fn prepare_model(
    tx: &mut Transaction,
    name: &str,
    source: &Path,
    options: &BTreeMap<String, String>,
) -> Result<ModelEntry> {
    if !source.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{}: no such model file",
            source.display()
        )));
    }
    let labels_src = options.get("labels").map(PathBuf::from);
    let labels = match &labels_src {
        Some(p) => Some(read_labels(p)?),
        None => None,
    };
    let spec = ModelSpec::parse(options, labels.is_some())?;
    let model = Model::load(name, source, spec, labels, 1)?;
    let (checksum, bytes) = sha256_file(source)?;
    let models = tx.root().join(MODELS_DIR);
    std::fs::create_dir_all(&models).map_err(|e| Error::io(&models, e))?;
    let prefix = short_checksum(&checksum, 12);
    // Copies are named by their content's checksum: one already there (a
    // model dropped and created again, kept for older snapshots) is the
    // same file.
    let mut copy = |from: &Path, rel: String| -> Result<String> {
        if tx.root().join(&rel).is_file() {
            return Ok(rel);
        }
        let to = tx.track_new_file(&rel);
        std::fs::copy(from, &to).map_err(|e| Error::io(&to, e))?;
        std::fs::File::open(&to)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&to, e))?;
        Ok(rel)
    };
    let file = copy(source, format!("{MODELS_DIR}/{name}-{prefix}.onnx"))?;
    let labels_file = match &labels_src {
        Some(p) => {
            let (sum, _) = sha256_file(p)?;
            let rel = format!(
                "{MODELS_DIR}/{name}-{}.labels.txt",
                short_checksum(&sum, 12)
            );
            Some(copy(p, rel)?)
        }
        None => None,
    };
    Ok(ModelEntry {
        file,
        labels_file,
        checksum,
        bytes,
        options: options.clone(),
        input_shape: model.input_shape.clone(),
        size: model.size,
        outputs: model.outputs as u64,
    })
}
