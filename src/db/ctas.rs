//! `CREATE TABLE .. AS` whose result has an `image` column of image values
//! makes an image table: the images are stored band-coded, as an ingest
//! stores them, not as the raw coefficients an image value carries (an
//! ordinary table of image values takes ~12x the bytes).
//!
//! The query streams into data files of at most [`IMAGES_PER_FILE`] images
//! (or [`BYTES_PER_FILE`] of decoded coefficients) inside one
//! [`Transaction`]: a failure at any row, or a cancelled statement, leaves
//! no table and no data file. What becomes of the image table's built-in
//! columns is decided in [`Columns`] (docs/sql.md says it for users).

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, concat};
use arrow::datatypes::{DataType, FieldRef, Int64Type, Schema, UInt64Type};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Query, Statement, TableObject};
use futures::StreamExt;
use std::collections::HashSet;

use super::plain::{self, Effect};
use super::write::{check_table_name, remove_tables};
use super::{off_worker, Database};
use crate::codec::Chroma;
use crate::error::{Error, Result};
use crate::image_value::{
    binary_values, decode_image_value, inline_outputs, read_image_header, ImageHeader,
};
use crate::planner::rule::image_table;
use crate::sql::image_scan::IMAGE_COLUMN;
use crate::sql::statements::{normalize_ident, TableName};
use crate::storage::catalog::{Catalog, DataFile, TableEntry};
use crate::storage::commit::Transaction;
use crate::storage::layout::{is_image_column, COL_HEIGHT, COL_ID, COL_URI, COL_WIDTH};
use crate::storage::{write_image_file, ImageRow, WriteOptions};

/// Images per data file, as an ingest writes them.
const IMAGES_PER_FILE: usize = 256;
/// Decoded coefficients held before a file is written (bounds memory for
/// large images: a 4000x3000 photo is ~36 MB of coefficients).
const BYTES_PER_FILE: usize = 64 << 20;
/// Rows per batch while the query runs (what an image scan emits).
const IMAGE_ROWS_PER_BATCH: usize = 32;
/// Quality of a table whose images come from no known image table (it is
/// only used by a later `INSERT INTO .. FROM` files).
const DEFAULT_QUALITY: u8 = 90;

/// A `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] name AS query` statement.
pub(super) struct CreateTableAs {
    name: TableName,
    if_not_exists: bool,
    or_replace: bool,
    query: Box<Query>,
}

/// The statement `sql` if it is a `CREATE TABLE .. AS` query (without a
/// column list, not temporary or external).
pub(super) fn parse(sql: &str) -> Option<CreateTableAs> {
    let mut statements = DFParser::parse_sql(sql).ok()?;
    if statements.len() != 1 {
        return None;
    }
    let DfStatement::Statement(s) = statements.pop_front()? else {
        return None;
    };
    let Statement::CreateTable(t) = *s else {
        return None;
    };
    if !t.columns.is_empty() || t.temporary || t.external {
        return None;
    }
    Some(CreateTableAs {
        name: t
            .name
            .0
            .iter()
            .map(|p| p.as_ident().map(normalize_ident).unwrap_or_default())
            .collect(),
        if_not_exists: t.if_not_exists,
        or_replace: t.or_replace,
        query: t.query?,
    })
}

/// The table of an `INSERT INTO <table> <query>` statement.
fn insert_target(sql: &str) -> Option<TableName> {
    let mut statements = DFParser::parse_sql(sql).ok()?;
    if statements.len() != 1 {
        return None;
    }
    let DfStatement::Statement(s) = statements.pop_front()? else {
        return None;
    };
    let Statement::Insert(insert) = *s else {
        return None;
    };
    let TableObject::TableName(name) = insert.table else {
        return None;
    };
    Some(
        name.0
            .iter()
            .map(|p| p.as_ident().map(normalize_ident).unwrap_or_default())
            .collect(),
    )
}

/// True when a result with `schema` makes an image table: it has an
/// `image` column of the type image values have (`to_png` and `thumbnail`
/// give `Binary`, which stays an ordinary column).
fn makes_image_table(schema: &Schema) -> bool {
    schema.fields().iter().any(|f| {
        f.name() == IMAGE_COLUMN
            && matches!(f.data_type(), DataType::LargeBinary | DataType::BinaryView)
    })
}

