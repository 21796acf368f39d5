//! The embedded database: a database directory plus a DataFusion session
//! that sees every image table, the image functions and spectradb's own
//! statements.
//!
//! Every statement starts by comparing the published catalog version with
//! the one the session was built from and re-registers what changed, so a
//! statement plans against one consistent catalog version (data files are
//! immutable, so a table provider holding a version's file list is a
//! snapshot).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::{RecordBatch, StringArray, UInt64Array, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};

use crate::codec::Chroma;
use crate::error::{Error, Result};
use crate::ingest::{expand_sources, ingest, IngestOptions, IngestReport, Label, OnError};
use crate::model::udf::model_functions;
use crate::model::vector::vector_functions;
use crate::model::{prepare_model, ModelHandle};
use crate::planner::calibrate::CalibrationProgress;
use crate::planner::profile::Profile;
use crate::planner::rule::FormatPlanner;
use crate::planner::PlannerOptions;
use crate::sql::functions::image_functions;
use crate::sql::image_table::{ImageTable, ScanStats};
use crate::sql::statements::{parse_command, Command};
use crate::storage::catalog::{Catalog, DatabaseDir, Definition};

mod formats;
mod plain;

/// Name of the table listing the files ingests skipped.
pub const INGEST_ERRORS_TABLE: &str = "spectradb_ingest_errors";

/// Whether an ingest creates its table or appends to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    Create,
    Append,
}

/// Receives ingest progress (the REPL draws a bar with it).
pub trait IngestProgress: Send + Sync {
    /// Called once the source files are known.
    fn start(&self, table: &str, files: u64, bytes: u64);
    /// Called after each file with its size in bytes.
    fn advance(&self, bytes: u64);
    /// Called when the ingest committed (not called when it failed).
    fn finish(&self, report: &IngestReport);
    /// Called when the ingest failed and committed nothing.
    fn abandon(&self) {}
}

/// What the session was last built from.
#[derive(Default)]
struct Registered {
    catalog_version: Option<u64>,
    /// Image table name -> table version registered.
    tables: BTreeMap<String, u64>,
    /// Ordinary table name -> the file it was loaded from.
    plain: BTreeMap<String, String>,
    /// Views and external tables replayed so far.
    definitions: Vec<Definition>,
    /// Model name -> checksum of the model registered.
    models: BTreeMap<String, String>,
}

/// An open spectradb database.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> spectradb::Result<()> {
/// use spectradb::Database;
/// let db = Database::in_memory()?;
/// db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/dev' WITH (on_error = 'skip')").await?;
/// let batches = db.sql("SELECT count(*) AS n FROM photos").await?.collect().await?;
/// assert_eq!(batches[0].num_rows(), 1);
/// # Ok(())
/// # }
/// ```
pub struct Database {
    ctx: SessionContext,
    dir: DatabaseDir,
    /// Holds the directory of an in-memory database until it is dropped.
    _temp: Option<tempfile::TempDir>,
    registered: Mutex<Registered>,
    stats: Arc<ScanStats>,
    progress: Mutex<Option<Arc<dyn IngestProgress>>>,
    /// Definitions that could not be restored, not yet reported.
    warnings: Mutex<Vec<String>>,
    /// Messages for the user that are not results (e.g. a chart's path).
    notices: Mutex<Vec<String>>,
    /// The catalog's profiles, as the format planner sees them.
    profiles: Arc<RwLock<Vec<Profile>>>,
    calibration_progress: Mutex<Option<Arc<dyn CalibrationProgress>>>,
    /// Set to stop a running CALIBRATE (Ctrl-C in the shell).
    interrupt: Arc<AtomicBool>,
}

