//! Ballista's codecs, taught spectradb's plan nodes.
//!
//! The client sends the optimized logical plan to the scheduler, so image
//! tables (with the format planner's read plan inside), in-memory tables
//! (ordinary tables, views) and model functions (bound to their read
//! format) must survive [`LogicalCodec`]; the scheduler sends physical
//! stages to executors, so image scans and model functions must survive
//! [`PhysicalCodec`]. Our payloads start with a tag byte of their own;
//! everything else goes to Ballista's codecs (its shuffle nodes need them).
//!
//! A process that decodes a model function opens the model's files under
//! the database directory (the scheduler and executors must see it at the
//! same path) and checks each file's SHA-256 against the catalog entry
//! once; the handles, their loaded sessions and the output cache are the
//! process's own.

use std::any::Any;
use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::MemTable;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf::PhysicalExprNode;
use prost::Message;

use super::wire::{
    base64_decode, base64_encode, decode_schema, encode_schema, from_json, to_json, FilterWire,
    HandleWire, ModelFnWire, RangeWire, ReadPlanWire, ScanWire, StoreWire, TableWire,
};
use crate::codec::Chroma;
use crate::error::{Error, Result};
use crate::model::udf::{as_model_fn, ModelFn};
use crate::model::{sha256_file, ModelHandle};
use crate::reuse::cache::{ModelCache, DEFAULT_CACHE_BYTES};
use crate::sql::image_scan::{
    ImageScanExec, ReadPlan, RowFilter, ScanOptions, ScanRange, ScanSource, ScanStats,
};
use crate::sql::image_table::{DamagedTable, ImageTable};
use crate::storage::catalog::{DatabaseDir, ModelEntry, CATALOG_FILE};
use crate::storage::remote;

/// Tag bytes of our payloads. None can start one of Ballista's: a protobuf
/// message's first byte there is a length-delimited field's key (wire type
/// 2), and these have wire type 1.
const TAG_IMAGE_TABLE: u8 = 0xB1;
const TAG_MEM_TABLE: u8 = 0xB9;
const TAG_MODEL_FN: u8 = 0xC1;
const TAG_IMAGE_SCAN: u8 = 0xC9;

/// What this process keeps for plans it decoded: scan counters, the output
/// cache (an executor's is its own) and model handles by file identity.
struct Local {
    stats: Arc<ScanStats>,
    cache: Arc<ModelCache>,
    handles: Mutex<HashMap<(PathBuf, String, String), Arc<ModelHandle>>>,
}

static LOCAL: LazyLock<Local> = LazyLock::new(|| Local {
    stats: Arc::new(ScanStats::default()),
    cache: Arc::new(ModelCache::new(DEFAULT_CACHE_BYTES)),
    handles: Mutex::new(HashMap::new()),
});

/// Sizes this process's output cache in bytes (0 turns it off): an
/// executor's `--cache-mib`. Empties it.
pub fn set_output_cache_bytes(bytes: u64) {
    LOCAL.cache.resize(bytes);
}