/// The layout and identity of the first image table `plan` reads, if any.
fn first_image_table(plan: &LogicalPlan) -> Option<(Chroma, u64)> {
    let mut found = None;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Some(t) = image_table(&scan.source) {
                found = Some((t.chroma(), t.uid()));
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The quality of the image table whose identity is `uid`, if it exists.
fn quality_of(catalog: &Catalog, uid: u64) -> Option<u8> {
    catalog
        .tables
        .iter()
        .find(|(name, t)| t.identity(name) == uid)
        .map(|(_, t)| t.quality)
}

/// Where the result's columns go in the image table.
///
/// - `image`: the images, stored band-coded;
/// - `id` (an integer), if selected: the row ids, which must be unique and
///   not null; if not selected, rows are numbered 0, 1, .. in result order;
/// - `uri` (a string), if selected: kept (not null); if not, empty;
/// - `width`, `height`: always the image's own; if selected, they must
///   equal it (a query cannot make an image claim another size);
/// - every other column: a user column, in result order.
#[derive(Debug, Clone)]
struct Columns {
    image: usize,
    id: Option<usize>,
    uri: Option<usize>,
    width: Option<usize>,
    height: Option<usize>,
    /// (index in the result, field) of each user column.
    user: Vec<(usize, FieldRef)>,
}

impl Columns {
    fn of(schema: &Schema, statement: &str) -> Result<Self> {
        let bad = |msg: String| Err(Error::InvalidArgument(format!("{statement}: {msg}")));
        let mut seen = HashSet::new();
        let mut cols = Columns {
            image: usize::MAX,
            id: None,
            uri: None,
            width: None,
            height: None,
            user: Vec::new(),
        };
        for (i, f) in schema.fields().iter().enumerate() {
            let name = f.name().as_str();
            if !seen.insert(name) {
                return bad(format!(
                    "column '{name}' appears twice in the result: give one an alias"
                ));
            }
            let t = f.data_type();
            let integer = t.is_integer();
            let text = matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
            match name {
                IMAGE_COLUMN => cols.image = i,
                COL_ID if integer => cols.id = Some(i),
                COL_URI if text => cols.uri = Some(i),
                COL_WIDTH if integer => cols.width = Some(i),
                COL_HEIGHT if integer => cols.height = Some(i),
                COL_ID | COL_WIDTH | COL_HEIGHT | COL_URI => {
                    let want = if name == COL_URI {
                        "a string"
                    } else {
                        "an integer"
                    };
                    return bad(format!(
                        "column {name} is {t}, but an image table's {name} is {want}: \
                         select it under another name ({name} AS other_{name}) to keep it \
                         as a column of its own"
                    ));
                }
                _ if is_image_column(name) => {
                    return bad(format!(
                        "column '{name}' has the name of one of the image's stored columns: \
                         give it an alias"
                    ))
                }
                _ => cols.user.push((i, f.clone())),
            }
        }
        Ok(cols)
    }
}

/// An error's message without the kind a caller adds again.
fn reason(e: Error) -> String {
    match e {
        Error::InvalidArgument(m) => m,
        e => e.to_string(),
    }
}

/// The values of an integer column, wide enough for every integer type.
fn integers(a: &ArrayRef) -> Result<Vec<Option<i128>>> {
    Ok(if a.data_type().is_unsigned_integer() {
        let a = cast(a, &DataType::UInt64)?;
        let a = a.as_primitive::<UInt64Type>();
        a.iter().map(|v| v.map(i128::from)).collect()
    } else {
        let a = cast(a, &DataType::Int64)?;
        let a = a.as_primitive::<Int64Type>();
        a.iter().map(|v| v.map(i128::from)).collect()
    })
}

/// Writes the rows of a result into a new image table, file by file.
struct ImageTableWriter {
    tx: Transaction,
    /// `CREATE TABLE <name>`, for error messages.
    statement: String,
    name: String,
    columns: Columns,
    /// Layout and identity of the first image table the query reads.
    scanned: Option<(Chroma, u64)>,
    /// Fixed by the first image.
    layout: Option<(Chroma, u8)>,
    rows: Vec<ImageRow>,
    /// Per user column, the arrays of the rows not yet written.
    user: Vec<Vec<ArrayRef>>,
    bytes: usize,
    ids: HashSet<u64>,
    next_id: u64,
    /// Rows seen so far.
    seen: u64,
    files: Vec<DataFile>,
    /// Images and decoded bytes a file holds at most.
    per_file: (usize, usize),
}

impl ImageTableWriter {
    fn new(
        tx: Transaction,
        name: String,
        columns: Columns,
        scanned: Option<(Chroma, u64)>,
        per_file: (usize, usize),
    ) -> Self {
        ImageTableWriter {
            tx,
            statement: format!("CREATE TABLE {name}"),
            name,
            user: vec![Vec::new(); columns.user.len()],
            columns,
            scanned,
            layout: None,
            rows: Vec::new(),
            bytes: 0,
            ids: HashSet::new(),
            next_id: 0,
            seen: 0,
            files: Vec::new(),
            per_file,
        }
    }

    fn fail(&self, row: u64, id: Option<u64>, msg: impl std::fmt::Display) -> Error {
        let id = id.map(|i| format!(" (id {i})")).unwrap_or_default();
        Error::InvalidArgument(format!("{}: row {row}{id}: {msg}", self.statement))
    }

    /// Converts one batch of the result; writes a file when enough is held.
    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        let images = binary_values(batch.column(self.columns.image).as_ref())
            .ok_or_else(|| Error::Internal("image column is not binary".into()))?;
        let column = |i: Option<usize>| i.map(|i| integers(batch.column(i))).transpose();
        let ids = column(self.columns.id)?;
        let widths = column(self.columns.width)?;
        let heights = column(self.columns.height)?;
        let uris = match self.columns.uri {
            Some(i) => Some(cast(batch.column(i), &DataType::Utf8)?),
            None => None,
        };
        let uris = uris.as_ref().map(|a| a.as_string::<i32>());
        // Rows of this batch from `start` on are not in a file yet.
        let mut start = 0;
        for (r, value) in images.iter().enumerate() {
            self.seen += 1;
            let row = self.seen;
            let id = match &ids {
                Some(ids) => match ids[r].map(u64::try_from) {
                    Some(Ok(id)) => id,
                    Some(Err(_)) => {
                        let v = ids[r].unwrap_or_default();
                        return Err(self.fail(
                            row,
                            None,
                            format!("id is {v} (ids are not negative)"),
                        ));
                    }
                    None => return Err(self.fail(row, None, "id is NULL (ids are not null)")),
                },
                None => self.next_id,
            };
            let given_id = ids.as_ref().map(|_| id);
            let Some(value) = value else {
                return Err(self.fail(
                    row,
                    given_id,
                    "image is NULL: an image table holds an image in every row \
                     (add WHERE image IS NOT NULL)",
                ));
            };
            let header = read_image_header(value).map_err(|e| {
                self.fail(
                    row,
                    given_id,
                    format!(
                        "column image must hold image values to make an image table ({}); \
                         select it under another name to keep it as bytes",
                        reason(e)
                    ),
                )
            })?;
            self.check_complete(&header, value, row, given_id)?;
            let (chroma, _) = *self.layout.get_or_insert_with(|| {
                let quality = header
                    .source
                    .and_then(|s| quality_of(self.tx.catalog(), s.table))
                    .or_else(|| {
                        self.scanned
                            .and_then(|(_, uid)| quality_of(self.tx.catalog(), uid))
                    })
                    .unwrap_or(DEFAULT_QUALITY);
                (header.chroma, quality)
            });
            if header.chroma != chroma {
                return Err(self.fail(
                    row,
                    given_id,
                    format!(
                        "the image is chroma {} but the first image is {}: an image table \
                         holds one layout (make one table per layout)",
                        header.chroma.name(),
                        chroma.name()
                    ),
                ));
            }
            for (name, given, actual) in [
                (COL_WIDTH, &widths, header.width),
                (COL_HEIGHT, &heights, header.height),
            ] {
                if let Some(given) = given {
                    if given[r] != Some(actual.into()) {
                        let shown = given[r].map_or("NULL".into(), |v| v.to_string());
                        return Err(self.fail(
                            row,
                            given_id,
                            format!(
                                "{name} is {shown} but the image's {name} is {actual}: an image \
                                 table's {name} is its image's (select it under another name \
                                 to keep other values)"
                            ),
                        ));
                    }
                }
            }
            if !self.ids.insert(id) {
                return Err(self.fail(
                    row,
                    given_id,
                    "the id appears twice: ids of an image table are unique (select no id \
                     column to number the rows, or select it as another name)",
                ));
            }
            let uri = match uris {
                Some(u) if u.is_null(r) => {
                    return Err(self.fail(row, given_id, "uri is NULL (select '' for none)"))
                }
                Some(u) => u.value(r).to_string(),
                None => String::new(),
            };
            let image =
                decode_image_value(value).map_err(|e| self.fail(row, given_id, reason(e)))?;
            self.bytes += value.len();
            self.next_id = self.next_id.max(id.saturating_add(1));
            self.rows.push(ImageRow { id, uri, image });
            // A sort hands on its whole result as one batch: check per row.
            if self.rows.len() >= self.per_file.0 || self.bytes >= self.per_file.1 {
                self.take_user(batch, start, r + 1);
                start = r + 1;
                self.flush()?;
            }
        }
        self.take_user(batch, start, n);
        Ok(())
    }

    /// Holds rows `start..end` of the batch's user columns.
    fn take_user(&mut self, batch: &RecordBatch, start: usize, end: usize) {
        if end > start {
            for (parts, (i, _)) in self.user.iter_mut().zip(&self.columns.user) {
                parts.push(batch.column(*i).slice(start, end - start));
            }
        }
    }

    /// Every band of every plane, or the reason it cannot be stored.
    fn check_complete(
        &self,
        header: &ImageHeader,
        value: &[u8],
        row: u64,
        id: Option<u64>,
    ) -> Result<()> {
        let planes = header.chroma.planes();
        if header.masks[..planes].iter().all(|&m| m == u64::MAX) {
            return Ok(());
        }
        let has = header.band_count();
        let all = 64 * planes;
        let outputs = inline_outputs(value).map_or(0, |o| o.len());
        let why = if has == 0 && outputs > 0 {
            "the value carries only model outputs, not the image (a scan sends such \
             values when `image` feeds only model functions)"
                .to_string()
        } else {
            format!(
                "the value holds {has} of the image's {all} band columns (it was read for a \
                 model at a reduced format)"
            )
        };
        Err(self.fail(
            row,
            id,
            format!(
                "{why}, and an image table stores every band: select `image` from its image \
                 table so that the whole image is read"
            ),
        ))
    }

    /// Writes the rows held to a new data file of the transaction.
    fn flush(&mut self) -> Result<()> {
        let rows = std::mem::take(&mut self.rows);
        let parts = std::mem::replace(&mut self.user, vec![Vec::new(); self.columns.user.len()]);
        self.bytes = 0;
        if rows.is_empty() && !self.files.is_empty() {
            return Ok(());
        }
        let mut user = Vec::with_capacity(parts.len());
        for (parts, (_, field)) in parts.iter().zip(&self.columns.user) {
            let array = match parts.as_slice() {
                [] => arrow::array::new_empty_array(field.data_type()),
                [one] => one.clone(),
                many => concat(&many.iter().map(|a| a.as_ref()).collect::<Vec<_>>())?,
            };
            user.push((field.clone(), array));
        }
        let (chroma, quality) = self.layout.unwrap_or_else(|| {
            let (chroma, uid) = self.scanned.unwrap_or((Chroma::Yuv420, 0));
            let quality = quality_of(self.tx.catalog(), uid).unwrap_or(DEFAULT_QUALITY);
            (chroma, quality)
        });
        let opts = WriteOptions {
            chroma,
            quality,
            ..Default::default()
        };
        let (rel, abs) = self.tx.new_data_file(&self.name)?;
        let stats = write_image_file(&abs, &opts, &rows, &user)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", self.statement)))?;
        self.files.push(stats.data_file(rel));
        Ok(())
    }

    /// Writes what is left (an empty result still gets one file, which
    /// keeps its user columns) and commits the new table.
    fn finish(mut self, replace: bool) -> Result<Catalog> {
        if !self.rows.is_empty() || self.files.is_empty() {
            self.flush()?;
        }
        let (chroma, quality) = self.layout.unwrap_or_else(|| {
            let (chroma, uid) = self.scanned.unwrap_or((Chroma::Yuv420, 0));
            let quality = quality_of(self.tx.catalog(), uid).unwrap_or(DEFAULT_QUALITY);
            (chroma, quality)
        });
        let version = self.tx.version();
        if replace {
            remove_tables(&mut self.tx, std::slice::from_ref(&self.name));
        }
        let entry = TableEntry {
            chroma: chroma.name().to_string(),
            quality,
            next_id: self.next_id,
            version,
            files: std::mem::take(&mut self.files),
            uid: TableEntry::new_uid(&self.name, version),
            location: None,
            store_options: Default::default(),
        };
        self.tx
            .catalog_mut()
            .tables
            .insert(self.name.clone(), entry);
        Ok(self.tx.commit()?.0)
    }
}

impl Database {
    /// Refuses `INSERT INTO <image table> <query>` with what to do instead
    /// (DataFusion would say only that the table takes no inserts).
    pub(super) fn check_insert(&self, sql: &str) -> Result<()> {
        let Some(name) = insert_target(sql).and_then(|t| self.resolve(&t).ok()) else {
            return Ok(());
        };
        if self.catalog()?.tables.contains_key(&name) {
            return Err(Error::InvalidArgument(format!(
                "INSERT INTO {name}: '{name}' is an image table, which takes images from \
                 files (INSERT INTO {name} FROM '<files>'); CREATE TABLE .. AS SELECT makes \
                 a new image table from a query"
            )));
        }
        Ok(())
    }

    /// `CREATE TABLE .. AS`: an image table when the result has an
    /// `image` column of image values, else DataFusion's ordinary table as
    /// before.
    pub(super) async fn create_table_as(
        &self,
        sql: &str,
        ctas: CreateTableAs,
    ) -> Result<DataFrame> {
        let name = self.resolve(&ctas.name)?;
        let dir = self.dir.clone();
        let tx = off_worker(move || dir.begin()).await?;
        // Under the lock, the query must see the latest version.
        self.sync_async(tx.catalog().clone()).await?;
        self.restore_definitions(tx.catalog()).await;
        let query = DfStatement::Statement(Box::new(Statement::Query(ctas.query)));
        let plan = self.ctx.state().statement_to_plan(query).await?;
        if !makes_image_table(plan.schema().as_arrow()) {
            return match plain::classify(sql) {
                Effect::None => {
                    drop(tx);
                    Ok(self.ctx.sql(sql).await?)
                }
                _ if self.is_in_memory() => {
                    drop(tx);
                    Ok(self.ctx.sql(sql).await?)
                }
                effect => self.run_kept_with(tx, sql, effect).await,
            };
        }
        let statement = format!("CREATE TABLE {name}");
        let image_table = tx.catalog().tables.contains_key(&name);
        if image_table || self.ctx.table_exist(name.as_str())? {
            if ctas.if_not_exists {
                return Ok(self.results.read_empty()?);
            }
            if !(ctas.or_replace && image_table) {
                let hint = if ctas.or_replace {
                    format!("it is not an image table: DROP TABLE {name} first")
                } else {
                    "CREATE OR REPLACE TABLE replaces an image table".to_string()
                };
                return Err(Error::InvalidArgument(format!(
                    "{statement}: table '{name}' already exists ({hint})"
                )));
            }
        }
        check_table_name(&name)?;
        let columns = Columns::of(plan.schema().as_arrow(), &statement)?;
        let scanned = first_image_table(&plan);
        let limits = (IMAGES_PER_FILE, BYTES_PER_FILE);
        let mut writer = ImageTableWriter::new(tx, name, columns, scanned, limits);
        // Image values are ~1 MB each: batches of the rows an image scan
        // emits let a sort or merge free its input as its output is written,
        // where 8192-row batches hold whole copies of the result.
        let mut state = self.ctx.state();
        let config = state.config().clone().with_batch_size(IMAGE_ROWS_PER_BATCH);
        *state.config_mut() = config;
        let mut stream = DataFrame::new(state, plan).execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            // Decoding values and coding bands is CPU work: off the workers.
            writer = off_worker(move || {
                writer.push(&batch)?;
                Ok(writer)
            })
            .await?;
        }
        drop(stream);
        let replace = ctas.or_replace;
        let catalog = off_worker(move || writer.finish(replace)).await?;
        self.sync_async(catalog).await?;
        Ok(self.results.read_empty()?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{LargeBinaryArray, UInt64Array};
    use arrow::datatypes::Field;

    use super::*;
    use crate::codec::encode::{encode_rgb, EncodeOptions};
    use crate::image_value::encode_image_value;
    use crate::storage::catalog::DatabaseDir;

    fn batch(ids: &[u64]) -> RecordBatch {
        let values: Vec<Vec<u8>> = ids
            .iter()
            .map(|&i| {
                let rgb: Vec<u8> = (0..24 * 16 * 3).map(|p| (p as u64 * 7 + i) as u8).collect();
                let img = encode_rgb(&rgb, 24, 16, EncodeOptions::default()).unwrap();
                let mut v = Vec::new();
                encode_image_value(&img, &mut v);
                v
            })
            .collect();
        let schema = Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("image", DataType::LargeBinary, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(UInt64Array::from(ids.to_vec())),
                Arc::new(LargeBinaryArray::from_iter_values(values)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_failure_after_files_were_written_leaves_no_file_and_no_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseDir::open(dir.path()).unwrap();
        let first = batch(&[0, 1]);
        let columns = Columns::of(&first.schema(), "CREATE TABLE c").unwrap();
        let mut w =
            ImageTableWriter::new(db.begin().unwrap(), "c".into(), columns, None, (2, 1 << 30));
        w.push(&first).unwrap();
        w.push(&batch(&[2, 3])).unwrap();
        let files = || {
            std::fs::read_dir(dir.path().join("tables/c"))
                .unwrap()
                .count()
        };
        assert_eq!((w.files.len(), files()), (2, 2), "a file per two images");
        let err = w.push(&batch(&[4, 1])).unwrap_err().to_string();
        assert!(
            err.contains("CREATE TABLE c: row 6 (id 1): the id appears twice"),
            "{err}"
        );
        drop(w); // as the statement does with a writer that failed
        assert_eq!(files(), 0);
        assert_eq!(db.read_catalog().unwrap().version, 0);
    }

    #[test]
    fn one_large_batch_is_split_into_files_with_its_user_columns_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseDir::open(dir.path()).unwrap();
        let ids = [10, 11, 12, 13, 14];
        let images = batch(&ids);
        let notes: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        let mut fields = images.schema().fields().to_vec();
        fields.push(Arc::new(Field::new("note", DataType::Utf8, true)));
        let mut columns = images.columns().to_vec();
        columns.push(Arc::new(arrow::array::StringArray::from(notes)));
        let one = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let cols = Columns::of(&one.schema(), "CREATE TABLE c").unwrap();
        let mut w =
            ImageTableWriter::new(db.begin().unwrap(), "c".into(), cols, None, (2, 1 << 30));
        w.push(&one).unwrap();
        assert_eq!(
            w.files.len(),
            2,
            "two files written while the batch was read"
        );
        let catalog = w.finish(false).unwrap();
        let t = &catalog.tables["c"];
        assert_eq!(
            t.files.iter().map(|f| f.rows).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(t.next_id, 15);
        for f in &t.files {
            let reader = crate::storage::ImageFileReader::open(dir.path().join(&f.path)).unwrap();
            let bands = crate::storage::BandSelection::none();
            for b in reader.scan(&["id", "note"], &bands, 100).unwrap() {
                let b = b.unwrap().batch;
                let ids = b.column_by_name("id").unwrap().as_primitive::<UInt64Type>();
                let notes = b.column_by_name("note").unwrap().as_string::<i32>();
                for r in 0..b.num_rows() {
                    assert_eq!(notes.value(r), format!("n{}", ids.value(r)));
                }
            }
        }
    }

    #[test]
    fn rows_are_numbered_when_no_id_is_selected_and_the_table_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseDir::open(dir.path()).unwrap();
        let images = batch(&[7, 7, 7]).project(&[1]).unwrap();
        let columns = Columns::of(&images.schema(), "CREATE TABLE c").unwrap();
        assert_eq!(columns.id, None);
        let mut w =
            ImageTableWriter::new(db.begin().unwrap(), "c".into(), columns, None, (2, 1 << 30));
        w.push(&images).unwrap();
        let catalog = w.finish(false).unwrap();
        let t = &catalog.tables["c"];
        assert_eq!(
            (t.next_id, t.chroma.as_str(), t.quality),
            (3, "420", DEFAULT_QUALITY)
        );
        assert_eq!(t.files.iter().map(|f| f.rows).collect::<Vec<_>>(), [2, 1]);
    }
}
