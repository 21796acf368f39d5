//! The DataFusion view of an image table: a [`TableProvider`] over the data
//! files of one catalog version.
//!
//! SQL sees the plain columns (`id`, `uri`, `width`, `height`, user columns
//! such as `label`) and one `image` column. Only a scan that projects
//! `image` reads band columns; it decodes them and hands each row on as an
//! image value ([`super::image_value`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, LargeBinaryBuilder, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;

use super::image_value::encode_image_value;
use crate::error::Result;
use crate::storage::layout::{is_image_column, COL_HEIGHT, COL_ID, COL_URI, COL_WIDTH};
use crate::storage::{BandSelection, ImageFileReader};

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
#[derive(Debug)]
pub struct ImageTable {
    name: String,
    schema: SchemaRef,
    files: Vec<PathBuf>,
    stats: Arc<ScanStats>,
}

impl ImageTable {
    /// Opens every data file's footer to learn the user columns (the union
    /// over files: a file without one reads it as null).
    pub fn open(name: &str, files: Vec<PathBuf>, stats: Arc<ScanStats>) -> Result<Self> {
        let mut fields = vec![
            Field::new(COL_ID, DataType::UInt64, false),
            Field::new(COL_URI, DataType::Utf8, false),
            Field::new(COL_WIDTH, DataType::UInt32, false),
            Field::new(COL_HEIGHT, DataType::UInt32, false),
        ];
        for path in &files {
            let reader = ImageFileReader::open(path)?;
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
            schema: Arc::new(Schema::new(fields)),
            files,
            stats,
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

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let projected = Arc::new(self.schema.project(&indices)?);
        let with_image = projected.index_of(IMAGE_COLUMN).is_ok();
        let bands = if with_image {
            BandSelection::all()
        } else {
            BandSelection::none()
        };
        let target = state.config().target_partitions().max(1);
        let groups = self.files.len().clamp(1, target);
        let mut partitions: Vec<Arc<dyn PartitionStream>> = Vec::with_capacity(groups);
        for g in 0..groups {
            let files = self.files.iter().skip(g).step_by(groups).cloned().collect();
            partitions.push(Arc::new(ImagePartition {
                table: self.name.clone(),
                schema: projected.clone(),
                files,
                bands,
                batch_size: if with_image {
                    IMAGE_BATCH_ROWS
                } else {
                    state.config().batch_size()
                },
                limit,
                stats: self.stats.clone(),
            }));
        }
        Ok(Arc::new(StreamingTableExec::try_new(
            projected,
            partitions,
            None,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

/// The files one partition of a scan reads, in order.
struct ImagePartition {
    table: String,
    schema: SchemaRef,
    files: Vec<PathBuf>,
    bands: BandSelection,
    batch_size: usize,
    limit: Option<usize>,
    stats: Arc<ScanStats>,
}

impl fmt::Debug for ImagePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ImagePartition({}, {} files)",
            self.table,
            self.files.len()
        )
    }
}

impl PartitionStream for ImagePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let scan = PartitionScan {
            schema: self.schema.clone(),
            files: self.files.clone().into_iter(),
            current: None,
            bands: self.bands,
            batch_size: self.batch_size,
            remaining: self.limit.unwrap_or(usize::MAX),
            stats: self.stats.clone(),
        };
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(scan),
        ))
    }
}

/// Iterates the batches of a partition's files, one file open at a time.
struct PartitionScan {
    schema: SchemaRef,
    files: std::vec::IntoIter<PathBuf>,
    current: Option<(ImageFileReader, crate::storage::ImageScan)>,
    bands: BandSelection,
    batch_size: usize,
    remaining: usize,
    stats: Arc<ScanStats>,
}

impl PartitionScan {
    fn open_next(&mut self) -> Result<bool> {
        self.finish_file();
        let Some(path) = self.files.next() else {
            return Ok(false);
        };
        let reader = ImageFileReader::open(&path)?;
        let file_schema = reader.schema();
        let columns: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| *n != IMAGE_COLUMN && file_schema.index_of(n).is_ok())
            .collect();
        let scan = reader.scan(&columns, &self.bands, self.batch_size)?;
        let planes = reader.chroma().planes();
        let bands: u64 = self.bands.masks[..planes]
            .iter()
            .map(|m| m.count_ones() as u64)
            .sum();
        self.stats
            .band_columns_read
            .fetch_add(bands, Ordering::Relaxed);
        self.current = Some((reader, scan));
        Ok(true)
    }

    fn finish_file(&mut self) {
        if let Some((reader, _)) = self.current.take() {
            self.stats
                .bytes_read
                .fetch_add(reader.bytes_read(), Ordering::Relaxed);
        }
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.remaining == 0 {
                self.finish_file();
                return Ok(None);
            }
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let (_, scan) = self.current.as_mut().expect("opened above");
            let Some(batch) = scan.next() else {
                self.finish_file();
                continue;
            };
            let batch = batch?;
            let rows = batch.num_rows().min(self.remaining);
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
            for field in self.schema.fields() {
                if field.name() == IMAGE_COLUMN {
                    let mut b = LargeBinaryBuilder::with_capacity(rows, 0);
                    let mut buf = Vec::new();
                    for row in 0..rows {
                        buf.clear();
                        encode_image_value(&batch.image(row)?, &mut buf);
                        b.append_value(&buf);
                    }
                    columns.push(Arc::new(b.finish()));
                } else {
                    match batch.batch.column_by_name(field.name()) {
                        Some(c) => columns.push(c.slice(0, rows)),
                        None => columns.push(new_null_array(field.data_type(), rows)),
                    }
                }
            }
            self.remaining -= rows;
            self.stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
            let out = RecordBatch::try_new_with_options(
                self.schema.clone(),
                columns,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
            )?;
            return Ok(Some(out));
        }
    }
}

impl Iterator for PartitionScan {
    type Item = DfResult<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_batch() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => {
                self.remaining = 0;
                Some(Err(DataFusionError::External(Box::new(e))))
            }
        }
    }
}

impl Drop for PartitionScan {
    fn drop(&mut self) {
        self.finish_file();
    }
}