/// Refuses a plan that reads a table living in this process only (system
/// tables such as `spectradb_cache`), or a damaged table, before it is sent:
/// the error names the table. information_schema is planned here by the
/// client, so its tables pass.
pub fn check_plan_travels(plan: &LogicalPlan) -> Result<()> {
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if scan.table_name.schema() == Some("information_schema") {
                return Ok(TreeNodeRecursion::Continue);
            }
            if let Ok(provider) = source_as_provider(&scan.source) {
                let any: &dyn Any = provider.as_ref();
                if let Some(damaged) = any.downcast_ref::<DamagedTable>() {
                    refused = Some(damaged.error());
                } else if !(any.is::<ImageTable>() || any.is::<MemTable>()) {
                    refused = Some(local_only(&scan.table_name));
                }
            }
            if refused.is_some() {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    refused.map_or(Ok(()), Err)
}

fn local_only(table: &TableReference) -> Error {
    Error::InvalidArgument(format!(
        "table {table} cannot be read on a cluster: it lives in this process \
         (system tables are read without --cluster)"
    ))
}

/// The logical codec of clients and schedulers.
#[derive(Debug, Default)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

/// The physical codec of schedulers and executors.
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

fn df(e: Error) -> DataFusionError {
    DataFusionError::from(e)
}

fn tagged(tag: u8, body: Vec<u8>, buf: &mut Vec<u8>) {
    buf.push(tag);
    buf.extend_from_slice(&body);
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        match buf.split_first() {
            Some((&TAG_IMAGE_TABLE, body)) => Ok(Arc::new(decode_image_table(body).map_err(df)?)),
            Some((&TAG_MEM_TABLE, body)) => Ok(Arc::new(decode_mem_table(body).map_err(df)?)),
            _ => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        let any: &dyn Any = node.as_ref();
        if let Some(table) = any.downcast_ref::<ImageTable>() {
            tagged(TAG_IMAGE_TABLE, encode_image_table(table).map_err(df)?, buf);
            Ok(())
        } else if let Some(table) = any.downcast_ref::<MemTable>() {
            tagged(
                TAG_MEM_TABLE,
                encode_mem_table(table, table_ref).map_err(df)?,
                buf,
            );
            Ok(())
        } else if let Some(damaged) = any.downcast_ref::<DamagedTable>() {
            Err(df(damaged.error()))
        } else {
            Err(df(local_only(table_ref)))
        }
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> DfResult<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        decode_udf(name, buf, |n, b| self.inner.try_decode_udf(n, b))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        encode_udf(node, buf)
    }
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match buf.split_first() {
            Some((&TAG_IMAGE_SCAN, body)) => {
                let scan = self.decode_scan(body, ctx)?;
                Ok(Arc::new(match inputs {
                    [] => scan,
                    [units] => scan.with_units(units.clone())?,
                    _ => {
                        return Err(df(Error::InvalidArgument(format!(
                            "a serialized image scan has {} inputs, not one",
                            inputs.len()
                        ))))
                    }
                }))
            }
            _ => self.inner.try_decode(buf, inputs, ctx, proto_converter),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        if let Some(scan) = node.downcast_ref::<ImageScanExec>() {
            let body = self.encode_scan(scan)?;
            tagged(TAG_IMAGE_SCAN, body, buf);
            return Ok(());
        }
        self.inner.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        decode_udf(name, buf, |n, b| self.inner.try_decode_udf(n, b))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        encode_udf(node, buf)
    }
}

impl PhysicalCodec {
    fn encode_scan(&self, scan: &ImageScanExec) -> DfResult<Vec<u8>> {
        let filter = match &scan.filter {
            Some(f) => Some(FilterWire {
                display: f.display.clone(),
                predicate: base64_encode(
                    &serialize_physical_expr(&f.predicate, self)?.encode_to_vec(),
                ),
                schema: encode_schema(&f.schema).map_err(df)?,
                columns: f.columns.clone(),
            }),
            None => None,
        };
        let groups = scan
            .source
            .groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|r| {
                        Ok(RangeWire {
                            path: path_text(&r.path)?,
                            start: r.rows.start as u64,
                            end: r.rows.end as u64,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()
            .map_err(df)?;
        let wire = ScanWire {
            table: scan.source.table.clone(),
            uid: scan.source.uid,
            chroma: scan.source.chroma.name().to_string(),
            groups,
            schema: encode_schema(&scan.schema).map_err(df)?,
            filter,
            read: ReadPlanWire::from_plan(&ReadPlan {
                bands: scan.bands,
                notes: scan.notes.clone(),
                slots: scan.slots.clone(),
            }),
            batch_size: scan.batch_size,
            limit: scan.limit,
            store: store_wire(&scan.source.store),
        };
        to_json(&wire).map_err(df)
    }

    fn decode_scan(&self, body: &[u8], ctx: &TaskContext) -> DfResult<ImageScanExec> {
        let wire: ScanWire = from_json(body, "image scan").map_err(df)?;
        configure_store(&wire.store).map_err(df)?;
        let filter = match wire.filter {
            Some(f) => {
                let schema = decode_schema(&f.schema).map_err(df)?;
                let bytes = base64_decode(&f.predicate, "scan filter").map_err(df)?;
                let node = PhysicalExprNode::decode(bytes.as_slice())
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                Some(RowFilter {
                    display: f.display,
                    predicate: parse_physical_expr(&node, ctx, &schema, self)?,
                    schema,
                    columns: f.columns,
                })
            }
            None => None,
        };
        let source = ScanSource {
            table: wire.table,
            uid: wire.uid,
            chroma: Chroma::parse(&wire.chroma).map_err(df)?,
            groups: wire
                .groups
                .into_iter()
                .map(|g| {
                    g.into_iter()
                        .map(|r| ScanRange {
                            path: PathBuf::from(r.path),
                            rows: r.start as usize..r.end as usize,
                        })
                        .collect()
                })
                .collect(),
            stats: LOCAL.stats.clone(),
            store: wire.store.map(|s| (s.location, s.options)),
        };
        let plan = wire.read.into_plan(&LOCAL.cache).map_err(df)?;
        let options = ScanOptions {
            filter,
            batch_size: wire.batch_size,
            limit: wire.limit,
        };
        Ok(ImageScanExec::new(
            source,
            decode_schema(&wire.schema).map_err(df)?,
            plan,
            options,
        ))
    }
}

/// A path as UTF-8 text (object URLs always are; a local path that is not
/// cannot be named to another process).
fn path_text(path: &Path) -> Result<String> {
    path.to_str().map(str::to_string).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{}: the path is not UTF-8 and cannot be sent to a cluster",
            path.display()
        ))
    })
}

