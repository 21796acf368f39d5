//! The physical scan of an image table: reads the plain columns and the
//! band columns the read plan names, and rebuilds each row's image value.
//!
//! Its EXPLAIN line says which bands it reads and why (the format planner's
//! choice per model); EXPLAIN ANALYZE adds bytes read and decode time.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, LargeBinaryBuilder, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use super::image_table::{ScanStats, IMAGE_COLUMN};
use super::image_value::encode_image_value;
use crate::error::Result;
use crate::storage::{BandSelection, ImageFileReader};

/// Which bands a scan reads, and why (set by the format planner).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadPlan {
    pub bands: BandSelection,
    /// One line per model: `<model>: format <name> (<reason>)`.
    pub notes: Vec<String>,
}

/// `y:16 cb:16 cr:16 (48 of 192 band columns)`.
pub fn describe_bands(bands: &BandSelection, planes: usize) -> String {
    const NAMES: [&str; 3] = ["y", "cb", "cr"];
    let counts: Vec<u32> = bands.masks[..planes]
        .iter()
        .map(|m| m.count_ones())
        .collect();
    let total: u32 = counts.iter().sum();
    if total == 0 {
        return "none".into();
    }
    let per: Vec<String> = counts
        .iter()
        .zip(NAMES)
        .map(|(c, n)| format!("{n}:{c}"))
        .collect();
    format!(
        "{} ({total} of {} band columns)",
        per.join(" "),
        64 * planes
    )
}

/// Scans the files of an image table, spread over partitions.
#[derive(Debug)]
pub struct ImageScanExec {
    table: String,
    schema: SchemaRef,
    groups: Vec<Vec<PathBuf>>,
    planes: usize,
    bands: BandSelection,
    notes: Vec<String>,
    batch_size: usize,
    limit: Option<usize>,
    stats: Arc<ScanStats>,
    metrics: ExecutionPlanMetricsSet,
    props: Arc<PlanProperties>,
}

impl ImageScanExec {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        table: &str,
        schema: SchemaRef,
        groups: Vec<Vec<PathBuf>>,
        planes: usize,
        bands: BandSelection,
        notes: Vec<String>,
        batch_size: usize,
        limit: Option<usize>,
        stats: Arc<ScanStats>,
    ) -> Self {
        let props = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(groups.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        ImageScanExec {
            table: table.to_string(),
            schema,
            groups,
            planes,
            bands,
            notes,
            batch_size,
            limit,
            stats,
            metrics: ExecutionPlanMetricsSet::new(),
            props: Arc::new(props),
        }
    }
}

impl DisplayAs for ImageScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let files: usize = self.groups.iter().map(Vec::len).sum();
        let bands = describe_bands(&self.bands, self.planes);
        match t {
            DisplayFormatType::TreeRender => write!(f, "table={}\nbands={bands}", self.table),
            _ => {
                write!(
                    f,
                    "ImageScanExec: table={}, files={files}, bands={bands}",
                    self.table
                )?;
                if let Some(l) = self.limit {
                    write!(f, ", limit={l}")?;
                }
                for n in &self.notes {
                    write!(f, ", {n}")?;
                }
                Ok(())
            }
        }
    }
}

impl ExecutionPlan for ImageScanExec {
    fn name(&self) -> &str {
        "ImageScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "ImageScanExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _ctx: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let files = self.groups.get(partition).cloned().unwrap_or_default();
        let metrics = PartitionMetrics {
            rows: MetricBuilder::new(&self.metrics).output_rows(partition),
            bytes_read: MetricBuilder::new(&self.metrics).counter("bytes_read", partition),
            band_columns: MetricBuilder::new(&self.metrics).counter("band_columns", partition),
            decode_time: MetricBuilder::new(&self.metrics).subset_time("decode_time", partition),
        };
        let scan = PartitionScan {
            schema: self.schema.clone(),
            files: files.into_iter(),
            current: None,
            bands: self.bands,
            batch_size: self.batch_size,
            remaining: self.limit.unwrap_or(usize::MAX),
            stats: self.stats.clone(),
            metrics,
        };
        // Reading and entropy decoding are blocking work: they run on the
        // blocking pool and hand batches over a small bounded channel, so a
        // long scan never stalls other queries on the async workers, and a
        // dropped consumer stops it at the next batch.
        let mut stream = RecordBatchReceiverStream::builder(self.schema.clone(), 2);
        let tx = stream.tx();
        stream.spawn_blocking(move || {
            for batch in scan {
                if tx.blocking_send(batch).is_err() {
                    break;
                }
            }
            Ok(())
        });
        Ok(stream.build())
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// EXPLAIN ANALYZE counters of one partition.
struct PartitionMetrics {
    rows: Count,
    bytes_read: Count,
    band_columns: Count,
    /// Reading and entropy-decoding bands and building image values.
    decode_time: Time,
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
    metrics: PartitionMetrics,
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
        self.metrics.band_columns.add(bands as usize);
        self.current = Some((reader, scan));
        Ok(true)
    }

    fn finish_file(&mut self) {
        if let Some((reader, _)) = self.current.take() {
            let n = reader.bytes_read();
            self.stats.bytes_read.fetch_add(n, Ordering::Relaxed);
            self.metrics.bytes_read.add(n as usize);
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
            let timer = self.metrics.decode_time.timer();
            let (_, scan) = self.current.as_mut().expect("opened above");
            let Some(batch) = scan.next() else {
                drop(timer);
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
            drop(timer);
            self.remaining -= rows;
            self.stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
            self.metrics.rows.add(rows);
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
