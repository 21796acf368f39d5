//! Statements that change the database. Each runs as one
//! [`Transaction`] on the blocking pool (taking the lock, decoding and
//! fsync are blocking work) and the session syncs to the version it
//! published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::TableType;

use super::{off_worker, Database, CACHE_TABLE, INGEST_ERRORS_TABLE};
use crate::error::{Error, Result};
use crate::ingest::{expand_sources, ingest, IngestOptions, IngestReport};
use crate::model::{prepare_family, prepare_model, ModelHandle, PreparedModel};
use crate::read_format::model_spec::MemberSource;
use crate::storage::catalog::Catalog;
use crate::storage::commit::{Purged, Transaction};

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

/// What `VACUUM` deleted.
pub type VacuumReport = Purged;

/// One ingest, ready to run anywhere (it owns what it needs).
struct IngestJob {
    table: String,
    mode: IngestMode,
    /// A glob or a directory, expanded when the job runs (walking a large
    /// folder is blocking work too).
    source: String,
    opts: IngestOptions,
    progress: Option<Arc<dyn IngestProgress>>,
}

impl IngestJob {
    fn run(self, tx: &mut Transaction) -> Result<IngestReport> {
        let files = expand_sources(&self.source)?;
        let progress = self.progress;
        if let Some(p) = &progress {
            let bytes = files
                .iter()
                .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
                .sum();
            p.start(&self.table, files.len() as u64, bytes);
        }
        let tick = |b: u64| {
            if let Some(p) = &progress {
                p.advance(b)
            }
        };
        let create = self.mode == IngestMode::Create;
        let report = ingest(tx, &self.table, create, &files, &self.opts, &tick);
        match (&report, &progress) {
            (Ok(r), Some(p)) => p.finish(r),
            (Err(_), Some(p)) => p.abandon(),
            _ => {}
        }
        report
    }
}

