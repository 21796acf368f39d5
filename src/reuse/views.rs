//! Materialized views as sources of model outputs: a view's stored rows
//! indexed by image id, whether it still stands for a table, and whether
//! the read format it was computed under may stand for the planner's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Int64Type, UInt64Type};

use super::slots::ViewColumn;
use super::TableRef;
use crate::error::{Error, Result};
use crate::image_value::OutputValue;
use crate::read_format::profile::Profile;
use crate::read_format::space::ReadFormat;
use crate::storage::catalog::{Compression, MaterializedView, TableRead, ViewOutput};

/// A materialized view's stored rows, as the planner reads them.
pub struct ViewSource {
    pub name: String,
    pub view: MaterializedView,
    batches: Vec<RecordBatch>,
    /// Columns indexed by id so far.
    columns: Mutex<HashMap<String, Arc<ViewColumn>>>,
}

impl ViewSource {
    pub fn new(name: &str, view: MaterializedView, batches: Vec<RecordBatch>) -> Self {
        ViewSource {
            name: name.to_string(),
            view,
            batches,
            columns: Mutex::new(HashMap::new()),
        }
    }

    /// `column`'s values by image id (built once).
    pub(super) fn column(&self, column: &str) -> Result<Arc<ViewColumn>> {
        if let Some(c) = self.columns.lock().expect("view columns lock").get(column) {
            return Ok(c.clone());
        }
        let id_column = self
            .view
            .lineage
            .id_column
            .as_deref()
            .ok_or_else(|| Error::Internal(format!("view {} has no id column", self.name)))?;
        let bad = |what: String| Error::InvalidArgument(format!("view {}: {what}", self.name));
        let mut values = HashMap::new();
        for batch in &self.batches {
            let ids = batch
                .column_by_name(id_column)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or_else(|| bad(format!("column {id_column} is not u64")))?;
            let col = batch
                .column_by_name(column)
                .ok_or_else(|| bad(format!("no column {column}")))?;
            for row in 0..batch.num_rows() {
                if ids.is_null(row) || col.is_null(row) {
                    continue;
                }
                let value = match col.data_type() {
                    DataType::Utf8 => OutputValue::Label(col.as_string::<i32>().value(row).into()),
                    DataType::Int64 => {
                        OutputValue::Class(col.as_primitive::<Int64Type>().value(row))
                    }
                    DataType::FixedSizeList(_, _) => {
                        let list = col.as_fixed_size_list().value(row);
                        let floats = list
                            .as_primitive_opt::<Float32Type>()
                            .ok_or_else(|| bad(format!("column {column} is not a float list")))?;
                        OutputValue::Vector(floats.values().iter().copied().collect())
                    }
                    other => return Err(bad(format!("column {column} holds {other}"))),
                };
                values.insert(ids.value(row), value);
            }
        }
        let c = Arc::new(ViewColumn { values });
        self.columns
            .lock()
            .expect("view columns lock")
            .insert(column.to_string(), c.clone());
        Ok(c)
    }

    /// Why this view cannot stand for outputs over `table` (`None`: it can).
    pub(super) fn stale_for(&self, table: TableRef<'_>) -> Option<String> {
        let read = self.read_of(table.name)?;
        (read.uid != table.uid).then(|| {
            format!(
                "stale: table {} was replaced since it was computed (REFRESH MATERIALIZED VIEW {})",
                table.name, self.name
            )
        })
    }

    /// Whether `table` gained rows since this view was computed from it
    /// (`version`: the table's version now).
    pub fn behind(&self, table: &str, version: u64) -> bool {
        self.read_of(table).is_some_and(|t| t.version != version)
    }

    /// What the view's lineage recorded of `table` when it was computed.
    fn read_of(&self, table: &str) -> Option<&TableRead> {
        self.view.lineage.tables.iter().find(|t| t.name == table)
    }
}

/// A view column that can stand for a call, and the format it was made under.
pub struct ViewMatch {
    pub view: Arc<ViewSource>,
    pub output: ViewOutput,
    pub format: Option<ReadFormat>,
    /// Set when it holds the backbone's output for a head.
    pub via_backbone: bool,
    /// Set when the column is stored compressed: its values are near the
    /// model's, not equal, and stand in only where CALIBRATE measured them.
    pub compression: Option<Compression>,
}

impl ViewMatch {
    /// The view's data files, which identify what CALIBRATE measured.
    pub fn files(&self) -> Vec<String> {
        self.view
            .view
            .files
            .iter()
            .map(|f| f.path.clone())
            .collect()
    }

    /// Stored bytes per row of the view.
    pub fn bytes_per_row(&self) -> f64 {
        let (bytes, rows) = self
            .view
            .view
            .files
            .iter()
            .fold((0, 0), |(b, r), f| (b + f.bytes, r + f.rows));
        bytes as f64 / rows.max(1) as f64
    }

    /// `column`'s decoded values by image id.
    pub fn values(&self) -> Result<Arc<ViewColumn>> {
        self.view.column(&self.output.column)
    }
}

/// Whether a view made under `made` may stand for a call whose planner
/// choice is `chosen`: the same format, or one the profile says meets the
/// accuracy target.
pub fn format_acceptable(
    made: Option<ReadFormat>,
    chosen: ReadFormat,
    profile: Option<&Profile>,
    target: Option<f64>,
    confidence: f64,
) -> bool {
    let Some(made) = made else { return false };
    if made == chosen {
        return true;
    }
    match (profile, target) {
        (Some(p), Some(t)) => p
            .formats
            .iter()
            .any(|f| f.format == made && f.lower_bound(confidence) >= t),
        _ => false,
    }
}
