//! The DataFusion view of an image table: a [`TableProvider`] over the data
//! files of one catalog version.
//!
//! SQL sees the plain columns (`id`, `uri`, `width`, `height`, user columns
//! such as `label`) and one `image` column. Only a scan that projects
//! `image` reads band columns; it decodes them and hands each row on as an
//! image value ([`crate::image_value`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result as DfResult};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use super::image_scan::{
    split_ranges, ImageScanExec, ReadPlan, RowFilter, ScanOptions, ScanSource, ScanStats,
    IMAGE_COLUMN,
};
use crate::codec::Chroma;
use crate::error::{Error, Result};
use crate::storage::catalog::TableEntry;
use crate::storage::layout::{COL_HEIGHT, COL_ID, COL_URI, COL_WIDTH};
use crate::storage::{remote, BandSelection, ImageFileReader, DEFAULT_PAGE_ROWS};

/// Rows rebuilt per batch when the image column is read (image values are
/// large: a 512x512 photo with every band is ~0.8 MB).
const IMAGE_BATCH_ROWS: usize = 32;

/// One image table at one catalog version.
#[derive(Debug, Clone)]
pub struct ImageTable {
    pub(crate) name: String,
    /// Catalog version of the table's last change (profiles are tied to it).
    pub(crate) version: u64,
    /// Identity fixed at CREATE (cache keys and views are tied to it).
    pub(crate) uid: u64,
    pub(crate) chroma: Chroma,
    pub(crate) schema: SchemaRef,
    pub(crate) files: Vec<PathBuf>,
    /// Rows of each file, from the catalog.
    pub(crate) file_rows: Vec<usize>,
    pub(crate) stats: Arc<ScanStats>,
    /// Smallest stored width and height (the planner's design space).
    pub(crate) min_dims: (u32, u32),
    /// The format planner's band choice; `None` reads every band when
    /// `image` is projected.
    pub(crate) read: Option<Arc<ReadPlan>>,
    /// For a table on object storage: its location and the store options
    /// that hold no secret (a process scanning it elsewhere configures
    /// the store from them).
    pub(crate) store: Option<(String, BTreeMap<String, String>)>,
    /// Set where a cluster's scheduler plans the scan: its partitions'
    /// work travels as a child the scheduler can slice per task (see
    /// [`ImageScanExec::with_work_units`]).
    pub(crate) work_units: bool,
}

