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
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::read_format::model_spec::{MemberSource, ModelSpec};
use crate::read_format::space::{ReadFormat, Representation};
use crate::reuse::cache::ModelCache;
use crate::reuse::{ModelCall, ModelRef};
use crate::storage::catalog::{DatabaseDir, FamilyMember, ModelEntry, MODELS_DIR};
use crate::storage::commit::Transaction;
use runner::Model;

/// A registered model; loads its sessions once, at CREATE MODEL or on
/// first use.
pub struct ModelHandle {
    pub name: String,
    pub entry: ModelEntry,
    pub spec: ModelSpec,
    pub labels: Option<Arc<Vec<String>>>,
    /// What this model's functions have run, for EXPLAIN ANALYZE.
    pub stats: ModelStats,
    /// The database's output cache.
    pub cache: Option<Arc<ModelCache>>,
    /// For a head: the model whose output it takes.
    pub backbone: Option<Arc<ModelHandle>>,
    /// For a model family: its members, each run on its own read format
    /// (the family's counters, cache keys and lineage stay the family's).
    pub members: Vec<Member>,
    path: PathBuf,
    loaded: OnceLock<Arc<Model>>,
    /// Held while loading, so that concurrent first uses load once.
    loading: Mutex<()>,
}

/// A member of a model family: a model of its own, fed one read format.
pub struct Member {
    pub format: ReadFormat,
    pub handle: Arc<ModelHandle>,
}

/// Running totals of a model's function calls.
#[derive(Debug, Default)]
pub struct ModelStats {
    pub images: AtomicU64,
    /// Turning image values into input tensors.
    pub tensor_ns: AtomicU64,
    /// ONNX Runtime.
    pub inference_ns: AtomicU64,
    /// Outputs found in the cache (or handed over by the scan) instead of computed.
    pub cache_hits: AtomicU64,
    /// Outputs looked up in the cache and not found.
    pub cache_misses: AtomicU64,
}