impl Database {
    /// Opens (creating when missing) the database in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_dir(DatabaseDir::open(path)?, None)
    }

    /// A database that lives in a temporary directory, removed on drop.
    pub fn in_memory() -> Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("spectradb-mem-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        Self::with_dir(DatabaseDir::open(temp.path())?, Some(temp))
    }

    fn with_dir(dir: DatabaseDir, temp: Option<tempfile::TempDir>) -> Result<Self> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_option_extension(PlannerOptions::default());
        let ctx = SessionContext::new_with_config(config);
        let profiles = Arc::new(RwLock::new(Vec::new()));
        ctx.add_optimizer_rule(Arc::new(FormatPlanner::new(profiles.clone())));
        for f in image_functions().into_iter().chain(vector_functions()) {
            ctx.register_udf(f);
        }
        let db = Database {
            ctx,
            dir,
            _temp: temp,
            registered: Mutex::new(Registered::default()),
            stats: Arc::new(ScanStats::default()),
            progress: Mutex::new(None),
            warnings: Mutex::new(Vec::new()),
            notices: Mutex::new(Vec::new()),
            profiles,
            calibration_progress: Mutex::new(None),
            interrupt: Arc::new(AtomicBool::new(false)),
        };
        db.refresh()?;
        Ok(db)
    }

    /// The database directory (a temporary one for in-memory databases).
    pub fn path(&self) -> &Path {
        self.dir.root()
    }

    /// True for a database made by [`Database::in_memory`].
    pub fn is_in_memory(&self) -> bool {
        self._temp.is_some()
    }

    /// The DataFusion session, for anything spectradb does not wrap.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Counters of what image scans have read so far.
    pub fn scan_stats(&self) -> &ScanStats {
        &self.stats
    }

    /// Sets (or clears) the receiver of ingest progress.
    pub fn set_progress(&self, progress: Option<Arc<dyn IngestProgress>>) {
        *self.progress.lock().expect("progress lock") = progress;
    }

    /// The published catalog.
    pub fn catalog(&self) -> Result<Catalog> {
        self.dir.read_catalog()
    }

    /// Runs one SQL statement. Queries are lazy (collect the DataFrame);
    /// statements that change the database run here and return a summary.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        let catalog = self.refresh()?;
        self.restore_definitions(&catalog).await;
        match parse_command(sql)? {
            Some(cmd) => self.run_command(cmd, sql, &catalog).await,
            None if formats::is_explain_analyze(sql) => self.explain_analyze(sql).await,
            None => self.run_datafusion(sql).await,
        }
    }

    /// Views or external tables of the catalog that could not be restored
    /// (for example a view over a dropped table), each with the reason.
    /// Reported once.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().expect("warnings lock"))
    }

    /// Messages from the last statements that are not part of their result
    /// (for example where SHOW FORMATS wrote its chart). Reported once.
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock().expect("notices lock"))
    }

    /// Runs a statement DataFusion knows. One that changes ordinary tables,
    /// views or external tables of a file-backed database runs under the
    /// writer lock and publishes the change.
    async fn run_datafusion(&self, sql: &str) -> Result<DataFrame> {
        let effect = if self.is_in_memory() {
            plain::Effect::None
        } else {
            plain::classify(sql)
        };
        if effect == plain::Effect::None {
            return Ok(self.ctx.sql(sql).await?);
        }
        let lock = self.dir.lock_for_write()?;
        let current = self.refresh()?;
        self.restore_definitions(&current).await;
        let df = self.ctx.sql(sql).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        let mut catalog = self.dir.read_catalog()?;
        let replaced =
            plain::apply(&self.ctx, &self.dir, &lock, &mut catalog, &effect, sql).await?;
        catalog.version += 1;
        self.dir.publish(&catalog, &lock)?;
        drop(lock);
        for path in replaced {
            let _ = std::fs::remove_file(self.dir.root().join(path));
        }
        {
            // The session already holds what was published.
            let mut reg = self.registered.lock().expect("registry lock");
            reg.catalog_version = Some(catalog.version);
            reg.plain = catalog
                .plain_tables
                .iter()
                .map(|(n, f)| (n.clone(), f.path.clone()))
                .collect();
            reg.definitions = catalog.definitions.clone();
        }
        Ok(if batches.is_empty() {
            self.ctx.read_batch(RecordBatch::new_empty(schema))?
        } else {
            self.ctx.read_batches(batches)?
        })
    }

    /// Replays the catalog's views and external tables the session lacks.
    async fn restore_definitions(&self, catalog: &Catalog) {
        let (gone, new): (Vec<Definition>, Vec<Definition>) = {
            let reg = self.registered.lock().expect("registry lock");
            if reg.definitions == catalog.definitions {
                return;
            }
            (
                reg.definitions
                    .iter()
                    .filter(|d| !catalog.definitions.contains(d))
                    .cloned()
                    .collect(),
                catalog
                    .definitions
                    .iter()
                    .filter(|d| !reg.definitions.contains(d))
                    .cloned()
                    .collect(),
            )
        };
        for d in &gone {
            let _ = self.ctx.deregister_table(d.name.as_str());
        }
        for d in &new {
            let _ = self.ctx.deregister_table(d.name.as_str());
            if let Err(e) = self.ctx.sql(&d.sql).await {
                self.warnings
                    .lock()
                    .expect("warnings lock")
                    .push(format!("could not restore '{}' ({}): {e}", d.name, d.sql));
            }
        }
        self.registered.lock().expect("registry lock").definitions = catalog.definitions.clone();
    }

    /// Ingests the files matching `source` (a glob or a directory) into
    /// image table `table`, creating it or appending to it.
    pub fn ingest(
        &self,
        table: &str,
        source: &str,
        mode: IngestMode,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        check_table_name(table)?;
        let catalog = self.dir.read_catalog()?;
        if mode == IngestMode::Create
            && !catalog.tables.contains_key(table)
            && self.ctx.table_exist(table)?
        {
            return Err(Error::InvalidArgument(format!(
                "a table named '{table}' already exists (not an image table)"
            )));
        }
        let files = expand_sources(source)?;
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .sum();
        let progress = self.progress.lock().expect("progress lock").clone();
        let lock = self.dir.lock_for_write()?;
        if let Some(p) = &progress {
            p.start(table, files.len() as u64, bytes);
        }
        let tick = |b: u64| {
            if let Some(p) = &progress {
                p.advance(b)
            }
        };
        let report = ingest(
            &self.dir,
            &lock,
            table,
            mode == IngestMode::Create,
            &files,
            opts,
            &tick,
        );
        drop(lock);
        match (&report, &progress) {
            (Ok(r), Some(p)) => p.finish(r),
            (Err(_), Some(p)) => p.abandon(),
            _ => {}
        }
        let report = report?;
        self.refresh()?;
        Ok(report)
    }

    /// Registers an ONNX model as the SQL functions `name(image)` and
    /// `name_scores(image)` (see [`crate::model`] for the options).
    pub fn create_model(
        &self,
        name: &str,
        source: &Path,
        options: &[(String, String)],
    ) -> Result<()> {
        check_table_name(name).map_err(|_| {
            Error::InvalidArgument(format!(
                "'{name}' is not a valid model name: use letters, digits and '_' (not starting with a digit)"
            ))
        })?;
        let lock = self.dir.lock_for_write()?;
        let mut catalog = self.dir.read_catalog()?;
        if catalog.models.contains_key(name) {
            return Err(Error::InvalidArgument(format!(
                "model '{name}' already exists (DROP MODEL {name} first)"
            )));
        }
        if self.ctx.udf(name).is_ok() || self.ctx.udf(&format!("{name}_scores")).is_ok() {
            return Err(Error::InvalidArgument(format!(
                "a function named '{name}' already exists: choose another model name"
            )));
        }
        let options: BTreeMap<String, String> = options.iter().cloned().collect();
        let entry = prepare_model(&self.dir, &lock, name, source, &options)?;
        let files: Vec<String> = std::iter::once(entry.file.clone())
            .chain(entry.labels_file.clone())
            .collect();
        catalog.models.insert(name.to_string(), entry);
        catalog.version += 1;
        if let Err(e) = self.dir.publish(&catalog, &lock) {
            for f in files {
                let _ = std::fs::remove_file(self.dir.root().join(f));
            }
            return Err(e);
        }
        drop(lock);
        self.refresh().map(|_| ())
    }

    /// Removes a model and its functions.
    pub fn drop_model(&self, name: &str, if_exists: bool) -> Result<()> {
        let lock = self.dir.lock_for_write()?;
        let mut catalog = self.dir.read_catalog()?;
        let Some(entry) = catalog.models.remove(name) else {
            return if if_exists {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!("no model named '{name}'")))
            };
        };
        catalog.profiles.retain(|p| p.model != name);
        catalog.version += 1;
        self.dir.publish(&catalog, &lock)?;
        for f in std::iter::once(entry.file).chain(entry.labels_file) {
            let _ = std::fs::remove_file(self.dir.root().join(f));
        }
        drop(lock);
        self.refresh().map(|_| ())
    }

    fn show_models(&self) -> Result<DataFrame> {
        let catalog = self.dir.read_catalog()?;
        let m: Vec<(&String, &crate::storage::catalog::ModelEntry)> =
            catalog.models.iter().collect();
        let output = |e: &crate::storage::catalog::ModelEntry| {
            e.options.get("output").cloned().unwrap_or_else(|| {
                if e.labels_file.is_some() {
                    "label"
                } else {
                    "class"
                }
                .to_string()
            })
        };
        let shape = |e: &crate::storage::catalog::ModelEntry| {
            let dims: Vec<String> = e
                .input_shape
                .iter()
                .map(|d| {
                    if *d < 0 {
                        "?".to_string()
                    } else {
                        d.to_string()
                    }
                })
                .collect();
            format!("[{}] at {}x{}", dims.join(", "), e.size, e.size)
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("input", DataType::Utf8, false),
            Field::new("input_shape", DataType::Utf8, false),
            Field::new("output", DataType::Utf8, false),
            Field::new("outputs", DataType::UInt64, false),
            Field::new("bytes", DataType::UInt64, false),
            Field::new("checksum", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    m.iter().map(|(n, _)| n.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(m.iter().map(|(_, e)| {
                    e.options
                        .get("input")
                        .cloned()
                        .unwrap_or_else(|| "pixels".into())
                }))),
                Arc::new(StringArray::from_iter_values(
                    m.iter().map(|(_, e)| shape(e)),
                )),
                Arc::new(StringArray::from_iter_values(
                    m.iter().map(|(_, e)| output(e)),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    m.iter().map(|(_, e)| e.outputs),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    m.iter().map(|(_, e)| e.bytes),
                )),
                Arc::new(StringArray::from_iter_values(
                    m.iter()
                        .map(|(_, e)| format!("sha256:{}", &e.checksum[..16])),
                )),
            ],
        )?;
        Ok(self.ctx.read_batch(batch)?)
    }

    /// Drops image table `table`: publishes a catalog without it, then
    /// deletes its files.
    pub fn drop_image_table(&self, table: &str) -> Result<()> {
        let lock = self.dir.lock_for_write()?;
        let mut catalog = self.dir.read_catalog()?;
        let Some(entry) = catalog.tables.remove(table) else {
            return Err(Error::InvalidArgument(format!(
                "no image table named '{table}'"
            )));
        };
        catalog.ingest_errors.retain(|e| e.table != table);
        catalog.profiles.retain(|p| p.table != table);
        catalog.version += 1;
        self.dir.publish(&catalog, &lock)?;
        for f in &entry.files {
            let _ = std::fs::remove_file(self.dir.root().join(&f.path));
        }
        let _ = std::fs::remove_dir(self.dir.root().join("tables").join(table));
        drop(lock);
        self.refresh().map(|_| ())
    }

    /// Brings the session's image tables up to the published catalog and
    /// returns that catalog.
    fn refresh(&self) -> Result<Catalog> {
        let catalog = self.dir.read_catalog()?;
        let mut reg = self.registered.lock().expect("registry lock");
        if reg.catalog_version == Some(catalog.version) {
            return Ok(catalog);
        }
        let gone: Vec<String> = reg
            .tables
            .keys()
            .filter(|t| !catalog.tables.contains_key(*t))
            .cloned()
            .collect();
        for t in gone {
            self.ctx.deregister_table(t.as_str())?;
            reg.tables.remove(&t);
        }
        for (name, entry) in &catalog.tables {
            if reg.tables.get(name) == Some(&entry.version) {
                continue;
            }
            let files: Vec<PathBuf> = entry
                .files
                .iter()
                .map(|f| self.dir.root().join(&f.path))
                .collect();
            let chroma = Chroma::parse(&entry.chroma)?;
            let table = ImageTable::open(name, entry.version, chroma, files, self.stats.clone())?;
            self.ctx.deregister_table(name.as_str())?;
            self.ctx.register_table(name.as_str(), Arc::new(table))?;
            reg.tables.insert(name.clone(), entry.version);
        }
        let plain_gone: Vec<String> = reg
            .plain
            .keys()
            .filter(|t| !catalog.plain_tables.contains_key(*t))
            .cloned()
            .collect();
        for t in plain_gone {
            self.ctx.deregister_table(t.as_str())?;
            reg.plain.remove(&t);
        }
        for (name, file) in &catalog.plain_tables {
            if reg.plain.get(name) == Some(&file.path) {
                continue;
            }
            let table = plain::load(&self.dir, file)?;
            self.ctx.deregister_table(name.as_str())?;
            self.ctx.register_table(name.as_str(), Arc::new(table))?;
            reg.plain.insert(name.clone(), file.path.clone());
        }
        let models_gone: Vec<String> = reg
            .models
            .keys()
            .filter(|m| !catalog.models.contains_key(*m))
            .cloned()
            .collect();
        for m in models_gone {
            self.ctx.deregister_udf(&m);
            self.ctx.deregister_udf(&format!("{m}_scores"));
            reg.models.remove(&m);
        }
        for (name, entry) in &catalog.models {
            if reg.models.get(name) == Some(&entry.checksum) {
                continue;
            }
            let handle = Arc::new(ModelHandle::new(&self.dir, name, entry)?);
            for f in model_functions(handle) {
                self.ctx.register_udf(f);
            }
            reg.models.insert(name.clone(), entry.checksum.clone());
        }
        self.ctx.deregister_table(INGEST_ERRORS_TABLE)?;
        self.ctx.register_table(
            INGEST_ERRORS_TABLE,
            Arc::new(ingest_errors_table(&catalog)?),
        )?;
        *self.profiles.write().expect("profiles lock") = catalog.profiles.clone();
        reg.catalog_version = Some(catalog.version);
        drop(reg);
        Ok(catalog)
    }

    /// Runs one of spectradb's statements; `catalog` is the version the
    /// session was just synced to (writers re-read it under their lock).
    async fn run_command(&self, cmd: Command, sql: &str, catalog: &Catalog) -> Result<DataFrame> {
        match cmd {
            Command::CreateImageTable {
                name,
                if_not_exists,
                source,
                options,
            } => {
                if catalog.tables.contains_key(&name) {
                    if if_not_exists {
                        return self.ingest_result(&name, 0, 0);
                    }
                    return Err(Error::InvalidArgument(format!(
                        "image table '{name}' already exists (use INSERT INTO {name} FROM '...' to add images)"
                    )));
                }
                let opts = ingest_options(&options, true)?;
                let r = self.ingest(&name, &source, IngestMode::Create, &opts)?;
                self.ingest_result(&name, r.ingested, r.skipped.len() as u64)
            }
            Command::InsertFrom {
                name,
                source,
                options,
            } => {
                let opts = ingest_options(&options, false)?;
                if !catalog.tables.contains_key(&name) {
                    return Err(Error::InvalidArgument(format!(
                        "no image table named '{name}' (INSERT INTO .. FROM '<files>' adds images to an image table; create one with CREATE IMAGE TABLE)"
                    )));
                }
                let r = self.ingest(&name, &source, IngestMode::Append, &opts)?;
                self.ingest_result(&name, r.ingested, r.skipped.len() as u64)
            }
            Command::DropTable { name, if_exists } => {
                if catalog.tables.contains_key(&name) {
                    self.drop_image_table(&name)?;
                    Ok(self.ctx.read_empty()?)
                } else if name == INGEST_ERRORS_TABLE {
                    Err(Error::InvalidArgument(format!(
                        "{INGEST_ERRORS_TABLE} is a system table and cannot be dropped"
                    )))
                } else {
                    let _ = if_exists; // DataFusion handles IF EXISTS itself
                    self.run_datafusion(sql).await
                }
            }
            Command::ShowTables => self.show_tables().await,
            Command::CreateModel {
                name,
                source,
                options,
            } => {
                self.create_model(&name, Path::new(&source), &options)?;
                Ok(self.ctx.read_empty()?)
            }
            Command::DropModel { name, if_exists } => {
                self.drop_model(&name, if_exists)?;
                Ok(self.ctx.read_empty()?)
            }
            Command::ShowModels => self.show_models(),
            Command::Calibrate {
                model,
                table,
                label_column,
                sample,
            } => {
                let profile = self.calibrate(&model, &table, label_column, sample).await?;
                self.profile_table(&profile)
            }
            Command::ShowFormats { model, table } => self.show_formats(&model, &table, catalog),
            Command::ResetOption { name } => {
                self.reset_option(&name)?;
                Ok(self.ctx.read_empty()?)
            }
        }
    }

    fn ingest_result(&self, table: &str, ingested: u64, skipped: u64) -> Result<DataFrame> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("table", DataType::Utf8, false),
            Field::new("ingested", DataType::UInt64, false),
            Field::new("skipped", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![table])),
                Arc::new(UInt64Array::from(vec![ingested])),
                Arc::new(UInt64Array::from(vec![skipped])),
            ],
        )?;
        Ok(self.ctx.read_batch(batch)?)
    }

    async fn show_tables(&self) -> Result<DataFrame> {
        let catalog = self.dir.read_catalog()?;
        // name, kind, rows, chroma, quality
        type Row<'a> = (String, &'a str, Option<u64>, Option<String>, Option<u8>);
        let mut rows: Vec<Row> = Vec::new();
        for (name, t) in &catalog.tables {
            let n = t.files.iter().map(|f| f.rows).sum();
            rows.push((
                name.clone(),
                "image",
                Some(n),
                Some(t.chroma.clone()),
                Some(t.quality),
            ));
        }
        let state = self.ctx.state();
        let default = &state.config_options().catalog;
        if let Some(schema) = self
            .ctx
            .catalog(&default.default_catalog)
            .and_then(|c| c.schema(&default.default_schema))
        {
            for name in schema.table_names() {
                if catalog.tables.contains_key(&name) || name == INGEST_ERRORS_TABLE {
                    continue;
                }
                let kind = match schema.table(&name).await?.map(|t| t.table_type()) {
                    Some(datafusion::logical_expr::TableType::View) => "view",
                    _ if catalog.definitions.iter().any(|d| d.name == name) => "external",
                    _ => "table",
                };
                let n = catalog.plain_tables.get(&name).map(|f| f.rows);
                rows.push((name, kind, n, None, None));
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("rows", DataType::UInt64, true),
            Field::new("chroma", DataType::Utf8, true),
            Field::new("quality", DataType::UInt8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.2))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.3.clone()))),
                Arc::new(UInt8Array::from_iter(rows.iter().map(|r| r.4))),
            ],
        )?;
        Ok(self.ctx.read_batch(batch)?)
    }
}

