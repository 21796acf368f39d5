//! The physical scan of an image table: reads the plain columns and the
//! band columns the read plan names, and rebuilds each row's image value.
//!
//! Its EXPLAIN line says which bands it reads and why (the format planner's
//! choice per model); EXPLAIN ANALYZE adds bytes read and decode time.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, LargeBinaryBuilder, RecordBatch, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
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

use crate::codec::Chroma;
use crate::error::{Error, Result};
use crate::image_value::{encode_image_value_with, encode_outputs_only, InlineOutput, ValueSource};
use crate::reuse::slots::{covered, OutputSlot};
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

/// Name of the image column in SQL.
pub const IMAGE_COLUMN: &str = "image";

/// What scans have read, for tests, EXPLAIN ANALYZE and benchmarks, and
/// the damage they ran into (SHOW TABLES reports it).
#[derive(Debug, Default)]
pub struct ScanStats {
    /// Bytes pulled from data files (footers included).
    pub bytes_read: AtomicU64,
    /// Band columns opened, summed over files.
    pub band_columns_read: AtomicU64,
    /// Rows produced.
    pub rows: AtomicU64,
    /// Requests to object stores, and the bytes they fetched (read-ahead
    /// included), for tables on object storage.
    pub store_requests: AtomicU64,
    pub store_bytes: AtomicU64,
    /// Table -> the last damaged file a scan or CHECK found in it.
    damage: Mutex<BTreeMap<String, String>>,
}

impl ScanStats {
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
    pub fn band_columns_read(&self) -> u64 {
        self.band_columns_read.load(Ordering::Relaxed)
    }

    /// Records that reading `table` found a damaged file (`reason`).
    pub fn record_damage(&self, table: &str, reason: String) {
        self.damage
            .lock()
            .expect("damage lock")
            .insert(table.to_string(), reason);
    }

    /// The damage found in `table` since it was last loaded or checked.
    pub fn damage(&self, table: &str) -> Option<String> {
        self.damage.lock().expect("damage lock").get(table).cloned()
    }

    /// Forgets `table`'s damage (it was loaded anew or checked clean).
    pub fn clear_damage(&self, table: &str) {
        self.damage.lock().expect("damage lock").remove(table);
    }
}

/// A run of rows of one data file, read by one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRange {
    pub path: PathBuf,
    pub rows: Range<usize>,
}

/// Spreads the rows of `files` (path, row count) over at most `partitions`
/// partitions of near-equal row counts, in file order. A file is cut where
/// a partition's share ends, rounded to a multiple of `align` rows (a data
/// page) so that no page is read by two partitions: one big file keeps
/// every core busy as well as many small ones do.
pub fn split_ranges(
    files: &[(PathBuf, usize)],
    partitions: usize,
    align: usize,
) -> Vec<Vec<ScanRange>> {
    let total: usize = files.iter().map(|(_, n)| n).sum();
    let align = align.max(1);
    let parts = partitions.clamp(1, total.div_ceil(align).max(1));
    // Cut points in the rows of all files together.
    let mut starts = Vec::with_capacity(files.len());
    let mut at = 0;
    for (_, n) in files {
        starts.push(at);
        at += n;
    }
    let mut cuts = vec![0];
    for i in 1..parts {
        let ideal = total * i / parts;
        let f = starts.partition_point(|&s| s <= ideal) - 1;
        let local = ideal - starts[f];
        let snapped = ((local + align / 2) / align * align).min(files[f].1);
        cuts.push((starts[f] + snapped).max(*cuts.last().expect("not empty")));
    }
    cuts.push(total);
    let mut groups = Vec::with_capacity(parts);
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let mut group = Vec::new();
        for ((path, n), &s) in files.iter().zip(&starts) {
            let (a, b) = (lo.max(s), hi.min(s + n));
            if a < b {
                group.push(ScanRange {
                    path: path.clone(),
                    rows: a - s..b - s,
                });
            }
        }
        if !group.is_empty() {
            groups.push(group);
        }
    }
    if groups.is_empty() {
        groups.push(Vec::new());
    }
    groups
}