impl ImageTable {
    /// The table `name` as `entry` lists it, its files under `root`. The
    /// catalog's per-file statistics give the user columns (the union over
    /// files: a file without one reads it as null) and the smallest image,
    /// so no file is read; each local file is only checked to be there
    /// with its size. Files of catalogs written before statistics were kept have
    /// their footers and plain columns read instead.
    pub fn open(
        name: &str,
        entry: &TableEntry,
        root: &Path,
        stats: Arc<ScanStats>,
    ) -> Result<Self> {
        let chroma = Chroma::parse(&entry.chroma)?;
        if let Some(location) = &entry.location {
            remote::configure_defaults(location, &entry.store_options)?;
        }
        let mut fields = vec![
            Field::new(COL_ID, DataType::UInt64, false),
            Field::new(COL_URI, DataType::Utf8, false),
            Field::new(COL_WIDTH, DataType::UInt32, false),
            Field::new(COL_HEIGHT, DataType::UInt32, false),
        ];
        let mut files = Vec::with_capacity(entry.files.len());
        let mut file_rows = Vec::with_capacity(entry.files.len());
        let mut min_dims: Option<(u32, u32)> = None;
        for file in &entry.files {
            let path = remote::locate(root, &file.path);
            // An object is not asked for here: a store that is down or
            // refuses the credentials now would mark the table damaged
            // until the next commit; a scan's open names the object instead.
            let on_disk = match remote::is_remote(&path) {
                true => file.bytes,
                false => remote::file_size(&path)?,
            };
            if on_disk != file.bytes {
                return Err(Error::corrupt(
                    &path,
                    format!(
                        "{on_disk} bytes stored, the catalog says {}: the file was changed or cut",
                        file.bytes
                    ),
                ));
            }
            let file_stats = match &file.stats {
                Some(s) => s.clone(),
                None => ImageFileReader::open(&path)?.file_stats()?,
            };
            if let (Some((w, _)), Some((h, _))) = (file_stats.width, file_stats.height) {
                min_dims = Some(min_dims.map_or((w, h), |(x, y)| (x.min(w), y.min(h))));
            }
            for c in &file_stats.columns {
                if fields.iter().any(|g| g.name() == &c.name) {
                    continue;
                }
                let data_type = DataType::from_str(&c.data_type).map_err(|e| {
                    Error::corrupt(
                        &path,
                        format!("column {}: type '{}': {e}", c.name, c.data_type),
                    )
                })?;
                fields.push(Field::new(&c.name, data_type, true));
            }
            files.push(path);
            file_rows.push(file.rows as usize);
        }
        fields.push(Field::new(IMAGE_COLUMN, DataType::LargeBinary, true));
        Ok(ImageTable {
            name: name.to_string(),
            version: entry.version,
            uid: entry.identity(name),
            chroma,
            schema: Arc::new(Schema::new(fields)),
            files,
            file_rows,
            stats,
            min_dims: min_dims.unwrap_or((0, 0)),
            read: None,
            store: entry
                .location
                .clone()
                .map(|l| (l, entry.store_options.clone())),
            work_units: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The table's identity (see `TableEntry::uid`).
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// This table as the reuse module knows it.
    pub fn reuse_ref(&self) -> crate::reuse::TableRef<'_> {
        crate::reuse::TableRef {
            name: self.name(),
            uid: self.uid(),
        }
    }

    pub fn chroma(&self) -> Chroma {
        self.chroma
    }

    /// Whether SQL sees a column named `name`.
    pub fn schema_has_column(&self, name: &str) -> bool {
        self.schema.index_of(name).is_ok()
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The planner's read plan, if one was pushed into this scan.
    pub fn read_plan(&self) -> Option<&ReadPlan> {
        self.read.as_deref()
    }

    /// A copy of this table whose scans read only `plan`'s bands.
    pub fn with_read_plan(&self, plan: ReadPlan) -> Self {
        ImageTable {
            read: Some(Arc::new(plan)),
            ..self.clone()
        }
    }

    /// Smallest width and height over the table's images ((0, 0) for an
    /// empty table), from the catalog's statistics.
    pub fn min_dims(&self) -> (u32, u32) {
        self.min_dims
    }
}

impl ImageTable {
    /// The pushed-down filters as one predicate over the table's columns
    /// (the scan evaluates it on batches where `image` is null).
    fn row_filter(&self, state: &dyn Session, expr: Expr) -> DfResult<RowFilter> {
        // The table's schema is unqualified; so are the columns it resolves.
        let expr = expr
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) if c.relation.is_some() => {
                        Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                    }
                    e => Transformed::no(e),
                })
            })?
            .data;
        // Columns the predicate does not read are null in its batches.
        let schema = Arc::new(Schema::new(
            self.schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let predicate = state.create_physical_expr(expr.clone(), &df_schema)?;
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| expr.column_refs().iter().any(|c| &c.name == n))
            .collect();
        Ok(RowFilter {
            display: expr.to_string(),
            predicate,
            schema,
            columns,
        })
    }
}

