//! The physical scan of an image table: reads the plain columns and the
//! band columns the read plan names, and rebuilds each row's image value.
//!
//! Its EXPLAIN line says which bands it reads and why (the format planner's
//! choice per model); EXPLAIN ANALYZE adds bytes read and decode time.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, LargeBinaryBuilder, RecordBatch, UInt32Array, UInt64Array,
};
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
use super::image_value::{encode_image_value_with, encode_outputs_only, InlineOutput, ValueSource};
use super::output_slots::{covered, OutputSlot};
use crate::codec::Chroma;
use crate::error::{Error, Result};
use crate::storage::layout::{COL_HEIGHT, COL_ID, COL_WIDTH};
use crate::storage::{BandSelection, ImageBatch, ImageFileReader, ImageScan};

/// Which bands a scan reads, and why (set by the format planner).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadPlan {
    pub bands: BandSelection,
    /// One line per model: `<model>: format <name> (<reason>)`.
    pub notes: Vec<String>,
    /// Where each model call's result may already be: rows where all are
    /// found are sent without bands. Empty when `image` has other uses.
    pub slots: Vec<OutputSlot>,
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
    /// The table's identity, stamped on every image value.
    uid: u64,
    schema: SchemaRef,
    groups: Vec<Vec<PathBuf>>,
    chroma: Chroma,
    bands: BandSelection,
    notes: Vec<String>,
    slots: Vec<OutputSlot>,
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
        uid: u64,
        schema: SchemaRef,
        groups: Vec<Vec<PathBuf>>,
        chroma: Chroma,
        plan: ReadPlan,
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
            uid,
            schema,
            groups,
            chroma,
            bands: plan.bands,
            notes: plan.notes,
            slots: plan.slots,
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
        let bands = describe_bands(&self.bands, self.chroma.planes());
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
            rows_without_bands: MetricBuilder::new(&self.metrics)
                .counter("rows_from_reuse", partition),
            decode_time: MetricBuilder::new(&self.metrics).subset_time("decode_time", partition),
        };
        let with_image = self.schema.index_of(IMAGE_COLUMN).is_ok();
        let scan = PartitionScan {
            schema: self.schema.clone(),
            uid: self.uid,
            chroma: self.chroma,
            with_image,
            slots: if with_image {
                self.slots.clone()
            } else {
                Vec::new()
            },
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
    /// Rows sent with outputs found in the cache or a view instead of bands.
    rows_without_bands: Count,
    /// Reading and entropy-decoding bands and building image values.
    decode_time: Time,
}

/// Iterates the batches of a partition's files, one file open at a time.
struct PartitionScan {
    schema: SchemaRef,
    uid: u64,
    chroma: Chroma,
    with_image: bool,
    slots: Vec<OutputSlot>,
    files: std::vec::IntoIter<PathBuf>,
    current: Option<OpenFile>,
    bands: BandSelection,
    batch_size: usize,
    remaining: usize,
    stats: Arc<ScanStats>,
    metrics: PartitionMetrics,
}

/// The file being read.
struct OpenFile {
    reader: ImageFileReader,
    /// The plain columns (and, without slots, the bands) of every row.
    scan: ImageScan,
    /// With slots: each row's outputs when all slots had one (its bands are
    /// not read), and the bands of the other rows, in row order.
    reuse: Option<Reuse>,
}

struct Reuse {
    covered: Vec<Option<Vec<InlineOutput>>>,
    bands: Option<ImageScan>,
    /// The band batch being consumed and the next row in it.
    pending: Option<(ImageBatch, usize)>,
    /// The file row the next plain batch starts at.
    next_row: usize,
}

impl Reuse {
    /// The next row with bands (rows come in file order).
    fn next_image(&mut self) -> Result<(&ImageBatch, usize)> {
        let exhausted = self
            .pending
            .as_ref()
            .is_none_or(|(b, r)| *r >= b.num_rows());
        if exhausted {
            let batch = self
                .bands
                .as_mut()
                .and_then(Iterator::next)
                .ok_or_else(|| Error::Internal("band scan ended before its rows".into()))??;
            self.pending = Some((batch, 0));
        }
        let (batch, row) = self.pending.as_mut().expect("set above");
        *row += 1;
        Ok((batch, *row - 1))
    }
}

fn u64_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a UInt64Array> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        .ok_or_else(|| Error::Internal(format!("scan batch lacks the u64 column {name}")))
}

fn u32_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a UInt32Array> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .ok_or_else(|| Error::Internal(format!("scan batch lacks the u32 column {name}")))
}