/// Filters pushed into the scan, as one predicate over the table's plain
/// columns: rows it rejects are dropped before their bands are read.
#[derive(Debug, Clone)]
pub struct RowFilter {
    /// The predicate as SQL shows it, for EXPLAIN.
    pub display: String,
    /// Evaluated on batches of the table's schema.
    pub predicate: Arc<dyn PhysicalExpr>,
    pub schema: SchemaRef,
    /// The columns it reads (the others are null in its batches).
    pub columns: Vec<String>,
}

/// What a scan reads: which table, and its rows spread over partitions.
#[derive(Debug, Clone)]
pub struct ScanSource {
    pub table: String,
    /// The table's identity, stamped on every image value.
    pub uid: u64,
    pub chroma: Chroma,
    /// Per partition, its runs of rows (see [`split_ranges`]).
    pub groups: Vec<Vec<ScanRange>>,
    /// The database's counters, where damage found is recorded too.
    pub stats: Arc<ScanStats>,
    /// For a table on object storage: its location and store options
    /// without secrets (see `ImageTable::store`). Only a scan sent to
    /// another process needs them (this one configured the store at open).
    #[cfg_attr(not(feature = "distributed"), allow(dead_code))]
    pub store: Option<(String, BTreeMap<String, String>)>,
}

/// How a scan reads its rows.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub filter: Option<RowFilter>,
    pub batch_size: usize,
    pub limit: Option<usize>,
}

/// Scans the files of an image table, spread over partitions.
#[derive(Debug, Clone)]
pub struct ImageScanExec {
    pub(crate) source: ScanSource,
    pub(crate) schema: SchemaRef,
    pub(crate) filter: Option<RowFilter>,
    pub(crate) bands: BandSelection,
    pub(crate) notes: Vec<String>,
    pub(crate) slots: Vec<OutputSlot>,
    pub(crate) batch_size: usize,
    pub(crate) limit: Option<usize>,
    /// On a cluster: a child naming the groups each partition reads (see
    /// [`ImageScanExec::with_work_units`]); `None` reads group `p` in
    /// partition `p`.
    pub(crate) units: Option<Arc<dyn ExecutionPlan>>,
    metrics: ExecutionPlanMetricsSet,
    props: Arc<PlanProperties>,
}

impl ImageScanExec {
    /// A scan of `source` producing `schema`, reading `plan`'s bands.
    pub fn new(
        source: ScanSource,
        schema: SchemaRef,
        plan: ReadPlan,
        options: ScanOptions,
    ) -> Self {
        let props = scan_properties(&schema, source.groups.len().max(1));
        ImageScanExec {
            source,
            schema,
            filter: options.filter,
            bands: plan.bands,
            notes: plan.notes,
            slots: plan.slots,
            batch_size: options.batch_size,
            limit: options.limit,
            units: None,
            metrics: ExecutionPlanMetricsSet::new(),
            props: Arc::new(props),
        }
    }

    /// This scan with its partitions' work as data: a child in-memory scan
    /// whose partition `p` holds one row, the group `p` reads. A Ballista
    /// scheduler hands each task its slice of a stage's partitions by
    /// slicing the stage's leaves, and it can slice an in-memory scan but
    /// not this node; with the child, a task's partition `j` reads the
    /// group its slice names.
    pub fn with_work_units(self) -> DfResult<Self> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            WORK_UNIT_COLUMN,
            DataType::UInt32,
            false,
        )]));
        let partitions = (0..self.source.groups.len().max(1))
            .map(|g| {
                let unit = Arc::new(UInt32Array::from(vec![g as u32])) as ArrayRef;
                Ok(vec![RecordBatch::try_new(schema.clone(), vec![unit])?])
            })
            .collect::<DfResult<Vec<_>>>()?;
        let units = MemorySourceConfig::try_new_exec(&partitions, schema, None)?;
        self.with_units(units)
    }

    /// This scan reading the groups `units` names (one partition each).
    pub(crate) fn with_units(self, units: Arc<dyn ExecutionPlan>) -> DfResult<Self> {
        let count = units.properties().output_partitioning().partition_count();
        Ok(ImageScanExec {
            props: Arc::new(scan_properties(&self.schema, count)),
            units: Some(units),
            metrics: ExecutionPlanMetricsSet::new(),
            ..self
        })
    }

    /// The groups partition `partition` reads.
    fn groups_of(&self, partition: usize) -> DfResult<Vec<usize>> {
        let Some(units) = &self.units else {
            return Ok(vec![partition]);
        };
        let memory = units
            .downcast_ref::<DataSourceExec>()
            .and_then(|e| {
                let source: &dyn std::any::Any = e.data_source().as_ref();
                source.downcast_ref::<MemorySourceConfig>()
            })
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "ImageScanExec: its work units are a {}, not an in-memory scan",
                    units.name()
                ))
            })?;
        let batches = memory.partitions().get(partition).ok_or_else(|| {
            DataFusionError::Internal(format!("ImageScanExec: no work unit {partition}"))
        })?;
        let mut groups = Vec::new();
        for b in batches {
            let ids = b
                .column(0)
                .as_any()
                .downcast_ref::<UInt32Array>()
                .ok_or_else(|| {
                    DataFusionError::Internal("ImageScanExec: work units are not u32".into())
                })?;
            groups.extend(ids.values().iter().map(|&g| g as usize));
        }
        Ok(groups)
    }
}

