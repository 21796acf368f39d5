//! Everything that lets a query take a model's output instead of computing
//! it: the output cache, the keys outputs travel under, the slots a scan
//! fills from them, and the materialized views that hold outputs.
//!
//! Image AI work repeats itself (the same photos through the same model
//! with another filter, heads sharing a backbone), so for each model call
//! over an image table the format planner asks [`Reuse::slot`] for the
//! places that may hold its result per row; the scan looks there before it
//! reads a row's bands ([`slots::covered`]), and the model functions look
//! in the cache before they run ([`cache::ModelCache`]).
//!
//! - [`cache`]: model outputs in memory between queries (moka, bounded in
//!   bytes, one computation per key for concurrent misses)
//! - [`keys`]: the keys outputs are handed over under inside a value
//! - [`slots`]: one call's alternatives (cache, view column) and the rows
//!   they cover
//! - [`compress`]: how a view stores its float vectors (f16, int8)
//! - [`views`]: materialized views as output sources: fresh or stale,
//!   formats that may stand for the planner's choice
//!
//! It sits below the model functions, the scan and the planner, so it
//! knows models and tables only by the identities in [`ModelRef`] and
//! [`TableRef`].

pub mod cache;
pub mod compress;
pub mod keys;
pub mod slots;
pub mod views;

use std::sync::{Arc, RwLock};

use crate::error::Result;
use crate::read_format::model_spec::OutputKind;
use crate::read_format::space::ReadFormat;
use cache::ModelCache;
use keys::{raw_output_key, result_key};
use slots::{OutputSlot, SlotSource};
use views::{ViewMatch, ViewSource};

/// A model as reuse knows it: its name, the checksum of its file (outputs
/// of another file never match) and what its function returns.
#[derive(Debug, Clone, Copy)]
pub struct ModelRef<'a> {
    pub name: &'a str,
    pub checksum: &'a str,
    pub output: OutputKind,
}

impl ModelRef<'_> {
    /// Whether `function` returns this model's raw output vector.
    fn returns_vector(&self, function: &str) -> bool {
        function == format!("{}_scores", self.name)
            || (function == self.name
                && matches!(self.output, OutputKind::Scores | OutputKind::Embedding))
    }
}

/// One model function call: the function's name, its model, and for a head
/// the backbone whose output it takes.
#[derive(Debug, Clone, Copy)]
pub struct ModelCall<'a> {
    pub function: &'a str,
    pub model: ModelRef<'a>,
    pub backbone: Option<ModelRef<'a>>,
}

/// An image table by name and identity (a table dropped and created again
/// under the same name has another).
#[derive(Debug, Clone, Copy)]
pub struct TableRef<'a> {
    pub name: &'a str,
    pub uid: u64,
}

/// The cache and the views, shared by the database and the planner.
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

impl Reuse {
    /// The fresh view columns that hold `call`'s result (or, for a head,
    /// its backbone's output) for `table`'s rows, compressed ones included
    /// (marked), with the reasons others were passed over.
    pub fn view_matches(
        &self,
        call: &ModelCall<'_>,
        table: TableRef<'_>,
    ) -> (Vec<ViewMatch>, Vec<String>) {
        let views = self.views.read().expect("views lock").clone();
        let model = call.model;
        let mut found = Vec::new();
        let mut passed = Vec::new();
        for v in views {
            for o in &v.view.lineage.outputs {
                if o.table != table.name || v.view.lineage.id_column.is_none() {
                    continue;
                }
                let direct = o.model == model.name
                    && (o.function == call.function || model.returns_vector(&o.function));
                let backbone = call
                    .backbone
                    .filter(|b| o.model == b.name && b.returns_vector(&o.function));
                if !direct && backbone.is_none() {
                    continue;
                }
                let current = backbone.map_or(model.checksum, |b| b.checksum);
                if o.checksum != current {
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
                let compression = v
                    .view
                    .compressed_columns
                    .contains(&o.column)
                    .then_some(v.view.compression);
                found.push(ViewMatch {
                    view: v.clone(),
                    output: o.clone(),
                    format: o.format,
                    via_backbone: !direct,
                    compression,
                });
            }
        }
        (found, passed)
    }

    /// The slot of `call` bound to `format`: the cache (its own output, or
    /// its backbone's for a head) and `view`.
    pub fn slot(
        &self,
        call: &ModelCall<'_>,
        format: Option<ReadFormat>,
        view: Option<&ViewMatch>,
    ) -> Result<OutputSlot> {
        let model = call.model;
        let mut sources = Vec::new();
        let mut description = format!(
            "{} {}",
            call.function,
            format.map_or("default".into(), |f| f.to_string())
        );
        if let Some(m) = view {
            let key = match call.backbone {
                Some(b) if m.via_backbone => raw_output_key(b.checksum, format.as_ref()),
                _ if model.returns_vector(&m.output.function) => {
                    raw_output_key(model.checksum, format.as_ref())
                }
                _ => result_key(call.function, model.checksum, format.as_ref()),
            };
            sources.push(SlotSource::View {
                column: m.view.column(&m.output.column)?,
                key,
            });
            description.push_str(&format!(" view {}.{}", m.view.name, m.output.column));
        }
        if self.cache.enabled() {
            for h in std::iter::once(model).chain(call.backbone) {
                sources.push(SlotSource::Cached {
                    cache: self.cache.clone(),
                    checksum: h.checksum.into(),
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