impl Database {
    /// Runs `change` in one transaction on the blocking pool, commits it
    /// and syncs the session to the version it published.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Transaction) -> Result<T> + Send + 'static,
    ) -> Result<(T, Purged)> {
        let dir = self.dir.clone();
        let (value, catalog, purged) = off_worker(move || {
            let mut tx = dir.begin()?;
            let value = change(&mut tx)?;
            let (catalog, purged) = tx.commit()?;
            Ok((value, catalog, purged))
        })
        .await?;
        self.sync_async(catalog).await?;
        Ok((value, purged))
    }

    /// [`Self::write`] for the synchronous API: runs on the calling thread.
    fn write_blocking<T>(&self, change: impl FnOnce(&mut Transaction) -> Result<T>) -> Result<T> {
        let mut tx = self.dir.begin()?;
        let value = change(&mut tx)?;
        let (catalog, _) = tx.commit()?;
        self.sync(&catalog)?;
        Ok(value)
    }

    /// Sets (or clears) the receiver of ingest progress.
    pub fn set_progress(&self, progress: Option<Arc<dyn IngestProgress>>) {
        *self.progress.lock().expect("progress lock") = progress;
    }

    /// `catalog`: the version the caller's session is on (to tell an image
    /// table from a DataFusion one of the same name).
    fn ingest_job(
        &self,
        catalog: &Catalog,
        table: &str,
        source: &str,
        mode: IngestMode,
        opts: &IngestOptions,
    ) -> Result<IngestJob> {
        check_table_name(table)?;
        if mode == IngestMode::Create
            && !catalog.tables.contains_key(table)
            && self.ctx.table_exist(table)?
        {
            return Err(Error::InvalidArgument(format!(
                "a table named '{table}' already exists (not an image table)"
            )));
        }
        Ok(IngestJob {
            table: table.to_string(),
            mode,
            source: source.to_string(),
            opts: opts.clone(),
            progress: self.progress.lock().expect("progress lock").clone(),
        })
    }

    /// Ingests the files matching `source` (a glob or a directory) into
    /// image table `table`, creating it or appending to it. Blocks; from
    /// async code use `CREATE IMAGE TABLE` / `INSERT INTO .. FROM` through
    /// [`Database::sql`], which decode on the blocking pool.
    pub fn ingest(
        &self,
        table: &str,
        source: &str,
        mode: IngestMode,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let job = self.ingest_job(&self.dir.read_catalog()?, table, source, mode, opts)?;
        self.write_blocking(|tx| job.run(tx))
    }

    pub(super) async fn ingest_async(
        &self,
        catalog: &Catalog,
        table: &str,
        source: &str,
        mode: IngestMode,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let job = self.ingest_job(catalog, table, source, mode, opts)?;
        Ok(self.write(|tx| job.run(tx)).await?.0)
    }

    /// Checks a new model's name against the session's functions.
    fn check_model_name(&self, catalog: &Catalog, name: &str) -> Result<()> {
        check_table_name(name).map_err(|_| {
            Error::InvalidArgument(format!(
                "'{name}' is not a valid model name: use letters, digits and '_' (not starting with a digit)"
            ))
        })?;
        if !catalog.models.contains_key(name)
            && (self.ctx.udf(name).is_ok() || self.ctx.udf(&format!("{name}_scores")).is_ok())
        {
            return Err(Error::InvalidArgument(format!(
                "a function named '{name}' already exists: choose another model name"
            )));
        }
        Ok(())
    }

    /// Registers an ONNX model as the SQL functions `name(image)` and
    /// `name_scores(image)` (see [`crate::model`] for the options).
    pub fn create_model(
        &self,
        name: &str,
        source: &Path,
        options: &[(String, String)],
    ) -> Result<()> {
        self.check_model_name(&self.dir.read_catalog()?, name)?;
        let options: BTreeMap<String, String> = options.iter().cloned().collect();
        let prepared = self.write_blocking(|tx| add_model(tx, name, source, &options, None))?;
        self.keep_loaded(name, prepared);
        Ok(())
    }

    /// `CREATE MODEL name FROM 'file' [ON FEATURES OF backbone] [WITH (...)]`.
    pub(super) async fn create_model_async(
        &self,
        catalog: &Catalog,
        name: String,
        source: PathBuf,
        backbone: Option<String>,
        options: Vec<(String, String)>,
    ) -> Result<()> {
        self.check_model_name(catalog, &name)?;
        let backbone = match backbone {
            Some(b) => Some(self.model_handle(&b)?),
            None => None,
        };
        let options: BTreeMap<String, String> = options.into_iter().collect();
        let registered = name.clone();
        let (prepared, _) = self
            .write(move |tx| add_model(tx, &name, &source, &options, backbone.as_deref()))
            .await?;
        self.keep_loaded(&registered, prepared);
        Ok(())
    }

    /// Registers a model family as one SQL function (`name(image)`,
    /// `name_scores(image)`) whose members each take their own read format;
    /// the planner picks the member per query once `CALIBRATE` measured them.
    pub fn create_model_family(
        &self,
        name: &str,
        members: &[MemberSource],
        options: &[(String, String)],
    ) -> Result<()> {
        self.check_model_name(&self.dir.read_catalog()?, name)?;
        let options: BTreeMap<String, String> = options.iter().cloned().collect();
        let prepared = self.write_blocking(|tx| add_family(tx, name, members, &options))?;
        self.keep_loaded(name, prepared);
        Ok(())
    }

    /// `CREATE MODEL name FAMILY (FORMAT '..' FROM '..', ...) [WITH (...)]`.
    pub(super) async fn create_model_family_async(
        &self,
        catalog: &Catalog,
        name: String,
        members: Vec<MemberSource>,
        options: Vec<(String, String)>,
    ) -> Result<()> {
        self.check_model_name(catalog, &name)?;
        let options: BTreeMap<String, String> = options.into_iter().collect();
        let registered = name.clone();
        let (prepared, _) = self
            .write(move |tx| add_family(tx, &name, &members, &options))
            .await?;
        self.keep_loaded(&registered, prepared);
        Ok(())
    }

    /// Hands the model CREATE MODEL checked to the handle the session
    /// registered for it: its first query runs those sessions instead of
    /// loading the file again.
    fn keep_loaded(&self, name: &str, prepared: PreparedModel) {
        if let Ok(handle) = self.model_handle(name) {
            handle.adopt(&prepared.entry, Arc::new(prepared.model));
        }
    }

    /// Removes a model and its functions.
    pub fn drop_model(&self, name: &str, if_exists: bool) -> Result<()> {
        self.write_blocking(|tx| remove_model(tx, name, if_exists))
    }

    pub(super) async fn drop_model_async(&self, name: String, if_exists: bool) -> Result<()> {
        self.write(move |tx| remove_model(tx, &name, if_exists))
            .await
            .map(|_| ())
    }

    /// Drops image table `table`: publishes a catalog without it; its
    /// files stay for older snapshots until they are purged.
    pub fn drop_image_table(&self, table: &str) -> Result<()> {
        self.write_blocking(|tx| {
            if !tx.catalog().tables.contains_key(table) {
                return Err(Error::InvalidArgument(format!(
                    "no image table named '{table}'"
                )));
            }
            remove_tables(tx, &[table.to_string()]);
            Ok(())
        })
    }

    /// `DROP TABLE [IF EXISTS] a, b, ...`: image tables, ordinary tables
    /// and external tables, all in one commit. Every name is checked
    /// before anything is dropped.
    pub(super) async fn drop_tables(
        &self,
        catalog: &Catalog,
        names: Vec<String>,
        if_exists: bool,
    ) -> Result<()> {
        let mut drop = Vec::new();
        for name in names {
            if name == INGEST_ERRORS_TABLE || name == CACHE_TABLE {
                return Err(Error::InvalidArgument(format!(
                    "{name} is a system table and cannot be dropped"
                )));
            }
            if catalog.tables.contains_key(&name) {
                drop.push(name);
                continue;
            }
            if catalog.materialized_views.contains_key(&name) {
                return Err(Error::InvalidArgument(format!(
                    "'{name}' is a materialized view: use DROP MATERIALIZED VIEW {name}"
                )));
            }
            match self.ctx.table_provider(name.as_str()).await {
                Ok(t) if t.table_type() == TableType::View => {
                    return Err(Error::InvalidArgument(format!(
                        "'{name}' is a view: use DROP VIEW {name}"
                    )))
                }
                Ok(_) => drop.push(name),
                Err(_) if if_exists => {}
                Err(_) => {
                    return Err(Error::InvalidArgument(format!(
                        "no table named '{name}' (SHOW TABLES lists them)"
                    )))
                }
            }
        }
        drop.sort();
        drop.dedup();
        if drop.is_empty() {
            return Ok(());
        }
        let names = drop.clone();
        self.write(move |tx| {
            remove_tables(tx, &names);
            Ok(())
        })
        .await?;
        for name in &drop {
            // Ordinary tables of in-memory databases live only in the
            // session; views over dropped tables report when used.
            self.ctx.deregister_table(name.as_str())?;
        }
        Ok(())
    }

    /// `VACUUM [RETAIN ...]`: deletes files that no version newer than the
    /// retention period lists. Queries still reading an older version
    /// than that may then fail to open their files.
    pub async fn vacuum(&self, retain: Option<Duration>) -> Result<VacuumReport> {
        let retain = retain.unwrap_or(crate::storage::commit::DEFAULT_RETENTION);
        Ok(self
            .write(move |tx| {
                tx.set_retention(retain);
                Ok(())
            })
            .await?
            .1)
    }
}