/// The column of [`ImageScanExec::with_work_units`]'s child.
const WORK_UNIT_COLUMN: &str = "image_scan_group";

fn scan_properties(schema: &SchemaRef, partitions: usize) -> PlanProperties {
    PlanProperties::new(
        EquivalenceProperties::new(schema.clone()),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Incremental,
        Boundedness::Bounded,
    )
}

impl DisplayAs for ImageScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let mut paths: Vec<&PathBuf> = self
            .source
            .groups
            .iter()
            .flatten()
            .map(|r| &r.path)
            .collect();
        paths.sort();
        paths.dedup();
        let files = paths.len();
        let bands = describe_bands(&self.bands, self.source.chroma.planes());
        match t {
            DisplayFormatType::TreeRender => {
                write!(f, "table={}\nbands={bands}", self.source.table)
            }
            _ => {
                write!(
                    f,
                    "ImageScanExec: table={}, files={files}, bands={bands}",
                    self.source.table
                )?;
                if let Some(l) = self.limit {
                    write!(f, ", limit={l}")?;
                }
                if let Some(filter) = &self.filter {
                    write!(f, ", predicate={}", filter.display)?;
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
        self.units.iter().collect()
    }

    /// The work units are data to look up, not input to spread.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; self.units.iter().count()]
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
        match (children.len(), &self.units) {
            (0, None) => Ok(self),
            (1, Some(_)) => {
                let units = children.into_iter().next().expect("one child");
                let scan = Arc::unwrap_or_clone(self).with_units(units)?;
                Ok(Arc::new(scan))
            }
            (n, _) => Err(DataFusionError::Internal(format!(
                "ImageScanExec takes {} children, not {n}",
                self.units.iter().count()
            ))),
        }
    }

    fn execute(
        &self,
        partition: usize,
        _ctx: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let ranges: Vec<ScanRange> = self
            .groups_of(partition)?
            .into_iter()
            .filter_map(|g| self.source.groups.get(g))
            .flatten()
            .cloned()
            .collect();
        let metrics = PartitionMetrics {
            rows: MetricBuilder::new(&self.metrics).output_rows(partition),
            bytes_read: MetricBuilder::new(&self.metrics).counter("bytes_read", partition),
            band_columns: MetricBuilder::new(&self.metrics).counter("band_columns", partition),
            rows_without_bands: MetricBuilder::new(&self.metrics)
                .counter("rows_from_reuse", partition),
            rows_filtered: MetricBuilder::new(&self.metrics).counter("rows_filtered", partition),
            decode_time: MetricBuilder::new(&self.metrics).subset_time("decode_time", partition),
            store: StoreMetrics {
                set: self.metrics.clone(),
                partition,
                counts: None,
            },
        };
        let with_image = self.schema.index_of(IMAGE_COLUMN).is_ok();
        let scan = PartitionScan {
            table: self.source.table.clone(),
            schema: self.schema.clone(),
            uid: self.source.uid,
            chroma: self.source.chroma,
            with_image,
            slots: if with_image {
                self.slots.clone()
            } else {
                Vec::new()
            },
            filter: self.filter.clone(),
            ranges: ranges.into_iter(),
            current: None,
            bands: self.bands,
            batch_size: self.batch_size,
            remaining: self.limit.unwrap_or(usize::MAX),
            stats: self.source.stats.clone(),
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
    /// Rows a pushed-down filter dropped before their bands were read.
    rows_filtered: Count,
    /// Reading and entropy-decoding bands and building image values.
    decode_time: Time,
    store: StoreMetrics,
}

/// Requests to an object store and the bytes they fetched, registered at
/// the first remote file (a scan of local files shows none).
struct StoreMetrics {
    set: ExecutionPlanMetricsSet,
    partition: usize,
    counts: Option<(Count, Count)>,
}

impl StoreMetrics {
    fn add(&mut self, requests: u64, bytes: u64) {
        let (set, partition) = (&self.set, self.partition);
        let (r, b) = self.counts.get_or_insert_with(|| {
            (
                MetricBuilder::new(set).counter("store_requests", partition),
                MetricBuilder::new(set).counter("store_bytes", partition),
            )
        });
        r.add(requests as usize);
        b.add(bytes as usize);
    }
}

/// Iterates the batches of a partition's row ranges, one file open at a time.
struct PartitionScan {
    table: String,
    schema: SchemaRef,
    uid: u64,
    chroma: Chroma,
    with_image: bool,
    slots: Vec<OutputSlot>,
    filter: Option<RowFilter>,
    ranges: std::vec::IntoIter<ScanRange>,
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
    /// The plain columns (and, without slots, the bands) of the rows read;
    /// `None` when the filter left none.
    scan: Option<ImageScan>,
    /// With slots: each row's outputs when all slots had one (its bands are
    /// not read), and the bands of the other rows, in row order.
    reuse: Option<CoveredRows>,
}

/// A file's rows when slots cover some of them: the outputs that stand in
/// for the covered rows' bands, and a band scan of the others.
struct CoveredRows {
    /// Per row the plain scan yields, in order.
    covered: Vec<Option<Vec<InlineOutput>>>,
    bands: Option<ImageScan>,
    /// The band batch being consumed and the next row in it.
    pending: Option<(ImageBatch, usize)>,
    /// The position of the next plain batch's first row in `covered`.
    next_row: usize,
}

impl CoveredRows {
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
        let Some(range) = self.ranges.next() else {
            return Ok(false);
        };
        let reader = ImageFileReader::open(&range.path)?;
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
        let mut rows: Vec<usize> = range.rows.clone().collect();
        if let Some(filter) = &self.filter {
            rows = filter_rows(&reader, filter, rows)?;
            self.metrics
                .rows_filtered
                .add(range.rows.len() - rows.len());
        }
        let (scan, reuse, bands_read) = if rows.is_empty() {
            (None, None, 0)
        } else if self.slots.is_empty() {
            let scan = reader.scan_rows(&columns, &self.bands, self.batch_size, Some(&rows))?;
            (Some(scan), None, band_count)
        } else {
            let ids = reader.scan_rows(&[COL_ID], &BandSelection::none(), 8192, Some(&rows))?;
            let mut covered_rows = Vec::with_capacity(rows.len());
            for batch in ids {
                let batch = batch?;
                let ids = u64_column(&batch.batch, COL_ID)?;
                for i in 0..ids.len() {
                    covered_rows.push(covered(&self.slots, self.uid, ids.value(i)));
                }
            }
            let missing: Vec<usize> = rows
                .iter()
                .zip(&covered_rows)
                .filter(|(_, c)| c.is_none())
                .map(|(&r, _)| r)
                .collect();
            if missing.len() == covered_rows.len() {
                // Nothing to reuse here: one scan with the bands.
                let scan = reader.scan_rows(&columns, &self.bands, self.batch_size, Some(&rows))?;
                (Some(scan), None, band_count)
            } else {
                let bands = if missing.is_empty() {
                    None
                } else {
                    Some(reader.scan_rows(&[], &self.bands, self.batch_size, Some(&missing))?)
                };
                let plain = reader.scan_rows(
                    &columns,
                    &BandSelection::none(),
                    self.batch_size,
                    Some(&rows),
                )?;
                let reuse = CoveredRows {
                    covered: covered_rows,
                    bands,
                    pending: None,
                    next_row: 0,
                };
                let read = if missing.is_empty() { 0 } else { band_count };
                (Some(plain), Some(reuse), read)
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
            if let Some((requests, bytes)) = open.reader.store_reads() {
                self.stats
                    .store_requests
                    .fetch_add(requests, Ordering::Relaxed);
                self.stats.store_bytes.fetch_add(bytes, Ordering::Relaxed);
                self.metrics.store.add(requests, bytes);
            }
        }
    }

    /// The image column of `batch`'s first `rows` rows.
    fn image_column(&mut self, batch: &ImageBatch, rows: usize) -> Result<ArrayRef> {
        let (uid, chroma) = (self.uid, self.chroma);
        let open = self.current.as_mut().expect("a file is open");
        let ids = u64_column(&batch.batch, COL_ID)?;
        // Sized from the first value (images of a table are mostly alike),
        // so that appending does not copy the growing buffer over and over.
        let mut b: Option<LargeBinaryBuilder> = None;
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
            b.get_or_insert_with(|| LargeBinaryBuilder::with_capacity(rows, buf.len() * rows))
                .append_value(&buf);
        }
        if let Some(reuse) = open.reuse.as_mut() {
            reuse.next_row += batch.num_rows();
        }
        self.metrics.rows_without_bands.add(reused);
        let mut b = b.unwrap_or_else(|| LargeBinaryBuilder::with_capacity(0, 0));
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
            let Some(batch) = open.scan.as_mut().and_then(Iterator::next) else {
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

/// The rows among `rows` (ascending file rows) that `filter` keeps, read
/// from the plain columns it needs.
fn filter_rows(
    reader: &ImageFileReader,
    filter: &RowFilter,
    rows: Vec<usize>,
) -> Result<Vec<usize>> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let file_schema = reader.schema();
    let present: Vec<&str> = filter
        .columns
        .iter()
        .map(String::as_str)
        .filter(|c| file_schema.index_of(c).is_ok())
        .collect();
    let scan = reader.scan_rows(&present, &BandSelection::none(), 8192, Some(&rows))?;
    let mut kept = Vec::new();
    let mut next = 0;
    for batch in scan {
        let batch = batch?;
        let n = batch.num_rows();
        let columns: Vec<ArrayRef> = filter
            .schema
            .fields()
            .iter()
            .map(|f| {
                batch
                    .batch
                    .column_by_name(f.name())
                    .cloned()
                    .unwrap_or_else(|| new_null_array(f.data_type(), n))
            })
            .collect();
        let input = RecordBatch::try_new_with_options(
            filter.schema.clone(),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let result = filter
            .predicate
            .evaluate(&input)
            .and_then(|v| v.into_array(n))
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "{}: filter {}: {e}",
                    reader.path().display(),
                    filter.display
                ))
            })?;
        let keep = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| {
                Error::InvalidArgument(format!("filter {} is not a boolean", filter.display))
            })?;
        for i in 0..n {
            if keep.is_valid(i) && keep.value(i) {
                kept.push(rows[next + i]);
            }
        }
        next += n;
    }
    Ok(kept)
}