/// Image table names become directory names: keep them to identifiers.
fn check_table_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "'{name}' is not a valid image table name: use letters, digits and '_' (not starting with a digit)"
        )))
    }
}

/// Ingest options from `WITH (...)`; `create` allows the layout options.
fn ingest_options(options: &[(String, String)], create: bool) -> Result<IngestOptions> {
    let mut opts = IngestOptions::default();
    for (key, value) in options {
        match key.as_str() {
            "label" => {
                opts.label = match value.to_ascii_lowercase().as_str() {
                    "parent_dir" => Label::ParentDir,
                    "none" => Label::None,
                    _ if value.to_ascii_lowercase().ends_with(".csv") => {
                        Label::Csv(PathBuf::from(value))
                    }
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "label = '{value}': expected 'parent_dir', 'none' or the path of a .csv file of file,label lines"
                        )))
                    }
                }
            }
            "on_error" => {
                opts.on_error = match value.to_ascii_lowercase().as_str() {
                    "fail" => OnError::Fail,
                    "skip" => OnError::Skip,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "on_error = '{value}': expected 'fail' or 'skip'"
                        )))
                    }
                }
            }
            "quality" | "chroma" if !create => {
                return Err(Error::InvalidArgument(format!(
                    "{key} is fixed when the table is created; INSERT INTO uses the table's own"
                )))
            }
            "quality" => {
                opts.source.encode.quality = value
                    .parse::<u8>()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!("quality = '{value}': expected 1..100"))
                    })?;
            }
            "chroma" => opts.source.encode.chroma = Chroma::parse(value)?,
            other => {
                let valid = if create {
                    "label, quality, chroma, on_error"
                } else {
                    "label, on_error"
                };
                return Err(Error::InvalidArgument(format!(
                    "unknown option '{other}' (valid options: {valid})"
                )));
            }
        }
    }
    Ok(opts)
}

