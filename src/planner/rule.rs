//! The optimizer rule that binds every model call over an image table to a
//! read format and pushes the union of their bands into the table's scan.
//!
//! It runs last, after DataFusion has pushed projections down, and looks
//! at the whole plan: if the `image` column is used anywhere other than as
//! the argument of a model function (or of `width`/`height`, which read
//! only the header), the scan keeps every band, because that use may need
//! them. Otherwise the scan reads exactly the chosen formats' bands.

use std::sync::{Arc, RwLock};

use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result as DfResult, TableReference};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, TableSource};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::PlannerOptions;
use crate::codec::Chroma;
use crate::error::Result;
use crate::format::profile::Profile;
use crate::format::read_format::{ReadFormat, Representation, SpaceParams};
use crate::model::udf::{as_model_fn, ModelFn};
use crate::model::ModelHandle;
use crate::sql::image_scan::ReadPlan;
use crate::sql::image_table::{ImageTable, IMAGE_COLUMN};
use crate::storage::BandSelection;

/// Functions of `image` that read only its header, whatever bands it holds.
const HEADER_ONLY: [&str; 2] = ["width", "height"];

/// The design-space parameters of `model` on `table`.
pub fn space_params(model: &ModelHandle, table: &ImageTable) -> Result<SpaceParams> {
    let (min_width, min_height) = table.min_dims()?;
    Ok(SpaceParams {
        native: model.entry.size,
        dynamic_size: model.dynamic_size(),
        coefficient_bands: model.spec.coefficient_bands,
        min_width: min_width.max(1),
        min_height: min_height.max(1),
        gray: table.chroma() == Chroma::Gray,
    })
}

/// A model's read format for one query, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub format: ReadFormat,
    pub reason: String,
}

/// Picks `model`'s format on `table`: forced, else the cheapest profiled
/// format whose lower bound meets the target, else the default.
pub fn choose_format(
    model: &ModelHandle,
    table: &ImageTable,
    profiles: &[Profile],
    opts: &PlannerOptions,
) -> Result<Choice> {
    opts.validate()?;
    if let Some(format) = opts.forced_format()? {
        format.check_fits(
            &model.name,
            &model.spec,
            model.entry.size,
            model.dynamic_size(),
        )?;
        return Ok(Choice {
            format,
            reason: "forced by spectradb.read_format".into(),
        });
    }
    let params = space_params(model, table)?;
    let default = params.default_format();
    let native = match default.repr {
        Representation::Pixels { scale, size, .. } => {
            format!("smallest scale (s{scale}) that yields the model's {size}x{size} input")
        }
        Representation::Coefficients { .. } => "the model's whole coefficient input".into(),
    };
    let fallback = |why: String| Choice {
        format: default,
        reason: format!("{why}; {native}"),
    };
    let Some(profile) = profiles
        .iter()
        .find(|p| p.model == model.name && p.table == table.name())
    else {
        return Ok(fallback(format!(
            "no profile (CALIBRATE {} ON {})",
            model.name,
            table.name()
        )));
    };
    if let Some(stale) = profile.staleness(&model.entry.checksum, table.version()) {
        return Ok(fallback(format!("{stale}, not used")));
    }
    let Some(target) = opts.accuracy_target else {
        return Ok(fallback(
            "no accuracy target (SET spectradb.accuracy_target = 0.95)".into(),
        ));
    };
    let level = opts.confidence;
    let metric = profile.metric.name();
    Ok(match profile.cheapest_meeting(target, level) {
        Some(f) => Choice {
            format: f.format,
            reason: format!(
                "cheapest calibrated format with {metric} lower bound {:.3} >= {target} ({:.0}% confidence)",
                f.lower_bound(level),
                level * 100.0
            ),
        },
        None => {
            let best = profile
                .formats
                .iter()
                .map(|f| f.lower_bound(level))
                .fold(0.0, f64::max);
            Choice {
                format: profile.reference,
                reason: format!(
                    "no calibrated format has a lower bound on {metric} >= {target} (best {best:.3} from a sample of {}); full quality",
                    profile.sample
                ),
            }
        }
    })
}

/// The rule. Holds the catalog's profiles, which the database refreshes.
#[derive(Debug, Default)]
pub struct FormatPlanner {
    profiles: Arc<RwLock<Vec<Profile>>>,
}

impl FormatPlanner {
    pub fn new(profiles: Arc<RwLock<Vec<Profile>>>) -> Self {
        FormatPlanner { profiles }
    }
}

fn image_table(source: &Arc<dyn TableSource>) -> Option<ImageTable> {
    let provider = source_as_provider(source).ok()?;
    provider.downcast_ref::<ImageTable>().cloned()
}

/// `m(image)` where `m` is a model function: the function and the column's qualifier.
fn model_call(expr: &Expr) -> Option<(&ModelFn, Option<&TableReference>)> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = expr else {
        return None;
    };
    match args.as_slice() {
        [Expr::Column(c)] if c.name == IMAGE_COLUMN => {
            as_model_fn(func).map(|m| (m, c.relation.as_ref()))
        }
        _ => None,
    }
}