fn store_wire(
    store: &Option<(String, std::collections::BTreeMap<String, String>)>,
) -> Option<StoreWire> {
    store.as_ref().map(|(location, options)| StoreWire {
        location: location.clone(),
        options: options.clone(),
    })
}

/// Configures the store a decoded table's objects are in (its options that
/// hold no secret; credentials come from this process's environment).
fn configure_store(store: &Option<StoreWire>) -> Result<()> {
    match store {
        Some(s) => remote::configure_defaults(&s.location, &s.options),
        None => Ok(()),
    }
}

fn encode_image_table(table: &ImageTable) -> Result<Vec<u8>> {
    let wire = TableWire {
        name: table.name.clone(),
        version: table.version,
        uid: table.uid,
        chroma: table.chroma.name().to_string(),
        schema: encode_schema(&table.schema)?,
        files: table
            .files
            .iter()
            .map(|p| path_text(p))
            .collect::<Result<_>>()?,
        file_rows: table.file_rows.iter().map(|&n| n as u64).collect(),
        min_dims: table.min_dims,
        read: table.read.as_deref().map(ReadPlanWire::from_plan),
        store: store_wire(&table.store),
    };
    to_json(&wire)
}

fn decode_image_table(body: &[u8]) -> Result<ImageTable> {
    let wire: TableWire = from_json(body, "image table")?;
    if wire.files.len() != wire.file_rows.len() {
        return Err(Error::InvalidArgument(format!(
            "a serialized image table {} lists {} files and {} row counts",
            wire.name,
            wire.files.len(),
            wire.file_rows.len()
        )));
    }
    let store = wire.store.clone();
    configure_store(&store)?;
    Ok(ImageTable {
        name: wire.name,
        version: wire.version,
        uid: wire.uid,
        chroma: Chroma::parse(&wire.chroma)?,
        schema: decode_schema(&wire.schema)?,
        files: wire.files.into_iter().map(PathBuf::from).collect(),
        file_rows: wire.file_rows.into_iter().map(|n| n as usize).collect(),
        stats: LOCAL.stats.clone(),
        min_dims: wire.min_dims,
        read: wire
            .read
            .map(|r| r.into_plan(&LOCAL.cache))
            .transpose()?
            .map(Arc::new),
        store: store.map(|s| (s.location, s.options)),
        work_units: true,
    })
}

/// An in-memory table (an ordinary table or view) as one Arrow IPC stream.
fn encode_mem_table(table: &MemTable, name: &TableReference) -> Result<Vec<u8>> {
    let schema = table.schema();
    let mut buf = Vec::new();
    let mut writer = StreamWriter::try_new(&mut buf, &schema)?;
    for partition in &table.batches {
        let batches = partition.try_read().map_err(|_| {
            Error::Internal(format!("table {name} is being written and cannot be sent"))
        })?;
        for b in batches.iter() {
            writer.write(b)?;
        }
    }
    writer.finish()?;
    drop(writer);
    Ok(buf)
}