fn ingest_errors_table(catalog: &Catalog) -> Result<MemTable> {
    let e = &catalog.ingest_errors;
    let schema = Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("version", DataType::UInt64, false),
        Field::new("uri", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(e.iter().map(|x| &x.table))),
            Arc::new(UInt64Array::from_iter_values(e.iter().map(|x| x.version))),
            Arc::new(StringArray::from_iter_values(e.iter().map(|x| &x.uri))),
            Arc::new(StringArray::from_iter_values(e.iter().map(|x| &x.reason))),
        ],
    )?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}

/// [`Database`] for callers without an async runtime: runs each call to
/// completion on its own runtime and returns record batches.
pub struct BlockingDatabase {
    db: Database,
    runtime: tokio::runtime::Runtime,
}

impl BlockingDatabase {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::wrap(Database::open(path)?)
    }

    pub fn in_memory() -> Result<Self> {
        Self::wrap(Database::in_memory()?)
    }

    fn wrap(db: Database) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start a runtime: {e}")))?;
        Ok(BlockingDatabase { db, runtime })
    }

    /// Runs one statement and collects its result.
    pub fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.runtime.block_on(async {
            let df = self.db.sql(sql).await?;
            Ok(df.collect().await?)
        })
    }

    /// The async database inside.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The runtime calls run on (to drive a DataFrame from [`Self::database`]).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}
