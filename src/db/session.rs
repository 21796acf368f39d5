//! Keeps the session in step with the published catalog: image tables,
//! ordinary tables, views and external tables, model functions, profiles.
//!
//! Loading what changed reads files (table footers, ordinary tables'
//! Parquet, model labels), so statements do it on the blocking pool and
//! only register the result on the async worker.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;

use super::system_tables::ingest_errors_table;
use super::views::{load_view, view_providers};
use super::{off_worker, plain, Database, INGEST_ERRORS_TABLE};
use crate::error::Result;
use crate::model::udf::model_functions;
use crate::model::ModelHandle;
use crate::reuse::cache::ModelCache;
use crate::reuse::views::ViewSource;
use crate::sql::image_scan::ScanStats;
use crate::sql::image_table::{DamagedTable, ImageTable};
use crate::storage::catalog::{Catalog, DatabaseDir, Definition, MaterializedView, ModelEntry};

/// What the session was last built from.
#[derive(Default)]
pub(super) struct Registered {
    pub(super) catalog_version: Option<u64>,
    /// Image table name -> table version registered.
    tables: BTreeMap<String, u64>,
    /// Tables and views registered as damaged: name -> why.
    pub(super) damaged: BTreeMap<String, String>,
    /// Ordinary table name -> the file it was loaded from.
    pub(super) plain: BTreeMap<String, String>,
    /// Views and external tables replayed so far.
    pub(super) definitions: Vec<Definition>,
    /// Model name -> checksum of the model registered.
    models: BTreeMap<String, String>,
    /// Materialized view name -> its files when registered.
    views: BTreeMap<String, String>,
}

/// A table to register: name, what it was loaded from, the provider.
type Provider<V> = (String, V, Arc<dyn TableProvider>);

/// What a catalog version needs that the session lacks, loaded from disk.
struct Loaded {
    catalog: Catalog,
    tables: Vec<(String, u64, ImageTable)>,
    /// Tables and views that could not be loaded, retried at the next
    /// catalog version.
    damaged: Vec<DamagedTable>,
    /// What could not be loaded and is not a table (a model).
    warnings: Vec<String>,
    plain: Vec<(String, String, MemTable)>,
    models: Vec<(String, String, Arc<ModelHandle>)>,
    views: Vec<(String, String, MemTable, ViewSource)>,
}

/// What a materialized view was registered from: its files.
fn view_key(view: &MaterializedView) -> String {
    view.files
        .iter()
        .map(|f| f.path.as_str())
        .collect::<Vec<_>>()
        .join("|")
}

/// The versions registered, to tell what to load.
#[derive(Clone)]
struct Have {
    tables: BTreeMap<String, u64>,
    plain: BTreeMap<String, String>,
    models: BTreeMap<String, String>,
    views: BTreeMap<String, String>,
    /// The registered models' handles (heads need their backbone's).
    handles: BTreeMap<String, Arc<ModelHandle>>,
}

/// Loads what `catalog` lists that `have` lacks (blocking file I/O).
fn load(
    dir: &DatabaseDir,
    stats: &Arc<ScanStats>,
    cache: &Arc<ModelCache>,
    have: &Have,
    catalog: Catalog,
) -> Result<Loaded> {
    let mut tables = Vec::new();
    let mut damaged = Vec::new();
    let mut warnings = Vec::new();
    for (name, entry) in &catalog.tables {
        if have.tables.get(name) == Some(&entry.version) {
            continue;
        }
        // One table's damage fails only the statements that read it.
        match ImageTable::open(name, entry, dir.root(), stats.clone()) {
            Ok(table) => tables.push((name.clone(), entry.version, table)),
            Err(e) => damaged.push(DamagedTable::image(name, &e)),
        }
    }
    let mut plain_tables = Vec::new();
    for (name, file) in &catalog.plain_tables {
        if have.plain.get(name) != Some(&file.path) {
            match plain::load(dir, file) {
                Ok(table) => plain_tables.push((name.clone(), file.path.clone(), table)),
                Err(e) => damaged.push(DamagedTable::plain(name, &e)),
            }
        }
    }
    // Backbones before their heads: a head's handle holds its backbone's.
    let mut models: Vec<(String, String, Arc<ModelHandle>)> = Vec::new();
    let mut order: Vec<(&String, &ModelEntry)> = catalog.models.iter().collect();
    order.sort_by_key(|(_, e)| e.backbone.is_some());
    for (name, entry) in order {
        let backbone_reloaded = entry
            .backbone
            .as_ref()
            .is_some_and(|b| models.iter().any(|(n, _, _)| n == b));
        if have.models.get(name) == Some(&entry.checksum) && !backbone_reloaded {
            continue;
        }
        let backbone = entry.backbone.as_ref().and_then(|b| {
            models
                .iter()
                .find(|(n, _, _)| n == b)
                .map(|(_, _, h)| h.clone())
                .or_else(|| have.handles.get(b).cloned())
        });
        // A model whose files are damaged is left out with a warning:
        // statements that do not call it keep working.
        match ModelHandle::new(dir, name, entry, Some(cache.clone()), backbone) {
            Ok(handle) => models.push((name.clone(), entry.checksum.clone(), Arc::new(handle))),
            Err(e) => warnings.push(format!("model '{name}' could not be loaded: {e}")),
        }
    }
    let mut views = Vec::new();
    for (name, view) in &catalog.materialized_views {
        let key = view_key(view);
        if have.views.get(name) != Some(&key) {
            let loaded = load_view(dir, view)
                .and_then(|(schema, batches)| view_providers(name, view, schema, batches));
            match loaded {
                Ok((table, source)) => views.push((name.clone(), key, table, source)),
                Err(e) => damaged.push(DamagedTable::plain(name, &e)),
            }
        }
    }
    Ok(Loaded {
        catalog,
        tables,
        damaged,
        warnings,
        plain: plain_tables,
        models,
        views,
    })
}

