//! The DataFusion view of an image table: a [`TableProvider`] over the data
//! files of one catalog version.
//!
//! SQL sees the plain columns (`id`, `uri`, `width`, `height`, user columns
//! such as `label`) and one `image` column. Only a scan that projects
//! `image` reads band columns; it decodes them and hands each row on as an
//! image value ([`super::image_value`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result as DfResult};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use super::image_scan::{split_ranges, ImageScanExec, ReadPlan, RowFilter};
use crate::codec::Chroma;
use crate::error::Result;
use crate::storage::layout::{is_image_column, COL_HEIGHT, COL_ID, COL_URI, COL_WIDTH};
use crate::storage::{BandSelection, ImageFileReader, DEFAULT_PAGE_ROWS};

/// Name of the image column in SQL.
pub const IMAGE_COLUMN: &str = "image";

/// Rows rebuilt per batch when the image column is read (image values are
/// large: a 512x512 photo with every band is ~0.8 MB).
const IMAGE_BATCH_ROWS: usize = 32;

/// What scans have read, for tests, EXPLAIN ANALYZE and benchmarks.
#[derive(Debug, Default)]
pub struct ScanStats {
    /// Bytes pulled from data files (footers included).
    pub bytes_read: AtomicU64,
    /// Band columns opened, summed over files.
    pub band_columns_read: AtomicU64,
    /// Rows produced.
    pub rows: AtomicU64,
}

impl ScanStats {
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
    pub fn band_columns_read(&self) -> u64 {
        self.band_columns_read.load(Ordering::Relaxed)
    }
}

/// One image table at one catalog version.
#[derive(Debug, Clone)]
pub struct ImageTable {
    name: String,
    /// Catalog version of the table's last change (profiles are tied to it).
    version: u64,
    /// Identity fixed at CREATE (cache keys and views are tied to it).
    uid: u64,
    chroma: Chroma,
    schema: SchemaRef,
    files: Vec<PathBuf>,
    /// Rows of each file, from its footer.
    file_rows: Vec<usize>,
    stats: Arc<ScanStats>,
    /// Smallest stored width and height, read on first use.
    min_dims: Arc<OnceLock<(u32, u32)>>,
    /// The format planner's band choice; `None` reads every band when
    /// `image` is projected.
    read: Option<Arc<ReadPlan>>,
}

impl ImageTable {
    /// Opens every data file's footer to learn the user columns (the union
    /// over files: a file without one reads it as null).
    pub fn open(
        name: &str,
        version: u64,
        uid: u64,
        chroma: Chroma,
        files: Vec<PathBuf>,
        stats: Arc<ScanStats>,
    ) -> Result<Self> {
        let mut fields = vec![
            Field::new(COL_ID, DataType::UInt64, false),
            Field::new(COL_URI, DataType::Utf8, false),
            Field::new(COL_WIDTH, DataType::UInt32, false),
            Field::new(COL_HEIGHT, DataType::UInt32, false),
        ];
        let mut file_rows = Vec::with_capacity(files.len());
        for path in &files {
            let reader = ImageFileReader::open(path)?;
            file_rows.push(reader.num_rows());
            for f in reader.schema().fields() {
                let fixed = [COL_ID, COL_URI, COL_WIDTH, COL_HEIGHT].contains(&f.name().as_str());
                if fixed || is_image_column(f.name()) || fields.iter().any(|g| g.name() == f.name())
                {
                    continue;
                }
                fields.push(Field::new(f.name(), f.data_type().clone(), true));
            }
        }
        fields.push(Field::new(IMAGE_COLUMN, DataType::LargeBinary, true));
        Ok(ImageTable {
            name: name.to_string(),
            version,
            uid,
            chroma,
            schema: Arc::new(Schema::new(fields)),
            files,
            file_rows,
            stats,
            min_dims: Arc::new(OnceLock::new()),
            read: None,
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

    /// Smallest width and height over the table's images (from the
    /// `width` and `height` columns; (0, 0) for an empty table).
    pub fn min_dims(&self) -> Result<(u32, u32)> {
        if let Some(d) = self.min_dims.get() {
            return Ok(*d);
        }
        let mut min: Option<(u32, u32)> = None;
        for path in &self.files {
            let reader = ImageFileReader::open(path)?;
            let scan = reader.scan(&[COL_WIDTH, COL_HEIGHT], &BandSelection::none(), 8192)?;
            for batch in scan {
                let batch = batch?;
                let col = |n: &str| {
                    batch
                        .batch
                        .column_by_name(n)
                        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>().cloned())
                };
                if let (Some(w), Some(h)) = (col(COL_WIDTH), col(COL_HEIGHT)) {
                    for i in 0..w.len() {
                        let (a, b) = (w.value(i), h.value(i));
                        min = Some(min.map_or((a, b), |(x, y)| (x.min(a), y.min(b))));
                    }
                }
            }
        }
        let d = min.unwrap_or((0, 0));
        let _ = self.min_dims.set(d);
        Ok(d)
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
        Ok(Arc::new(ImageScanExec::new(
            &self.name,
            self.uid,
            projected,
            groups,
            self.chroma,
            plan,
            filter,
            batch_size,
            limit,
            self.stats.clone(),
        )))
    }
}