/// The image table a model call's `image` column comes from: the scan its
/// qualifier names, else the only image table in the plan.
fn table_of<'a>(
    tables: &'a [(TableReference, ImageTable)],
    rel: Option<&TableReference>,
) -> Option<&'a ImageTable> {
    rel.and_then(|r| tables.iter().find(|(name, _)| name == r))
        .or_else(|| (tables.len() == 1).then(|| &tables[0]))
        .map(|(_, t)| t)
}

fn is_header_call(expr: &Expr) -> bool {
    matches!(expr, Expr::ScalarFunction(ScalarFunction { func, args })
        if HEADER_ONLY.contains(&func.name())
            && matches!(args.as_slice(), [Expr::Column(c)] if c.name == IMAGE_COLUMN))
}

/// One model call's binding.
struct Binding {
    model: String,
    table: String,
    choice: Choice,
}

impl OptimizerRule for FormatPlanner {
    fn name(&self) -> &str {
        "spectradb_format_planner"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let mut tables: Vec<(TableReference, ImageTable)> = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                if let Some(t) = image_table(&scan.source) {
                    tables.push((scan.table_name.clone(), t));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if tables.is_empty() {
            return Ok(Transformed::no(plan));
        }
        // Every use of an `image` column: model calls, or anything else.
        let mut calls: Vec<(Arc<ModelHandle>, Option<TableReference>)> = Vec::new();
        let mut raw_use = false;
        plan.apply_with_subqueries(|node| {
            node.apply_expressions(|e| {
                e.apply(|x| {
                    if let Some((m, rel)) = model_call(x) {
                        calls.push((m.handle().clone(), rel.cloned()));
                        return Ok(TreeNodeRecursion::Jump);
                    }
                    if is_header_call(x) {
                        return Ok(TreeNodeRecursion::Jump);
                    }
                    if matches!(x, Expr::Column(c) if c.name == IMAGE_COLUMN) {
                        raw_use = true;
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })?;
        if calls.is_empty() {
            return Ok(Transformed::no(plan));
        }
        let options = config.options();
        let opts = options
            .extensions
            .get::<PlannerOptions>()
            .cloned()
            .unwrap_or_default();
        let profiles = self.profiles.read().expect("profiles lock").clone();
        let mut bindings: Vec<Binding> = Vec::new();
        for (model, rel) in &calls {
            let Some(table) = table_of(&tables, rel.as_ref()) else {
                // Cannot tell which table feeds it: leave it unbound and read everything.
                raw_use = true;
                continue;
            };
            if bindings
                .iter()
                .any(|b| b.model == model.name && b.table == table.name())
            {
                continue;
            }
            let choice = choose_format(model, table, &profiles, &opts).map_err(|e| {
                DataFusionError::Plan(format!("choosing a read format for {}: {e}", model.name))
            })?;
            bindings.push(Binding {
                model: model.name.clone(),
                table: table.name().to_string(),
                choice,
            });
        }
        let read_plan = |table: &str| {
            let mut bands = BandSelection::none();
            let mut notes = Vec::new();
            for b in bindings.iter().filter(|b| b.table == table) {
                let m = b.choice.format.bands().masks;
                for (have, add) in bands.masks.iter_mut().zip(m) {
                    *have |= add;
                }
                notes.push(format!(
                    "{}: format={} ({})",
                    b.model, b.choice.format, b.choice.reason
                ));
            }
            if raw_use {
                bands = BandSelection::all();
                notes.push("image is used beyond model calls: all bands read".into());
            }
            ReadPlan { bands, notes }
        };
        plan.transform_up_with_subqueries(|node| {
            let node = match node {
                LogicalPlan::TableScan(mut scan) => match image_table(&scan.source) {
                    Some(t) => {
                        let want = read_plan(t.name());
                        if t.read_plan() == Some(&want) {
                            Transformed::no(LogicalPlan::TableScan(scan))
                        } else {
                            scan.source = provider_as_source(Arc::new(t.with_read_plan(want)));
                            Transformed::yes(LogicalPlan::TableScan(scan))
                        }
                    }
                    None => Transformed::no(LogicalPlan::TableScan(scan)),
                },
                other => Transformed::no(other),
            };
            node.transform_data(|n| {
                n.map_expressions(|e| {
                    e.transform_up(|x| {
                        let Some((m, rel)) = model_call(&x).map(|(m, r)| (m.clone(), r.cloned()))
                        else {
                            return Ok(Transformed::no(x));
                        };
                        let table = table_of(&tables, rel.as_ref()).map(ImageTable::name);
                        let Some(b) = bindings.iter().find(|b| {
                            b.model == m.handle().name && Some(b.table.as_str()) == table
                        }) else {
                            return Ok(Transformed::no(x));
                        };
                        if m.format() == Some(b.choice.format) {
                            return Ok(Transformed::no(x));
                        }
                        let Expr::ScalarFunction(ScalarFunction { args, .. }) = x else {
                            unreachable!("model_call matched a scalar function")
                        };
                        let func = Arc::new(m.with_format(b.choice.format));
                        Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                            func,
                            args,
                        })))
                    })
                })
            })
        })
    }
}