/// A model's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub images: u64,
    pub tensors: Duration,
    pub inference: Duration,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl ModelStats {
    pub fn record(&self, images: usize, tensors: Duration, inference: Duration) {
        self.images.fetch_add(images as u64, Ordering::Relaxed);
        self.tensor_ns
            .fetch_add(tensors.as_nanos() as u64, Ordering::Relaxed);
        self.inference_ns
            .fetch_add(inference.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Outputs that were already there (handed over with the value).
    pub fn reused(&self, n: usize) {
        self.cache_hits.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn cache_lookups(&self, hits: u64, misses: u64) {
        self.cache_hits.fetch_add(hits, Ordering::Relaxed);
        self.cache_misses.fetch_add(misses, Ordering::Relaxed);
    }

    /// The counters so far.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            images: self.images.load(Ordering::Relaxed),
            tensors: Duration::from_nanos(self.tensor_ns.load(Ordering::Relaxed)),
            inference: Duration::from_nanos(self.inference_ns.load(Ordering::Relaxed)),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
        }
    }
}

impl ModelHandle {
    /// This model as the reuse module knows it.
    pub fn reuse_ref(&self) -> ModelRef<'_> {
        ModelRef {
            name: &self.name,
            checksum: &self.entry.checksum,
            output: self.spec.output,
        }
    }

    /// A call of `function` (one of this model's functions) as the reuse
    /// module knows it.
    pub fn call<'a>(&'a self, function: &'a str) -> ModelCall<'a> {
        ModelCall {
            function,
            model: self.reuse_ref(),
            backbone: self.backbone.as_deref().map(ModelHandle::reuse_ref),
        }
    }

    /// The handle of a catalog entry (reads the labels file, not the
    /// model). A head (`entry.backbone`) needs its backbone's handle.
    pub fn new(
        dir: &DatabaseDir,
        name: &str,
        entry: &ModelEntry,
        cache: Option<Arc<ModelCache>>,
        backbone: Option<Arc<ModelHandle>>,
    ) -> Result<Self> {
        let labels = match &entry.labels_file {
            Some(f) => Some(Arc::new(read_labels(&dir.root().join(f))?)),
            None => None,
        };
        let members = entry
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let handle = ModelHandle::new(dir, &member_name(name, i), &m.model, None, None)?;
                Ok(Member {
                    format: m.format,
                    handle: Arc::new(handle),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let reference = entry
            .reference_member()
            .and_then(|r| members.iter().find(|m| m.format == r.format));
        let spec = match (&entry.backbone, &backbone) {
            _ if reference.is_some() => reference.expect("checked").handle.spec.clone(),
            (Some(_), Some(b)) => head_spec(&b.spec, &entry.options, labels.is_some())?,
            (Some(b), None) => {
                return Err(Error::Model(format!(
                    "model {name} is a head on the features of '{b}', which is not registered"
                )))
            }
            (None, _) => {
                let mut spec = ModelSpec::parse(&entry.options, labels.is_some())?;
                spec.size = Some(entry.size);
                spec
            }
        };
        Ok(ModelHandle {
            name: name.to_string(),
            entry: entry.clone(),
            spec,
            labels,
            stats: ModelStats::default(),
            cache,
            backbone: if entry.backbone.is_some() {
                backbone
            } else {
                None
            },
            members,
            path: dir.root().join(&entry.file),
            loaded: OnceLock::new(),
            loading: Mutex::new(()),
        })
    }

    /// The database directory the model's files are under.
    pub fn database_root(&self) -> Option<&Path> {
        let depth = Path::new(&self.entry.file).components().count();
        self.path.ancestors().nth(depth)
    }

    /// Whether this is a model family.
    pub fn is_family(&self) -> bool {
        !self.members.is_empty()
    }

    /// The family member fed `format`, if this is a family with one.
    pub fn member(&self, format: &ReadFormat) -> Option<(usize, &Member)> {
        self.members
            .iter()
            .enumerate()
            .find(|(_, m)| m.format == *format)
    }

    /// A family's largest member: what an unbound call runs and what
    /// calibration compares the others with.
    pub fn reference_member(&self) -> Option<&Member> {
        let r = self.entry.reference_member()?;
        self.member(&r.format).map(|(_, m)| m)
    }

    /// The model that runs images read under `format`: a family's member
    /// for that format (its largest member when none is bound), else this
    /// model.
    pub fn runner(&self, format: Option<&ReadFormat>) -> &ModelHandle {
        format
            .and_then(|f| self.member(f))
            .map(|(_, m)| m)
            .or_else(|| self.reference_member())
            .map_or(self, |m| &m.handle)
    }

    /// Whether the model takes inputs of any height and width (a head:
    /// whether its backbone does).
    pub fn dynamic_size(&self) -> bool {
        match &self.backbone {
            Some(b) => b.dynamic_size(),
            None => runner::spatial_dims_dynamic(&self.entry.input_shape, self.spec.layout),
        }
    }

    /// Runs the model on images read under `format` (a head: its backbone
    /// first); `images.len() * outputs` values.
    pub fn run_images(
        &self,
        images: Vec<crate::codec::CoefficientImage>,
        format: &crate::read_format::ReadFormat,
    ) -> Result<Vec<f32>> {
        let n = images.len();
        let loaded = self.runner(Some(format)).model()?;
        match &self.backbone {
            Some(b) => {
                let features = b.run_images(images, format)?;
                loaded.run_features(&features, n)
            }
            None => {
                let (tensor, size) = loaded.format_tensor(images, format)?;
                let out = loaded.run_at(&tensor, n, size);
                loaded.recycle(tensor);
                out
            }
        }
    }

    pub fn outputs(&self) -> usize {
        self.entry.outputs as usize
    }

    /// The loaded model (ONNX Runtime sessions), loading it the first time.
    /// A failed load is not kept: its error comes back with its own type
    /// (no ONNX Runtime stays [`Error::Runtime`]) and the next use tries
    /// again.
    pub fn model(&self) -> Result<Arc<Model>> {
        if let Some(r) = self.reference_member() {
            return r.handle.model();
        }
        if let Some(m) = self.loaded.get() {
            return Ok(m.clone());
        }
        // A panic while loading leaves nothing half-set: the lock guards no data.
        let _one_load = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = self.loaded.get() {
            return Ok(m.clone());
        }
        let model = Arc::new(self.load()?);
        Ok(self.loaded.get_or_init(|| model).clone())
    }

    /// The loaded model, without loading it.
    pub fn loaded(&self) -> Option<Arc<Model>> {
        if let Some(r) = self.reference_member() {
            return r.handle.loaded();
        }
        self.loaded.get().cloned()
    }

    /// Takes `model`, loaded by CREATE MODEL for `entry`, as this handle's
    /// loaded model, so that the first query does not load the file again.
    /// Ignored when `entry` is not this handle's or a model is loaded.
    pub(crate) fn adopt(&self, entry: &ModelEntry, model: Arc<Model>) {
        if let Some(r) = self.reference_member().filter(|_| self.entry == *entry) {
            let member = entry.reference_member().map(|m| &m.model);
            if let Some(member) = member {
                r.handle.adopt(member, model);
            }
        } else if self.entry == *entry {
            let _ = self.loaded.set(model);
        }
    }

    fn load(&self) -> Result<Model> {
        let labels = self.labels.as_ref().map(|l| l.to_vec());
        match &self.backbone {
            Some(b) => Model::load_head(
                &self.name,
                &self.path,
                self.spec.clone(),
                labels,
                default_threads(),
                b.outputs(),
                self.entry.size,
            ),
            None => Model::load(
                &self.name,
                &self.path,
                self.spec.clone(),
                labels,
                default_threads(),
            ),
        }
    }
}

/// A head reads images the way its backbone does; only its output (and
/// labels) are its own. Image options are refused: they belong to the
/// backbone.
fn head_spec(
    backbone: &ModelSpec,
    options: &BTreeMap<String, String>,
    has_labels: bool,
) -> Result<ModelSpec> {
    let mut own = BTreeMap::new();
    for (k, v) in options {
        match k.as_str() {
            "output" | "labels" => {
                own.insert(k.clone(), v.clone());
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "option '{other}' does not apply to a head (ON FEATURES OF): its input is the backbone's output; a head takes output and labels"
                )))
            }
        }
    }
    let parsed = ModelSpec::parse(&own, has_labels)?;
    let mut spec = backbone.clone();
    spec.output = parsed.output;
    Ok(spec)
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