fn add_model(
    tx: &mut Transaction,
    name: &str,
    source: &Path,
    options: &BTreeMap<String, String>,
    backbone: Option<&ModelHandle>,
) -> Result<PreparedModel> {
    check_new_model(tx, name)?;
    if let Some(b) = backbone {
        if !b.entry.members.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "model '{}' is a model family: a head (ON FEATURES OF) needs one backbone model",
                b.name
            )));
        }
        // The session's handle must still be the published backbone.
        let current = tx.catalog().models.get(&b.name).map(|e| &e.checksum);
        if current != Some(&b.entry.checksum) {
            return Err(Error::InvalidArgument(format!(
                "model '{}' changed while CREATE MODEL {name} ran: try again",
                b.name
            )));
        }
    }
    let prepared = prepare_model(tx, name, source, options, backbone)?;
    tx.catalog_mut()
        .models
        .insert(name.to_string(), prepared.entry.clone());
    Ok(prepared)
}

fn check_new_model(tx: &Transaction, name: &str) -> Result<()> {
    if tx.catalog().models.contains_key(name) {
        return Err(Error::InvalidArgument(format!(
            "model '{name}' already exists (DROP MODEL {name} first)"
        )));
    }
    Ok(())
}

fn add_family(
    tx: &mut Transaction,
    name: &str,
    members: &[MemberSource],
    options: &BTreeMap<String, String>,
) -> Result<PreparedModel> {
    check_new_model(tx, name)?;
    let prepared = prepare_family(tx, name, members, options)?;
    tx.catalog_mut()
        .models
        .insert(name.to_string(), prepared.entry.clone());
    Ok(prepared)
}

