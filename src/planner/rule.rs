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
use datafusion::common::{Result as DfResult, TableReference};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDFImpl, TableSource};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::PlannerOptions;
use crate::codec::Chroma;
use crate::error::{Error, Result};
use crate::model::udf::{as_model_fn, ModelFn};
use crate::model::ModelHandle;
use crate::read_format::profile::Profile;
use crate::read_format::space::{ReadFormat, Representation, SpaceParams};
use crate::reuse::slots::OutputSlot;
use crate::reuse::views::{format_acceptable, ViewMatch};
use crate::reuse::Reuse;
use crate::sql::image_scan::ReadPlan;
use crate::sql::image_scan::IMAGE_COLUMN;
use crate::sql::image_table::ImageTable;
use crate::storage::BandSelection;

/// Functions of `image` that read only its header, whatever bands it holds.
const HEADER_ONLY: [&str; 2] = ["width", "height"];

/// The design-space parameters of `model` on `table`.
pub fn space_params(model: &ModelHandle, table: &ImageTable) -> Result<SpaceParams> {
    let (min_width, min_height) = table.min_dims();
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
/// format whose lower bound meets the target, else the default. For a
/// model family the formats are its members' and the choice names the
/// member.
pub fn choose_format(
    model: &ModelHandle,
    table: &ImageTable,
    profiles: &[Profile],
    opts: &PlannerOptions,
) -> Result<Choice> {
    let mut choice = choose_format_or_member(model, table, profiles, opts)?;
    if model.is_family() {
        let (i, _) = model.member(&choice.format).ok_or_else(|| {
            Error::Internal(format!(
                "{}: format {} is no member's (the profile does not match the family)",
                model.name, choice.format
            ))
        })?;
        choice.reason = format!(
            "member {} of {}; {}",
            i + 1,
            model.members.len(),
            choice.reason
        );
    }
    Ok(choice)
}

fn choose_format_or_member(
    model: &ModelHandle,
    table: &ImageTable,
    profiles: &[Profile],
    opts: &PlannerOptions,
) -> Result<Choice> {
    opts.validate()?;
    if let Some(format) = opts.forced_format()? {
        if model.is_family() && model.member(&format).is_none() {
            let formats: Vec<String> = model.members.iter().map(|m| m.format.to_string()).collect();
            return Err(Error::InvalidArgument(format!(
                "read format '{format}' is not one of model family {}'s members: {}",
                model.name,
                formats.join(", ")
            )));
        }
        if !model.is_family() {
            format.check_fits(
                &model.name,
                &model.spec,
                model.entry.size,
                model.dynamic_size(),
            )?;
        }
        return Ok(Choice {
            format,
            reason: "forced by spectradb.read_format".into(),
        });
    }
    let (default, native) = match model.reference_member() {
        Some(r) => (r.format, "the family's largest member".to_string()),
        None => {
            let default = space_params(model, table)?.default_format();
            let native = match default.repr {
                Representation::Pixels { scale, size, .. } => {
                    format!("smallest scale (s{scale}) that yields the model's {size}x{size} input")
                }
                Representation::Coefficients { .. } => "the model's whole coefficient input".into(),
            };
            (default, native)
        }
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

/// Whether view match `m` may stand for a call of `model` on `table`:
/// `Ok(None)` for an exact column; for a compressed one, `Ok` with what
/// CALIBRATE measured when that meets the accuracy target, else `Err` with
/// why not.
fn compressed_verdict(
    m: &ViewMatch,
    model: &ModelHandle,
    table: &ImageTable,
    profile: Option<&Profile>,
    opts: &PlannerOptions,
) -> std::result::Result<Option<String>, String> {
    let Some(compression) = m.compression else {
        return Ok(None);
    };
    let stored = format!(
        "column {} is stored as {}",
        m.output.column,
        compression.name()
    );
    let calibrate = format!("CALIBRATE {} ON {} measures it", model.name, table.name());
    let Some(profile) = profile else {
        return Err(format!("{stored} and nothing measured it ({calibrate})"));
    };
    if let Some(stale) = profile.staleness(&model.entry.checksum, table.version()) {
        return Err(format!("{stored} and {stale} ({calibrate} again)"));
    }
    let Some(stats) = profile.view_stats(&m.view.name, &m.output.column, &m.files()) else {
        return Err(format!(
            "{stored} and the profile did not measure the view as it is now ({calibrate})"
        ));
    };
    let Some(target) = opts.accuracy_target else {
        return Err(format!(
            "{stored} and there is no accuracy target (SET spectradb.accuracy_target = 0.95)"
        ));
    };
    let level = opts.confidence;
    let bound = stats.lower_bound(level);
    let measured = format!(
        "{} lower bound {bound:.3} on {} sample rows",
        profile.metric.name(),
        stats.n
    );
    if bound >= target {
        Ok(Some(format!(
            "stored as {}: {measured} >= {target} ({:.0}% confidence)",
            compression.name(),
            level * 100.0
        )))
    } else {
        Err(format!("{stored}: {measured} < {target}"))
    }
}

/// The rule. Holds the catalog's profiles and what may be reused (the
/// cache, materialized views), which the database refreshes.
#[derive(Debug, Default)]
pub struct FormatPlanner {
    profiles: Arc<RwLock<Vec<Profile>>>,
    reuse: Arc<Reuse>,
}

impl FormatPlanner {
    pub fn new(profiles: Arc<RwLock<Vec<Profile>>>, reuse: Arc<Reuse>) -> Self {
        FormatPlanner { profiles, reuse }
    }
}

pub(crate) fn image_table(source: &Arc<dyn TableSource>) -> Option<ImageTable> {
    let provider = source_as_provider(source).ok()?;
    provider.downcast_ref::<ImageTable>().cloned()
}

/// `m(image)` where `m` is a model function: the function and the column's qualifier.
pub(crate) fn model_call(expr: &Expr) -> Option<(&ModelFn, Option<&TableReference>)> {
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

/// A call of one function over one table, and the view that may stand for it.
struct Call {
    function: ModelFn,
    table: ImageTable,
    view: Option<ViewMatch>,
}

/// One rewrite of a plan, in the order its steps run: collect the image
/// tables and model calls, choose each (model, table)'s format, match
/// materialized views and cache slots, then rewrite the scans and calls.
struct Rewrite {
    tables: Vec<(TableReference, ImageTable)>,
    /// Every model call over an `image` column and its qualifier.
    calls: Vec<(ModelFn, Option<TableReference>)>,
    /// Whether `image` is used beyond model calls (all bands are read).
    raw_use: bool,
    bindings: Vec<Binding>,
    /// Distinct (function, table) calls and the view matched for each.
    reuse_calls: Vec<Call>,
    /// EXPLAIN notes per table about views.
    view_notes: Vec<(String, String)>,
    /// Output slots per table (cache and views).
    slots: Vec<(String, OutputSlot)>,
}

impl Rewrite {
    /// The image tables and model calls of `plan`; `None` when there is
    /// nothing to plan.
    fn collect(plan: &LogicalPlan) -> DfResult<Option<Self>> {
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
            return Ok(None);
        }
        // Every use of an `image` column: model calls, or anything else.
        let mut calls: Vec<(ModelFn, Option<TableReference>)> = Vec::new();
        let mut raw_use = false;
        plan.apply_with_subqueries(|node| {
            node.apply_expressions(|e| {
                e.apply(|x| {
                    if let Some((m, rel)) = model_call(x) {
                        calls.push((m.clone(), rel.cloned()));
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
            return Ok(None);
        }
        Ok(Some(Rewrite {
            tables,
            calls,
            raw_use,
            bindings: Vec::new(),
            reuse_calls: Vec::new(),
            view_notes: Vec::new(),
            slots: Vec::new(),
        }))
    }

    /// The binding of `model` on `table`, chosen on first sight.
    fn bind(
        &mut self,
        model: &ModelHandle,
        table: &ImageTable,
        profiles: &[Profile],
        opts: &PlannerOptions,
    ) -> Result<usize> {
        let known = self
            .bindings
            .iter()
            .position(|b| b.model == model.name && b.table == table.name());
        if let Some(i) = known {
            return Ok(i);
        }
        let choice = choose_format(model, table, profiles, opts).map_err(|e| Error::Function {
            name: model.name.clone(),
            source: Box::new(e),
        })?;
        self.bindings.push(Binding {
            model: model.name.clone(),
            table: table.name().to_string(),
            choice,
        });
        Ok(self.bindings.len() - 1)
    }

    /// Chooses every call's format and the view that may stand for it: a
    /// fresh materialized view holding the output under an acceptable
    /// format binds the call to the view's format.
    fn choose_formats_and_views(
        &mut self,
        reuse: &Reuse,
        profiles: &[Profile],
        opts: &PlannerOptions,
    ) -> Result<()> {
        for (function, rel) in std::mem::take(&mut self.calls) {
            let model = function.handle().clone();
            let Some(table) = table_of(&self.tables, rel.as_ref()).cloned() else {
                // Cannot tell which table feeds it: leave it unbound and read everything.
                self.raw_use = true;
                continue;
            };
            let index = self.bind(&model, &table, profiles, opts)?;
            let seen = self
                .reuse_calls
                .iter()
                .any(|c| c.function.name() == function.name() && c.table.name() == table.name());
            if seen {
                continue;
            }
            let (matches, passed) =
                reuse.view_matches(&model.call(function.name()), table.reuse_ref());
            for p in passed {
                self.note(&table, format!("{}: {p}", function.name()));
            }
            let profile = profiles
                .iter()
                .find(|p| p.model == model.name && p.table == table.name());
            let chosen = self.bindings[index].choice.format;
            // Exact columns first: a compressed one stands in only when no
            // exact one does.
            let mut matches = matches;
            matches.sort_by_key(|m| m.compression.is_some());
            let mut usable = None;
            for m in matches {
                if !format_acceptable(
                    m.format,
                    chosen,
                    profile,
                    opts.accuracy_target,
                    opts.confidence,
                ) {
                    continue;
                }
                match compressed_verdict(&m, &model, &table, profile, opts) {
                    Ok(why) => {
                        self.bind_to_view(index, &m, &function, &table, why);
                        usable = Some(m);
                        break;
                    }
                    Err(why) => self.note(
                        &table,
                        format!("{}: view {} not used: {why}", function.name(), m.view.name),
                    ),
                }
            }
            self.reuse_calls.push(Call {
                function,
                table,
                view: usable,
            });
        }
        Ok(())
    }

    /// Binds call `index` to view `m`'s format and says so in EXPLAIN
    /// (`compressed`: why a compressed column may stand in).
    fn bind_to_view(
        &mut self,
        index: usize,
        m: &ViewMatch,
        function: &ModelFn,
        table: &ImageTable,
        compressed: Option<String>,
    ) {
        let made = m.format.expect("acceptable formats are set");
        let b = &mut self.bindings[index];
        if b.choice.format != made {
            b.choice = Choice {
                format: made,
                reason: format!(
                    "format of materialized view {}, which meets the accuracy target",
                    m.view.name
                ),
            };
        }
        let appended = m.view.behind(table.name(), table.version());
        let backbone = if m.via_backbone {
            ", the backbone's output"
        } else {
            ""
        };
        let computed = if appended {
            "; rows added since its refresh are computed"
        } else {
            ""
        };
        let compressed = compressed.map(|c| format!(", {c}")).unwrap_or_default();
        self.note(
            table,
            format!(
                "{}: from materialized view {} (column {}{backbone}{compressed}){computed}",
                function.name(),
                m.view.name,
                m.output.column,
            ),
        );
    }

    fn note(&mut self, table: &ImageTable, note: String) {
        self.view_notes.push((table.name().to_string(), note));
    }

    /// The output slot of each call a row's outputs may come from (the
    /// cache, a view); none when `image` is used raw.
    fn assign_slots(&mut self, reuse: &Reuse) -> Result<()> {
        if self.raw_use {
            return Ok(());
        }
        for c in &self.reuse_calls {
            if !reuse.cache.enabled() && c.view.is_none() {
                continue;
            }
            let format = self
                .bindings
                .iter()
                .find(|b| b.model == c.function.handle().name && b.table == c.table.name())
                .map(|b| b.choice.format);
            let call = c.function.handle().call(c.function.name());
            let slot = reuse.slot(&call, format, c.view.as_ref())?;
            self.slots.push((c.table.name().to_string(), slot));
        }
        Ok(())
    }

    /// What the scan of `table` reads: the union of its calls' bands, the
    /// notes EXPLAIN shows, and the slots when every call has one (a row's
    /// bands are skipped only when all its outputs are found).
    fn read_plan(&self, table: &str, cache_enabled: bool) -> ReadPlan {
        let mut bands = BandSelection::none();
        let mut notes = Vec::new();
        for b in self.bindings.iter().filter(|b| b.table == table) {
            let m = b.choice.format.bands().masks;
            for (have, add) in bands.masks.iter_mut().zip(m) {
                *have |= add;
            }
            notes.push(format!(
                "{}: format={} ({})",
                b.model, b.choice.format, b.choice.reason
            ));
        }
        notes.extend(
            self.view_notes
                .iter()
                .filter(|(t, _)| t == table)
                .map(|(_, n)| n.clone()),
        );
        if self.raw_use {
            bands = BandSelection::all();
            notes.push("image is used beyond model calls: all bands read".into());
        }
        let calls_here = self
            .reuse_calls
            .iter()
            .filter(|c| c.table.name() == table)
            .count();
        let slots_here: Vec<OutputSlot> = self
            .slots
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, s)| s.clone())
            .collect();
        let slots = if slots_here.len() == calls_here {
            slots_here
        } else {
            Vec::new()
        };
        if !slots.is_empty() && cache_enabled {
            notes.push("rows whose outputs are cached read no bands".into());
        }
        ReadPlan {
            bands,
            notes,
            slots,
        }
    }

    /// Gives each image table scan its read plan and each model call its
    /// format.
    fn apply(&self, plan: LogicalPlan, cache_enabled: bool) -> DfResult<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|node| {
            let node = match node {
                LogicalPlan::TableScan(mut scan) => match image_table(&scan.source) {
                    Some(t) => {
                        let want = self.read_plan(t.name(), cache_enabled);
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
            node.transform_data(|n| n.map_expressions(|e| e.transform_up(|x| self.bind_call(x))))
        })
    }

    /// `m(image)` bound to its format: `m` with the format set.
    fn bind_call(&self, x: Expr) -> DfResult<Transformed<Expr>> {
        let Some((m, rel)) = model_call(&x).map(|(m, r)| (m.clone(), r.cloned())) else {
            return Ok(Transformed::no(x));
        };
        let table = table_of(&self.tables, rel.as_ref()).map(ImageTable::name);
        let Some(b) = self
            .bindings
            .iter()
            .find(|b| b.model == m.handle().name && Some(b.table.as_str()) == table)
        else {
            return Ok(Transformed::no(x));
        };
        let approximate = self.reuse_calls.iter().any(|c| {
            c.function.name() == m.name()
                && Some(c.table.name()) == table
                && c.view.as_ref().is_some_and(|v| v.compression.is_some())
        });
        if m.format() == Some(b.choice.format) && m.approximate() == approximate {
            return Ok(Transformed::no(x));
        }
        let Expr::ScalarFunction(ScalarFunction { args, .. }) = x else {
            unreachable!("model_call matched a scalar function")
        };
        let func = Arc::new(m.with_format(b.choice.format, approximate));
        Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
            func,
            args,
        })))
    }
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
        let Some(mut rewrite) = Rewrite::collect(&plan)? else {
            return Ok(Transformed::no(plan));
        };
        let options = config.options();
        let opts = options
            .extensions
            .get::<PlannerOptions>()
            .cloned()
            .unwrap_or_default();
        let profiles = self.profiles.read().expect("profiles lock").clone();
        rewrite.choose_formats_and_views(&self.reuse, &profiles, &opts)?;
        rewrite.assign_slots(&self.reuse)?;
        rewrite.apply(plan, self.reuse.cache.enabled())
    }
}