impl Database {
    fn have(&self) -> Have {
        let handles = self
            .model_handles()
            .into_iter()
            .map(|h| (h.name.clone(), h))
            .collect();
        let reg = self.registered.lock().expect("registry lock");
        Have {
            tables: reg.tables.clone(),
            plain: reg.plain.clone(),
            models: reg.models.clone(),
            views: reg.views.clone(),
            handles,
        }
    }

    fn is_current(&self, version: u64) -> bool {
        let reg = self.registered.lock().expect("registry lock");
        reg.catalog_version.is_some_and(|v| v >= version)
    }

    /// Brings the session up to the published catalog and returns it
    /// (blocking: for the synchronous API).
    pub(super) fn refresh(&self) -> Result<Catalog> {
        let catalog = self.dir.read_catalog()?;
        self.sync(&catalog)?;
        Ok(catalog)
    }

    /// [`Self::refresh`] with the file I/O on the blocking pool.
    pub(super) async fn refresh_async(&self) -> Result<Catalog> {
        let dir = self.dir.clone();
        let catalog = off_worker(move || dir.read_catalog()).await?;
        self.sync_async(catalog.clone()).await?;
        Ok(catalog)
    }

    /// [`Self::sync`] with the file I/O on the blocking pool.
    pub(super) async fn sync_async(&self, catalog: Catalog) -> Result<()> {
        if self.is_current(catalog.version) {
            return Ok(());
        }
        let (dir, stats, cache) = (
            self.dir.clone(),
            self.stats.clone(),
            self.reuse.cache.clone(),
        );
        let have = self.have();
        let loaded = off_worker(move || load(&dir, &stats, &cache, &have, catalog)).await?;
        self.register(loaded)
    }

    /// Brings the session up to `catalog` (a version just published or read).
    pub(super) fn sync(&self, catalog: &Catalog) -> Result<()> {
        if self.is_current(catalog.version) {
            return Ok(());
        }
        let have = self.have();
        self.register(load(
            &self.dir,
            &self.stats,
            &self.reuse.cache,
            &have,
            catalog.clone(),
        )?)
    }