/// SHA-256 (hex) and length of a file: a model's identity in the catalog.
pub(crate) fn sha256_file(path: &Path) -> Result<(String, u64)> {
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

/// A model checked by [`prepare_model`].
pub struct PreparedModel {
    /// What to publish in the catalog.
    pub entry: ModelEntry,
    /// The model as the check loaded it (further sessions read the
    /// database's copy): the model's handle takes it, so that its first
    /// query does not load the file again.
    pub model: Model,
}

/// Checks a model file against its options and copies it (and its labels)
/// into the database directory as part of `tx`. Returns the catalog entry
/// to publish with the loaded model; if `tx` does not commit, the copies
/// are removed.
pub fn prepare_model(
    tx: &mut Transaction,
    name: &str,
    source: &Path,
    options: &BTreeMap<String, String>,
    backbone: Option<&ModelHandle>,
) -> Result<PreparedModel> {
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
    // Loaded with the threads queries use: this is the model they run.
    let threads = default_threads();
    let mut model = match backbone {
        Some(b) => {
            let spec = head_spec(&b.spec, options, labels.is_some())?;
            Model::load_head(
                name,
                source,
                spec,
                labels,
                threads,
                b.outputs(),
                b.entry.size,
            )?
        }
        None => Model::load(
            name,
            source,
            ModelSpec::parse(options, labels.is_some())?,
            labels,
            threads,
        )?,
    };
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
    // The source may change or go once CREATE MODEL is done: further
    // sessions read the copy.
    model.path = tx.root().join(&file);
    let entry = ModelEntry {
        file,
        labels_file,
        checksum,
        bytes,
        options: options.clone(),
        input_shape: model.input_shape.clone(),
        size: model.size,
        outputs: model.outputs as u64,
        backbone: backbone.map(|b| b.name.clone()),
        members: Vec::new(),
    };
    Ok(PreparedModel { entry, model })
}

/// How a family member's handle is named (in errors and loads).
fn member_name(family: &str, index: usize) -> String {
    format!("{family} member {}", index + 1)
}

/// Checks and copies every member of a model family as part of `tx` (see
/// [`prepare_model`]): each member must take its format's input, and all
/// must return the same kind and number of outputs, since they are one
/// SQL function.
pub fn prepare_family(
    tx: &mut Transaction,
    name: &str,
    members: &[MemberSource],
    options: &BTreeMap<String, String>,
) -> Result<PreparedModel> {
    if members.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "model family {name} needs at least two members (a single model is CREATE MODEL {name} FROM '<file>')"
        )));
    }
    let mut prepared: Vec<(ReadFormat, PreparedModel)> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let context = |e: Error| {
            let why = match e {
                Error::InvalidArgument(why) => why,
                other => other.to_string(),
            };
            Error::InvalidArgument(format!(
                "model family {name}, member {} (FORMAT '{}' FROM '{}'): {why}",
                i + 1,
                m.format,
                m.source
            ))
        };
        let format: ReadFormat = m.format.parse().map_err(context)?;
        if let Some(earlier) = prepared.iter().position(|(f, _)| *f == format) {
            return Err(context(Error::InvalidArgument(format!(
                "member {} already reads format '{format}'; each member needs its own",
                earlier + 1
            ))));
        }
        let mut merged = options.clone();
        merged.extend(m.options.iter().cloned());
        match format.repr {
            Representation::Pixels { size, .. } => {
                merged.entry("size".into()).or_insert(size.to_string());
            }
            Representation::Coefficients { bands } => {
                merged
                    .entry("input".into())
                    .or_insert("coefficients".into());
                merged.entry("bands".into()).or_insert(bands.to_string());
            }
        }
        let source = Path::new(&m.source);
        let p = prepare_model(tx, &format!("{name}_{}", i + 1), source, &merged, None)
            .map_err(context)?;
        let dynamic = runner::spatial_dims_dynamic(&p.model.input_shape, p.model.spec.layout);
        format
            .check_fits(name, &p.model.spec, p.model.size, dynamic)
            .map_err(context)?;
        if let Some((_, first)) = prepared.first() {
            let (a, b) = (&first.model, &p.model);
            if a.outputs != b.outputs || a.spec.output != b.spec.output {
                return Err(context(Error::InvalidArgument(format!(
                    "it returns {} values as output '{}', member 1 returns {} as '{}': the members of a family are one function and must agree",
                    b.outputs,
                    b.spec.output.name(),
                    a.outputs,
                    a.spec.output.name()
                ))));
            }
        }
        prepared.push((format, p));
    }
    let mut hasher = Sha256::new();
    for (format, p) in &prepared {
        hasher.update(format!("{format}\t{}\n", p.entry.checksum));
    }
    let checksum = format!("{:x}", hasher.finalize());
    let bytes = prepared.iter().map(|(_, p)| p.entry.bytes).sum();
    let mut family_members = Vec::new();
    let mut models = Vec::new();
    for (format, p) in prepared {
        family_members.push(FamilyMember {
            format,
            model: p.entry,
        });
        models.push(p.model);
    }
    let mut entry = ModelEntry {
        file: String::new(),
        labels_file: None,
        checksum,
        bytes,
        options: options.clone(),
        input_shape: Vec::new(),
        size: 0,
        outputs: 0,
        backbone: None,
        members: family_members,
    };
    let reference = entry.reference_member().expect("two members").clone();
    let index = entry
        .members
        .iter()
        .position(|m| m.format == reference.format)
        .expect("a member");
    entry.file = reference.model.file.clone();
    entry.labels_file = reference.model.labels_file.clone();
    entry.input_shape = reference.model.input_shape.clone();
    entry.size = reference.model.size;
    entry.outputs = reference.model.outputs;
    Ok(PreparedModel {
        entry,
        model: models.swap_remove(index),
    })
}