impl PartitionScan {
    fn open_next(&mut self) -> Result<bool> {
        self.finish_file();
        let Some(path) = self.files.next() else {
            return Ok(false);
        };
        let reader = ImageFileReader::open(&path)?;
        let file_schema = reader.schema();
        let mut columns: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| *n != IMAGE_COLUMN && file_schema.index_of(n).is_ok())
            .collect();
        if self.with_image {
            // Every image value says which stored image it is.
            for c in [COL_ID, COL_WIDTH, COL_HEIGHT] {
                if !columns.contains(&c) {
                    columns.push(c);
                }
            }
        }
        let planes = reader.chroma().planes();
        let band_count: u64 = self.bands.masks[..planes]
            .iter()
            .map(|m| m.count_ones() as u64)
            .sum();
        let (scan, reuse, bands_read) = if self.slots.is_empty() {
            let scan = reader.scan(&columns, &self.bands, self.batch_size)?;
            (scan, None, band_count)
        } else {
            let ids = reader.scan(&[COL_ID], &BandSelection::none(), 8192)?;
            let mut covered_rows = Vec::with_capacity(reader.num_rows());
            for batch in ids {
                let batch = batch?;
                let ids = u64_column(&batch.batch, COL_ID)?;
                for i in 0..ids.len() {
                    covered_rows.push(covered(&self.slots, self.uid, ids.value(i)));
                }
            }
            let missing: Vec<usize> = (0..covered_rows.len())
                .filter(|&r| covered_rows[r].is_none())
                .collect();
            if missing.len() == covered_rows.len() {
                // Nothing to reuse here: one scan with the bands.
                let scan = reader.scan(&columns, &self.bands, self.batch_size)?;
                (scan, None, band_count)
            } else {
                let bands = if missing.is_empty() {
                    None
                } else {
                    Some(reader.scan_rows(&[], &self.bands, self.batch_size, Some(&missing))?)
                };
                let plain = reader.scan(&columns, &BandSelection::none(), self.batch_size)?;
                let reuse = Reuse {
                    covered: covered_rows,
                    bands,
                    pending: None,
                    next_row: 0,
                };
                let read = if missing.is_empty() { 0 } else { band_count };
                (plain, Some(reuse), read)
            }
        };
        self.stats
            .band_columns_read
            .fetch_add(bands_read, Ordering::Relaxed);
        self.metrics.band_columns.add(bands_read as usize);
        self.current = Some(OpenFile {
            reader,
            scan,
            reuse,
        });
        Ok(true)
    }

    fn finish_file(&mut self) {
        if let Some(open) = self.current.take() {
            let n = open.reader.bytes_read();
            self.stats.bytes_read.fetch_add(n, Ordering::Relaxed);
            self.metrics.bytes_read.add(n as usize);
        }
    }

    /// The image column of `batch`'s first `rows` rows.
    fn image_column(&mut self, batch: &ImageBatch, rows: usize) -> Result<ArrayRef> {
        let (uid, chroma) = (self.uid, self.chroma);
        let open = self.current.as_mut().expect("a file is open");
        let ids = u64_column(&batch.batch, COL_ID)?;
        let mut b = LargeBinaryBuilder::with_capacity(rows, 0);
        let mut buf = Vec::new();
        let mut reused = 0;
        for row in 0..rows {
            buf.clear();
            let source = Some(ValueSource {
                table: uid,
                id: ids.value(row),
            });
            match open.reuse.as_mut() {
                None => encode_image_value_with(&batch.image(row)?, source, &[], &mut buf),
                Some(reuse) => {
                    let file_row = reuse.next_row + row;
                    match reuse.covered.get_mut(file_row).and_then(Option::take) {
                        Some(outputs) => {
                            let w = u32_column(&batch.batch, COL_WIDTH)?.value(row);
                            let h = u32_column(&batch.batch, COL_HEIGHT)?.value(row);
                            encode_outputs_only(w, h, chroma, source, &outputs, &mut buf);
                            reused += 1;
                        }
                        None => {
                            let (bands, r) = reuse.next_image()?;
                            encode_image_value_with(&bands.image(r)?, source, &[], &mut buf)
                        }
                    }
                }
            }
            b.append_value(&buf);
        }
        if let Some(reuse) = open.reuse.as_mut() {
            reuse.next_row += batch.num_rows();
        }
        self.metrics.rows_without_bands.add(reused);
        Ok(Arc::new(b.finish()))
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
            let started = std::time::Instant::now();
            let open = self.current.as_mut().expect("opened above");
            let Some(batch) = open.scan.next() else {
                self.metrics.decode_time.add_duration(started.elapsed());
                self.finish_file();
                continue;
            };
            let batch = batch?;
            let rows = batch.num_rows().min(self.remaining);
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
            for field in self.schema.fields().clone().iter() {
                if field.name() == IMAGE_COLUMN {
                    columns.push(self.image_column(&batch, rows)?);
                } else {
                    match batch.batch.column_by_name(field.name()) {
                        Some(c) => columns.push(c.slice(0, rows)),
                        None => columns.push(new_null_array(field.data_type(), rows)),
                    }
                }
            }
            self.metrics.decode_time.add_duration(started.elapsed());
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