    /// Registers what was loaded and forgets what the catalog dropped. A
    /// version older than the one registered (a slower concurrent refresh)
    /// is ignored.
    fn register(&self, loaded: Loaded) -> Result<()> {
        let Loaded {
            catalog,
            tables,
            damaged,
            warnings,
            plain,
            models,
            views,
        } = loaded;
        let mut reg = self.registered.lock().expect("registry lock");
        if reg.catalog_version.is_some_and(|v| v >= catalog.version) {
            return Ok(());
        }
        for w in warnings {
            self.warn(w);
        }
        let reg = &mut *reg;
        // Damaged tables are tried again at every version: forget them.
        for name in std::mem::take(&mut reg.damaged).into_keys() {
            let taken = catalog.plain_tables.contains_key(&name)
                || catalog.materialized_views.contains_key(&name);
            if !taken {
                self.ctx.deregister_table(name.as_str())?;
            }
        }
        for table in damaged {
            let name = table.name().to_string();
            reg.tables.remove(&name);
            reg.plain.remove(&name);
            reg.views.remove(&name);
            reg.damaged.insert(name.clone(), table.reason().to_string());
            self.ctx.deregister_table(name.as_str())?;
            self.ctx.register_table(name.as_str(), Arc::new(table))?;
        }
        let image: Vec<Provider<u64>> = tables
            .into_iter()
            .map(|(n, v, t)| {
                // A new version of the table: damage found in the old one
                // is the old files' (a restored or rewritten table is
                // checked again by reading it).
                self.stats.clear_damage(&n);
                (n, v, Arc::new(t) as Arc<dyn TableProvider>)
            })
            .collect();
        self.swap_tables(
            &mut reg.tables,
            |t| catalog.tables.contains_key(t),
            |t| catalog.plain_tables.contains_key(t) || catalog.materialized_views.contains_key(t),
            image,
        )?;
        let plain: Vec<Provider<String>> = plain
            .into_iter()
            .map(|(n, p, t)| (n, p, Arc::new(t) as Arc<dyn TableProvider>))
            .collect();
        self.swap_tables(
            &mut reg.plain,
            |t| catalog.plain_tables.contains_key(t),
            |t| catalog.tables.contains_key(t) || catalog.materialized_views.contains_key(t),
            plain,
        )?;
        let mut sources: Vec<Arc<ViewSource>> = Vec::new();
        let view_tables: Vec<Provider<String>> = views
            .into_iter()
            .map(|(n, k, t, source)| {
                sources.push(Arc::new(source));
                (n, k, Arc::new(t) as Arc<dyn TableProvider>)
            })
            .collect();
        self.swap_tables(
            &mut reg.views,
            |t| catalog.materialized_views.contains_key(t),
            |t| catalog.tables.contains_key(t) || catalog.plain_tables.contains_key(t),
            view_tables,
        )?;
        {
            let mut known = self.reuse.views.write().expect("views lock");
            known.retain(|v| {
                catalog.materialized_views.contains_key(&v.name)
                    && !sources.iter().any(|s| s.name == v.name)
            });
            known.extend(sources);
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
        for (name, checksum, handle) in models {
            for f in model_functions(handle) {
                self.ctx.register_udf(f);
            }
            reg.models.insert(name, checksum);
        }
        self.ctx.deregister_table(INGEST_ERRORS_TABLE)?;
        self.ctx.register_table(
            INGEST_ERRORS_TABLE,
            Arc::new(ingest_errors_table(&catalog)?),
        )?;
        *self.profiles.write().expect("profiles lock") = catalog.profiles.clone();
        reg.catalog_version = Some(catalog.version);
        Ok(())
    }

    /// Forgets the tables of `have` that `keep` rejects and registers `new`
    /// ones, recording what each was loaded from. A forgotten name that
    /// the catalog now gives another kind of table (`CREATE OR REPLACE
    /// TABLE` over an image table) stays registered: it is that table now.
    fn swap_tables<V>(
        &self,
        have: &mut BTreeMap<String, V>,
        keep: impl Fn(&str) -> bool,
        taken_elsewhere: impl Fn(&str) -> bool,
        new: Vec<Provider<V>>,
    ) -> Result<()> {
        let gone: Vec<String> = have.keys().filter(|t| !keep(t)).cloned().collect();
        for t in gone {
            if !taken_elsewhere(&t) {
                self.ctx.deregister_table(t.as_str())?;
            }
            have.remove(&t);
        }
        for (name, loaded_from, table) in new {
            self.ctx.deregister_table(name.as_str())?;
            self.ctx.register_table(name.as_str(), table)?;
            have.insert(name, loaded_from);
        }
        Ok(())
    }

    /// Makes the next refresh reload every ordinary table and replay every
    /// definition from the published catalog: after a kept statement
    /// failed half-way, the session may hold changes that were not kept
    /// (`touched`: the tables it may have created or changed).
    pub(super) fn forget_kept_tables(&self, touched: &[String]) {
        let mut reg = self.registered.lock().expect("registry lock");
        for name in touched {
            let _ = self.ctx.deregister_table(name.as_str());
            reg.plain.remove(name);
        }
        for path in reg.plain.values_mut() {
            path.clear(); // no file has an empty path: reloaded
        }
        reg.catalog_version = None;
        reg.definitions.clear();
    }

    /// Replays the catalog's views and external tables the session lacks.
    pub(super) async fn restore_definitions(&self, catalog: &Catalog) {
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
                self.warn(format!("could not restore '{}' ({}): {e}", d.name, d.sql));
            }
        }
        self.registered.lock().expect("registry lock").definitions = catalog.definitions.clone();
    }
}