impl Iterator for PartitionScan {
    type Item = DfResult<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_batch() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => {
                self.remaining = 0;
                if matches!(e, Error::CorruptFile { .. } | Error::Parquet { .. }) {
                    self.stats.record_damage(&self.table, e.to_string());
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::replace_children_if_necessary;

    fn files(rows: &[usize]) -> Vec<(PathBuf, usize)> {
        rows.iter()
            .enumerate()
            .map(|(i, &n)| (PathBuf::from(format!("f{i}")), n))
            .collect()
    }

    /// A partition's ranges as (file, start, end).
    type Ranges = Vec<(String, usize, usize)>;

    /// Rows per partition, and each partition's ranges.
    fn layout(groups: &[Vec<ScanRange>]) -> (Vec<usize>, Vec<Ranges>) {
        let counts = groups
            .iter()
            .map(|g| g.iter().map(|r| r.rows.len()).sum())
            .collect();
        let ranges = groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|r| (r.path.display().to_string(), r.rows.start, r.rows.end))
                    .collect()
            })
            .collect();
        (counts, ranges)
    }

    /// A scan of three 40-row files in three partitions, reading no band.
    fn three_partition_scan() -> ImageScanExec {
        let schema = Arc::new(Schema::new(vec![Field::new(
            COL_ID,
            DataType::UInt64,
            false,
        )]));
        let source = ScanSource {
            table: "t".into(),
            uid: 1,
            chroma: Chroma::Yuv420,
            groups: split_ranges(&files(&[40, 40, 40]), 3, 8),
            stats: Arc::default(),
            store: None,
        };
        let plan = ReadPlan {
            bands: BandSelection::none(),
            notes: Vec::new(),
            slots: Vec::new(),
        };
        let options = ScanOptions {
            filter: None,
            batch_size: 8,
            limit: None,
        };
        ImageScanExec::new(source, schema, plan, options)
    }

    #[test]
    fn work_units_name_the_groups_a_sliced_scan_reads() {
        let plain = three_partition_scan();
        assert_eq!(plain.groups_of(2).unwrap(), vec![2]);
        let scan = three_partition_scan().with_work_units().unwrap();
        assert_eq!(scan.properties().output_partitioning().partition_count(), 3);
        assert_eq!(scan.groups_of(1).unwrap(), vec![1]);
        // A Ballista scheduler keeps a task's slice of the leaves'
        // partitions (here 2, then 0) and rebuilds the nodes above them.
        let memory = scan.children()[0]
            .downcast_ref::<DataSourceExec>()
            .and_then(|e| {
                let source: &dyn std::any::Any = e.data_source().as_ref();
                source.downcast_ref::<MemorySourceConfig>()
            })
            .unwrap();
        let kept = vec![
            memory.partitions()[2].clone(),
            memory.partitions()[0].clone(),
        ];
        let slice =
            MemorySourceConfig::try_new_exec(&kept, memory.original_schema(), None).unwrap();
        let task = replace_children_if_necessary(Arc::new(scan), vec![slice.clone()]).unwrap();
        assert_eq!(task.properties().output_partitioning().partition_count(), 2);
        let task = task.downcast_ref::<ImageScanExec>().unwrap();
        assert_eq!(task.groups_of(0).unwrap(), vec![2]);
        assert_eq!(task.groups_of(1).unwrap(), vec![0]);
        assert!(task.groups_of(2).is_err());
        // A scan without units takes no child.
        assert!(replace_children_if_necessary(Arc::new(plain), vec![slice]).is_err());
    }

    #[test]
    fn one_file_is_split_at_page_boundaries() {
        let (counts, ranges) = layout(&split_ranges(&files(&[200]), 2, 32));
        assert_eq!(counts, vec![96, 104]);
        assert_eq!(
            ranges,
            vec![
                vec![("f0".to_string(), 0, 96)],
                vec![("f0".to_string(), 96, 200)]
            ]
        );
    }

    #[test]
    fn every_row_is_read_once_whatever_the_split() {
        for sizes in [
            &[0usize][..],
            &[5],
            &[256, 256, 256, 232],
            &[1, 0, 70, 3],
            &[1000],
        ] {
            for parts in 1..6 {
                for align in [1, 7, 32] {
                    let groups = split_ranges(&files(sizes), parts, align);
                    assert!(!groups.is_empty() && groups.len() <= parts);
                    let mut seen: Vec<(String, usize)> = groups
                        .iter()
                        .flatten()
                        .flat_map(|r| {
                            r.rows
                                .clone()
                                .map(move |i| (r.path.display().to_string(), i))
                        })
                        .collect();
                    seen.sort();
                    let mut want: Vec<(String, usize)> = sizes
                        .iter()
                        .enumerate()
                        .flat_map(|(f, &n)| (0..n).map(move |i| (format!("f{f}"), i)))
                        .collect();
                    want.sort();
                    assert_eq!(seen, want, "{sizes:?} over {parts} aligned to {align}");
                }
            }
        }
    }

    #[test]
    fn partitions_get_near_equal_rows() {
        let (counts, _) = layout(&split_ranges(&files(&[256, 256, 256, 232]), 2, 32));
        assert_eq!(counts, vec![512, 488]);
        let (counts, _) = layout(&split_ranges(&files(&[1000]), 3, 32));
        assert_eq!(counts, vec![320, 352, 328]);
        // Fewer pages than partitions: no empty partition.
        let (counts, _) = layout(&split_ranges(&files(&[20]), 4, 32));
        assert_eq!(counts, vec![20]);
    }
}
