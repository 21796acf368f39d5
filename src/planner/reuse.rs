//! What the planner may reuse instead of computing: the output cache and
//! materialized views that hold a model's output for a table.
//!
//! For each model call over an image table the rule asks [`Reuse::slot`]
//! for the places that may hold its result per row. A view qualifies when
//! it was computed from the same table (identity, so a table dropped and
//! created again does not match), by the same model file, under a read
//! format that meets the query's accuracy target; rows appended since the
//! view's last refresh are simply not in it and get computed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Int64Type, UInt64Type};

use crate::cache::ModelCache;
use crate::error::{Error, Result};
use crate::format::model_spec::OutputKind;
use crate::format::profile::Profile;
use crate::format::read_format::ReadFormat;
use crate::model::ModelHandle;
use crate::sql::image_table::ImageTable;
use crate::sql::image_value::OutputValue;
use crate::sql::output_slots::{raw_output_key, result_key, OutputSlot, SlotSource, ViewColumn};
use crate::storage::catalog::{MaterializedView, ViewOutput};

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
    fn column(&self, column: &str) -> Result<Arc<ViewColumn>> {
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
    fn stale_for(&self, table: &ImageTable) -> Option<String> {
        let read = self
            .view
            .lineage
            .tables
            .iter()
            .find(|t| t.name == table.name())?;
        (read.uid != table.uid()).then(|| {
            format!(
                "stale: table {} was replaced since it was computed (REFRESH MATERIALIZED VIEW {})",
                table.name(),
                self.name
            )
        })
    }
}

/// The cache and the views, shared by the database and the rule.
#[derive(Default)]
pub struct Reuse {
    pub cache: Arc<ModelCache>,
    pub views: RwLock<Vec<Arc<ViewSource>>>,
}

impl std::fmt::Debug for Reuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reuse({:?})", self.cache)
    }
}

/// A view column that can stand for a call, and the format it was made under.
pub struct ViewMatch {
    pub view: Arc<ViewSource>,
    pub output: ViewOutput,
    pub format: Option<ReadFormat>,
    /// Set when it holds the backbone's output for a head.
    pub via_backbone: bool,
}

/// Whether a function returns its model's raw output vector.
fn returns_vector(function: &str, model: &ModelHandle) -> bool {
    function == format!("{}_scores", model.name)
        || (function == model.name
            && matches!(
                model.spec.output,
                OutputKind::Scores | OutputKind::Embedding
            ))
}

impl Reuse {
    /// The fresh view columns that hold `function`'s result (or, for a
    /// head, its backbone's output) for `table`'s rows, with the reasons
    /// others were passed over.
    pub fn view_matches(
        &self,
        function: &str,
        model: &ModelHandle,
        table: &ImageTable,
    ) -> (Vec<ViewMatch>, Vec<String>) {
        let views = self.views.read().expect("views lock").clone();
        let mut found = Vec::new();
        let mut passed = Vec::new();
        for v in views {
            for o in &v.view.lineage.outputs {
                if o.table != table.name() || v.view.lineage.id_column.is_none() {
                    continue;
                }
                let direct = o.model == model.name
                    && (o.function == function || returns_vector(&o.function, model));
                let backbone = model
                    .backbone
                    .as_ref()
                    .filter(|b| o.model == b.name && returns_vector(&o.function, b));
                if !direct && backbone.is_none() {
                    continue;
                }
                let current = backbone.map_or(&model.entry.checksum, |b| &b.entry.checksum);
                if &o.checksum != current {
                    passed.push(format!(
                        "view {} not used: stale (model {} changed since it was computed; REFRESH MATERIALIZED VIEW {})",
                        v.name, o.model, v.name
                    ));
                    continue;
                }
                if let Some(why) = v.stale_for(table) {
                    passed.push(format!("view {} not used: {why}", v.name));
                    continue;
                }
                found.push(ViewMatch {
                    view: v.clone(),
                    output: o.clone(),
                    format: o.format,
                    via_backbone: !direct,
                });
            }
        }
        (found, passed)
    }

    /// The slot of a call of `function` (model `model`) bound to `format`:
    /// the cache (its own output, or its backbone's for a head) and `view`.
    pub fn slot(
        &self,
        function: &str,
        model: &ModelHandle,
        format: Option<ReadFormat>,
        view: Option<&ViewMatch>,
    ) -> Result<OutputSlot> {
        let mut sources = Vec::new();
        let mut description = format!(
            "{function} {}",
            format.map_or("default".into(), |f| f.to_string())
        );
        if let Some(m) = view {
            let key = if m.via_backbone {
                let b = model.backbone.as_ref().expect("a head");
                raw_output_key(&b.entry.checksum, format.as_ref())
            } else if returns_vector(&m.output.function, model) {
                raw_output_key(&model.entry.checksum, format.as_ref())
            } else {
                result_key(function, &model.entry.checksum, format.as_ref())
            };
            sources.push(SlotSource::View {
                column: m.view.column(&m.output.column)?,
                key,
            });
            description.push_str(&format!(" view {}.{}", m.view.name, m.output.column));
        }
        if self.cache.enabled() {
            for h in std::iter::once(model).chain(model.backbone.as_deref()) {
                sources.push(SlotSource::Cached {
                    cache: self.cache.clone(),
                    checksum: h.entry.checksum.as_str().into(),
                    format,
                });
            }
            description.push_str(" cache");
        }
        Ok(OutputSlot {
            description,
            sources,
        })
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