fn decode_mem_table(body: &[u8]) -> Result<MemTable> {
    let reader = StreamReader::try_new(Cursor::new(body), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<RecordBatch>, _>>()?;
    Ok(MemTable::try_new(schema, vec![batches])?)
}

fn encode_udf(node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
    // Other functions travel by name: every process registers them.
    let Some(f) = as_model_fn(node) else {
        return Ok(());
    };
    let model = f.handle();
    let root = model.database_root().ok_or_else(|| {
        df(Error::Internal(format!(
            "model {}: its file is not under a database directory",
            model.name
        )))
    })?;
    let wire = ModelFnWire {
        root: path_text(root).map_err(df)?,
        model: handle_wire(model),
        raw_scores: f.raw_scores(),
        format: f.format(),
        approximate: f.approximate(),
    };
    tagged(TAG_MODEL_FN, to_json(&wire).map_err(df)?, buf);
    Ok(())
}

fn handle_wire(model: &ModelHandle) -> HandleWire {
    HandleWire {
        name: model.name.clone(),
        entry: model.entry.clone(),
        backbone: model.backbone.as_deref().map(|b| Box::new(handle_wire(b))),
    }
}

fn decode_udf(
    name: &str,
    buf: &[u8],
    other: impl FnOnce(&str, &[u8]) -> DfResult<Arc<ScalarUDF>>,
) -> DfResult<Arc<ScalarUDF>> {
    match buf.split_first() {
        Some((&TAG_MODEL_FN, body)) => {
            let wire: ModelFnWire = from_json(body, "model function").map_err(df)?;
            let model = model_handle(Path::new(&wire.root), &wire.model).map_err(df)?;
            Ok(Arc::new(ModelFn::rebuilt(
                model,
                wire.raw_scores,
                wire.format,
                wire.approximate,
            )))
        }
        _ => other(name, buf),
    }
}

/// This process's handle of a model the catalog lists under `root`: made
/// (and its files checked) once, then shared by every plan that calls it.
fn model_handle(root: &Path, wire: &HandleWire) -> Result<Arc<ModelHandle>> {
    let key = (
        root.to_path_buf(),
        wire.name.clone(),
        wire.entry.checksum.clone(),
    );
    if let Some(h) = LOCAL.handles.lock().expect("handles lock").get(&key) {
        return Ok(h.clone());
    }
    if !root.join(CATALOG_FILE).is_file() {
        return Err(Error::Model(format!(
            "model {}: the database directory {} is not reachable from this process \
             (a cluster's scheduler and executors must see it at the same path)",
            wire.name,
            root.display()
        )));
    }
    check_model_files(root, &wire.name, &wire.entry)?;
    let backbone = match &wire.backbone {
        Some(b) => Some(model_handle(root, b)?),
        None => None,
    };
    let dir = DatabaseDir::open(root)?;
    let handle = Arc::new(ModelHandle::new(
        &dir,
        &wire.name,
        &wire.entry,
        Some(LOCAL.cache.clone()),
        backbone,
    )?);
    LOCAL
        .handles
        .lock()
        .expect("handles lock")
        .insert(key, handle.clone());
    Ok(handle)
}

/// Each model file of `entry` (every member's, for a family) has the
/// SHA-256 the catalog recorded: a process never runs another model under
/// this one's name.
fn check_model_files(root: &Path, name: &str, entry: &ModelEntry) -> Result<()> {
    if !entry.members.is_empty() {
        for m in &entry.members {
            check_model_files(root, name, &m.model)?;
        }
        return Ok(());
    }
    let path = root.join(&entry.file);
    let (checksum, _) = sha256_file(&path)?;
    if checksum != entry.checksum {
        return Err(Error::Model(format!(
            "model {name}: {} has SHA-256 {checksum}, the catalog says {}: the file was \
             changed, or this process sees another database directory",
            path.display(),
            entry.checksum
        )));
    }
    Ok(())
}