#[async_trait]
impl TableProvider for ImageTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters on plain columns are evaluated by the scan before any band
    /// is read: rows they drop are never decoded, and a LIMIT above stops
    /// the scan once enough rows matched. The scan applies them exactly
    /// (DataFusion's own physical expression, on every row it reads).
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        filters
            .iter()
            .map(|f| {
                let plain = f
                    .column_refs()
                    .iter()
                    .all(|c| c.name != IMAGE_COLUMN && self.schema.index_of(&c.name).is_ok());
                // Subqueries and parameters are not plain expressions yet.
                let unbound = f.exists(|e| {
                    Ok(matches!(
                        e,
                        Expr::Placeholder(_)
                            | Expr::ScalarSubquery(_)
                            | Expr::Exists(_)
                            | Expr::InSubquery(_)
                            | Expr::OuterReferenceColumn(..)
                    ))
                })?;
                Ok(if plain && !unbound && !f.is_volatile() {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                })
            })
            .collect()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let projected = Arc::new(self.schema.project(&indices)?);
        let with_image = projected.index_of(IMAGE_COLUMN).is_ok();
        let plan = match (&self.read, with_image) {
            (_, false) => ReadPlan {
                bands: BandSelection::none(),
                notes: Vec::new(),
                slots: Vec::new(),
            },
            (Some(plan), true) => plan.as_ref().clone(),
            (None, true) => ReadPlan {
                bands: BandSelection::all(),
                notes: Vec::new(),
                slots: Vec::new(),
            },
        };
        let filter = match conjunction(filters.iter().cloned()) {
            Some(expr) => Some(self.row_filter(state, expr)?),
            None => None,
        };
        let target = state.config().target_partitions().max(1);
        let files: Vec<(PathBuf, usize)> = self
            .files
            .iter()
            .cloned()
            .zip(self.file_rows.iter().copied())
            .collect();
        let groups = split_ranges(&files, target, DEFAULT_PAGE_ROWS);
        let batch_size = if with_image {
            IMAGE_BATCH_ROWS
        } else {
            state.config().batch_size()
        };
        let source = ScanSource {
            table: self.name.clone(),
            uid: self.uid,
            chroma: self.chroma,
            groups,
            stats: self.stats.clone(),
            store: self.store.clone(),
        };
        let options = ScanOptions {
            filter,
            batch_size,
            limit,
        };
        let scan = ImageScanExec::new(source, projected, plan, options);
        Ok(Arc::new(if self.work_units {
            scan.with_work_units()?
        } else {
            scan
        }))
    }
}

/// A kept table that could not be loaded (a file missing, cut or with a
/// damaged footer). It keeps its name in the session so that statements
/// reading it fail with the reason, while every other table stays usable.
#[derive(Debug, Clone)]
pub struct DamagedTable {
    name: String,
    reason: String,
    schema: SchemaRef,
}

impl DamagedTable {
    /// Image table `name` failed to load with `error`: it shows the
    /// columns every image table has.
    pub fn image(name: &str, error: &Error) -> Self {
        let schema = Schema::new(vec![
            Field::new(COL_ID, DataType::UInt64, false),
            Field::new(COL_URI, DataType::Utf8, false),
            Field::new(COL_WIDTH, DataType::UInt32, false),
            Field::new(COL_HEIGHT, DataType::UInt32, false),
            Field::new(IMAGE_COLUMN, DataType::LargeBinary, true),
        ]);
        Self::with_schema(name, error, Arc::new(schema))
    }

    /// An ordinary table or view `name` failed to load (its columns are
    /// in the file that failed): `SELECT *` reports why.
    pub fn plain(name: &str, error: &Error) -> Self {
        Self::with_schema(name, error, Arc::new(Schema::empty()))
    }

    fn with_schema(name: &str, error: &Error, schema: SchemaRef) -> Self {
        DamagedTable {
            name: name.to_string(),
            reason: error.to_string(),
            schema,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why the table could not be loaded.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The error a statement reading the table fails with.
    pub fn error(&self) -> Error {
        Error::DamagedTable {
            table: self.name.clone(),
            reason: self.reason.clone(),
        }
    }
}

#[async_trait]
impl TableProvider for DamagedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(self.error().into())
    }
}