fn remove_model(tx: &mut Transaction, name: &str, if_exists: bool) -> Result<()> {
    let heads: Vec<&String> = tx
        .catalog()
        .models
        .iter()
        .filter(|(_, e)| e.backbone.as_deref() == Some(name))
        .map(|(n, _)| n)
        .collect();
    if !heads.is_empty() {
        let list = heads
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::InvalidArgument(format!(
            "model '{name}' is the backbone of {list} (CREATE MODEL .. ON FEATURES OF {name}): drop those first"
        )));
    }
    let Some(entry) = tx.catalog_mut().models.remove(name) else {
        return if if_exists {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!("no model named '{name}'")))
        };
    };
    tx.catalog_mut().profiles.retain(|p| p.model != name);
    for file in entry.files() {
        tx.retire(file);
    }
    Ok(())
}

/// Removes tables (image, ordinary or external) from the catalog and
/// retires their files; names the catalog does not hold are skipped.
pub(super) fn remove_tables(tx: &mut Transaction, names: &[String]) {
    for name in names {
        let catalog = tx.catalog_mut();
        catalog.ingest_errors.retain(|e| &e.table != name);
        catalog.profiles.retain(|p| &p.table != name);
        catalog.definitions.retain(|d| &d.name != name);
        let mut files: Vec<String> = Vec::new();
        if let Some(entry) = catalog.tables.remove(name) {
            files.extend(entry.files.into_iter().map(|f| f.path));
        }
        if let Some(file) = catalog.plain_tables.remove(name) {
            files.push(file.path);
        }
        for f in files {
            tx.retire(&f);
        }
    }
}

/// Image table names become directory names: keep them to identifiers.
pub(super) fn check_table_name(name: &str) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use crate::Database;

    const MODELS: &str = "tests/data/models";

    fn rows(db: &Database, rt: &tokio::runtime::Runtime, sql: &str) -> usize {
        let batches = rt.block_on(async { db.sql(sql).await.unwrap().collect().await.unwrap() });
        batches.iter().map(|b| b.num_rows()).sum()
    }

    /// CREATE MODEL loads the model to check it; that load, the handle
    /// registered with it, is what the first query runs (SQL, the blocking
    /// API and a head alike), not a second load on first use.
    #[test]
    fn the_first_query_runs_the_model_create_model_loaded() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = Database::in_memory().unwrap();
        let sql = |sql: &str| rows(&db, &rt, sql);
        // Every query computes: tiny_api's outputs are not tiny's cached ones.
        sql("SET spectradb.cache_size = 0");
        sql("CREATE IMAGE TABLE colors FROM 'tests/data/colors'");
        sql(&format!(
            "CREATE MODEL tiny FROM '{MODELS}/tiny_rgb.onnx' \
             WITH (labels = '{MODELS}/tiny_rgb_labels.txt')"
        ));
        db.create_model("tiny_api", &Path::new(MODELS).join("tiny_rgb.onnx"), &[])
            .unwrap();
        sql(&format!(
            "CREATE MODEL backbone FROM '{MODELS}/mobilenet_v2_backbone.onnx' WITH (size = 224, \
             mean = '0.485,0.456,0.406', std = '0.229,0.224,0.225', output = 'embedding')"
        ));
        sql(&format!(
            "CREATE MODEL head FROM '{MODELS}/mobilenet_v2_head.onnx' \
             ON FEATURES OF backbone WITH (output = 'class')"
        ));
        for name in ["tiny", "tiny_api", "backbone", "head"] {
            let handle = db.model_handle(name).unwrap();
            let created = handle
                .loaded()
                .unwrap_or_else(|| panic!("{name}: the model CREATE MODEL loaded was dropped"));
            assert_eq!(sql(&format!("SELECT {name}(image) FROM colors")), 3);
            let registered = db.model_handle(name).unwrap();
            assert!(Arc::ptr_eq(&handle, &registered), "{name}: handle replaced");
            let ran = registered.stats.snapshot().images;
            assert_eq!(ran, 3, "{name} ran on its handle");
            let used = registered.loaded().expect("loaded");
            assert!(Arc::ptr_eq(&created, &used), "{name}: loaded a second time");
        }
    }
}
