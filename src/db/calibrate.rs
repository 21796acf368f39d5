//! The database side of the format planner: `CALIBRATE`, `SHOW FORMATS`
//! and `EXPLAIN ANALYZE` with model timings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    BooleanArray, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::DataFrame;

use super::{off_worker, Database};
use crate::error::{Error, Result};
use crate::model::udf::as_model_fn;
use crate::model::ModelHandle;
use crate::planner::calibrate::{calibrate, CalibrateRequest, CalibrationProgress, DEFAULT_SAMPLE};
use crate::planner::chart::{render_svg, ChartPoint};
use crate::read_format::profile::{Metric, Profile};
use crate::sql::image_table::{DamagedTable, ImageTable};
use crate::storage::catalog::Catalog;

/// Whether `sql` is `EXPLAIN ANALYZE ...` (after leading whitespace).
pub(super) fn is_explain_analyze(sql: &str) -> bool {
    let mut words = sql.split_whitespace().map(str::to_ascii_lowercase);
    words.next().as_deref() == Some("explain") && words.next().as_deref() == Some("analyze")
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

impl Database {
    /// Sets (or clears) the receiver of CALIBRATE progress.
    pub fn set_calibration_progress(&self, progress: Option<Arc<dyn CalibrationProgress>>) {
        *self.calibration_progress.lock().expect("progress lock") = progress;
    }

    /// A flag that stops the running statements when set: CALIBRATE
    /// stores nothing and model functions stop before their next chunk of
    /// images, both with [`Error::Cancelled`]. Each statement clears it when
    /// it starts (it is meant for one statement at a time, as the shell
    /// runs them; [`crate::cancel::QueryCancel`] stops one query of many).
    pub fn interrupt_flag(&self) -> Arc<AtomicBool> {
        self.interrupt.clone()
    }

    /// An interrupt set before a statement started was for an earlier one.
    pub(super) fn clear_interrupt(&self) {
        self.interrupt.store(false, Ordering::Relaxed);
    }

    /// What model `name`'s functions have run so far (for tests and
    /// benchmarks: images computed, time, cache hits and misses).
    pub fn model_stats(&self, name: &str) -> Option<crate::model::StatsSnapshot> {
        self.model_handles()
            .into_iter()
            .find(|h| h.name == name)
            .map(|h| h.stats.snapshot())
    }

    /// How model `name` wants its input (size, layout, normalisation), for
    /// callers that make its tensors themselves (the Python training loader).
    pub fn model_spec(&self, name: &str) -> Option<crate::read_format::model_spec::ModelSpec> {
        self.model_handles()
            .into_iter()
            .find(|h| h.name == name)
            .map(|h| h.spec.clone())
    }

    /// Every registered model's handle.
    pub(super) fn model_handles(&self) -> Vec<Arc<ModelHandle>> {
        let state = self.ctx.state();
        let mut out: Vec<Arc<ModelHandle>> = Vec::new();
        for udf in state.scalar_functions().values() {
            if let Some(m) = as_model_fn(udf) {
                if !out.iter().any(|h| h.name == m.handle().name) {
                    out.push(m.handle().clone());
                }
            }
        }
        out
    }

    pub(super) fn model_handle(&self, name: &str) -> Result<Arc<ModelHandle>> {
        self.model_handles()
            .into_iter()
            .find(|h| h.name == name)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "no model named '{name}' (SHOW MODELS lists them; CREATE MODEL adds one)"
                ))
            })
    }

    async fn image_table(&self, name: &str) -> Result<ImageTable> {
        let provider = self.ctx.table_provider(name).await.ok();
        if let Some(damaged) = provider
            .as_deref()
            .and_then(|p| p.downcast_ref::<DamagedTable>())
        {
            return Err(damaged.error());
        }
        provider
            .as_deref()
            .and_then(|p| p.downcast_ref::<ImageTable>().cloned())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "no image table named '{name}' (SHOW TABLES lists them)"
                ))
            })
    }

    /// `CALIBRATE model ON table [USING label_column] [SAMPLE n]`: measures
    /// every read format and stores the profile in one catalog commit.
    pub async fn calibrate(
        &self,
        model: &str,
        table: &str,
        label_column: Option<String>,
        sample: Option<usize>,
    ) -> Result<Profile> {
        let handle = self.model_handle(model)?;
        let image_table = self.image_table(table).await?;
        let request = CalibrateRequest {
            label_column,
            sample: sample.unwrap_or(DEFAULT_SAMPLE),
        };
        self.clear_interrupt();
        let progress = self
            .calibration_progress
            .lock()
            .expect("progress lock")
            .clone();
        let interrupt = self.interrupt.clone();
        // Compressed view columns that may feed the model are measured too.
        let (matches, _) = self
            .reuse
            .view_matches(&handle.call(&handle.name), image_table.reuse_ref());
        let views: Vec<_> = matches
            .into_iter()
            .filter(|m| m.compression.is_some())
            .collect();
        let profile = off_worker(move || {
            calibrate(
                &handle,
                &image_table,
                &views,
                &request,
                progress.as_deref(),
                &interrupt,
            )
        })
        .await?;
        let (model, table, made) = (model.to_string(), table.to_string(), profile.clone());
        self.write(move |tx| {
            let catalog = tx.catalog_mut();
            let unchanged = catalog
                .models
                .get(&model)
                .is_some_and(|m| m.checksum == made.model_checksum)
                && catalog
                    .tables
                    .get(&table)
                    .is_some_and(|t| t.version == made.table_version);
            if !unchanged {
                return Err(Error::InvalidArgument(format!(
                    "{model} or {table} changed while CALIBRATE ran; run it again"
                )));
            }
            catalog
                .profiles
                .retain(|p| !(p.model == model && p.table == table));
            catalog.profiles.push(made);
            Ok(())
        })
        .await?;
        Ok(profile)
    }

    /// `SHOW FORMATS FOR model ON table` against `catalog` (the version the
    /// statement runs on): the profile, with a warning when it is stale.
    pub(super) fn show_formats(
        &self,
        model: &str,
        table: &str,
        catalog: &Catalog,
    ) -> Result<DataFrame> {
        let profile = catalog
            .profiles
            .iter()
            .find(|p| p.model == model && p.table == table)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "no profile of {model} on {table}: run CALIBRATE {model} ON {table} first"
                ))
            })?;
        if let (Some(m), Some(t)) = (catalog.models.get(model), catalog.tables.get(table)) {
            if let Some(why) = profile.staleness(&m.checksum, t.version) {
                self.warn(format!("{why}: queries do not use it; run CALIBRATE again"));
            }
        }
        self.profile_table(profile)
    }

    /// A profile as SHOW FORMATS prints it, Pareto frontier first, and its
    /// SVG chart of accuracy against cost.
    pub(super) fn profile_table(&self, profile: &Profile) -> Result<DataFrame> {
        let opts = self.planner_options();
        let level = opts.confidence;
        let frontier = profile.frontier();
        let mut order: Vec<usize> = frontier.clone();
        let mut rest: Vec<usize> = (0..profile.formats.len())
            .filter(|i| !frontier.contains(i))
            .collect();
        rest.sort_by(|&a, &b| {
            profile.formats[a]
                .cost_us()
                .total_cmp(&profile.formats[b].cost_us())
        });
        order.extend(rest);
        let f = |i: usize| &profile.formats[i];
        let metric = match &profile.metric {
            Metric::Agreement => "agreement",
            Metric::Labels { .. } => "accuracy",
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("format", DataType::Utf8, false),
            Field::new("bands", DataType::UInt32, false),
            Field::new("bytes_per_image", DataType::UInt64, false),
            Field::new("decode_us", DataType::Float64, false),
            Field::new("model_us", DataType::Float64, false),
            Field::new(metric, DataType::Float64, false),
            Field::new("lower_bound", DataType::Float64, false),
            Field::new("frontier", DataType::Boolean, false),
        ]));
        let round = |v: f64, d: i32| (v * 10f64.powi(d)).round() / 10f64.powi(d);
        // One row per format, then one per compressed view measured (no
        // bands: it is read instead of them).
        struct Row {
            name: String,
            bands: u32,
            bytes: f64,
            decode_us: f64,
            model_us: f64,
            accuracy: f64,
            bound: f64,
            frontier: bool,
        }
        let mut rows: Vec<Row> = order
            .iter()
            .map(|&i| Row {
                name: f(i).format.to_string(),
                bands: f(i).bands,
                bytes: f(i).bytes_per_image,
                decode_us: f(i).decode_us,
                model_us: f(i).model_us,
                accuracy: f(i).accuracy(),
                bound: f(i).lower_bound(level),
                frontier: frontier.contains(&i),
            })
            .collect();
        rows.extend(profile.views.iter().map(|v| Row {
            name: format!("view {}.{} ({})", v.view, v.column, v.compression),
            bands: 0,
            bytes: v.bytes_per_image,
            decode_us: 0.0,
            model_us: 0.0,
            accuracy: v.accuracy(),
            bound: v.lower_bound(level),
            frontier: false,
        }));
        let floats = |g: fn(&Row) -> f64, d: i32| {
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| round(g(r), d)),
            ))
        };
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.name.clone()),
                )),
                Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.bands))),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.bytes.round() as u64),
                )),
                floats(|r| r.decode_us, 0),
                floats(|r| r.model_us, 0),
                floats(|r| r.accuracy, 4),
                floats(|r| r.bound, 4),
                Arc::new(BooleanArray::from_iter(
                    rows.iter().map(|r| Some(r.frontier)),
                )),
            ],
        )?;
        match self.write_chart(profile, level, opts.accuracy_target) {
            Ok(path) => self.notice(format!(
                "chart of accuracy against cost: {}",
                path.display()
            )),
            Err(e) => self.warn(format!("could not draw the chart: {e}")),
        }
        Ok(self.results.read_batch(batch)?)
    }

    /// Writes the profile's chart as SVG into `charts/` of the database
    /// directory.
    fn write_chart(
        &self,
        profile: &Profile,
        level: f64,
        target: Option<f64>,
    ) -> Result<std::path::PathBuf> {
        let frontier = profile.frontier();
        let points: Vec<ChartPoint> = profile
            .formats
            .iter()
            .enumerate()
            .map(|(i, f)| ChartPoint {
                label: f.format.to_string(),
                cost_us: f.cost_us(),
                accuracy: f.accuracy(),
                lower_bound: f.lower_bound(level),
                frontier: frontier.contains(&i),
            })
            .collect();
        let title = format!(
            "{} on {} ({} images)",
            profile.model, profile.table, profile.sample
        );
        let metric = match &profile.metric {
            Metric::Agreement => "agreement with full quality".to_string(),
            Metric::Labels { column } => format!("accuracy ({column})"),
        };
        let svg = render_svg(&title, &metric, &points, target).map_err(Error::Internal)?;
        // An in-memory database's directory is a private temporary one,
        // removed with it.
        let dir = self.path().join("charts");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{}_on_{}.svg", profile.model, profile.table));
        std::fs::write(&path, svg).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    /// Runs DataFusion's EXPLAIN ANALYZE and adds one row per model that
    /// ran: images, time building input tensors, inference time.
    pub(super) async fn explain_analyze(&self, sql: &str) -> Result<DataFrame> {
        let handles = self.model_handles();
        let before: Vec<_> = handles.iter().map(|h| h.stats.snapshot()).collect();
        let df = self.ctx.sql(sql).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let mut batches = df.collect().await?;
        let mut kinds = Vec::new();
        let mut lines = Vec::new();
        for (h, b) in handles.iter().zip(before) {
            let a = h.stats.snapshot();
            let (hits, misses) = (a.cache_hits - b.cache_hits, a.cache_misses - b.cache_misses);
            if a.images == b.images && hits == 0 && misses == 0 {
                continue;
            }
            let n = a.images - b.images;
            let infer = a.inference.saturating_sub(b.inference);
            kinds.push("Model inference".to_string());
            let per_image = if n == 0 {
                String::new()
            } else {
                format!(" ({:.2} ms/image)", infer.as_secs_f64() * 1e3 / n as f64)
            };
            lines.push(format!(
                "{}: images={n}, input_tensors={}, inference={}{per_image}, cache_hits={hits}, cache_misses={misses}",
                h.name,
                secs(a.tensors.saturating_sub(b.tensors)),
                secs(infer),
            ));
        }
        if !lines.is_empty() && schema.fields().len() == 2 {
            batches.push(RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(kinds)),
                    Arc::new(StringArray::from(lines)),
                ],
            )?);
        }
        Ok(self.results.read_batches(batches)?)
    }
}
