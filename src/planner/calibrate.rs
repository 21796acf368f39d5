//! `CALIBRATE <model> ON <table>`: runs the model on a reproducible sample
//! of the table under every format of the design space and measures, per
//! format, accuracy (against a label column, or agreement with the
//! full-quality format) and cost (bytes, decode time, inference time).
//!
//! Each format reads its own bands from the files (only the sample's rows),
//! so decode time includes reading and entropy decoding, as a query pays.
//! Compressed materialized views that may feed the model (a head's
//! backbone output stored as f16 or int8) are measured on the same sample:
//! the model's results from their decoded vectors against exact ones.
//!
//! Nothing is stored here: the caller publishes the finished profile in one
//! catalog commit, so an interrupted calibration leaves no half profile.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arrow::array::{Array, UInt64Array};
use arrow::util::display::array_value_to_string;

use super::rule::space_params;
use crate::error::{Error, Result};
use crate::image_value::OutputValue;
use crate::model::udf::argmax;
use crate::model::vector::cosine;
use crate::model::ModelHandle;
use crate::read_format::model_spec::OutputKind;
use crate::read_format::profile::{FormatStats, Metric, Profile, ViewStats};
use crate::read_format::space::ReadFormat;
use crate::reuse::views::ViewMatch;
use crate::sql::image_table::ImageTable;
use crate::storage::layout::{parse_band_column, COL_ID};
use crate::storage::{ImageBatch, ImageFileReader};

/// Sample size when `SAMPLE` is not given.
pub const DEFAULT_SAMPLE: usize = 300;

/// Images per inference call during calibration.
const BATCH: usize = 32;

/// Embeddings whose cosine similarity with the reference reaches this agree.
const EMBEDDING_AGREEMENT: f32 = 0.95;

/// Receives calibration progress (the REPL draws a bar).
pub trait CalibrationProgress: Send + Sync {
    fn start(&self, formats: u64, images: u64);
    /// Called after each format with its name.
    fn format_done(&self, format: &str);
    /// Called at the end, whether it succeeded or not.
    fn finish(&self);
}

/// What to calibrate.
#[derive(Debug, Clone)]
pub struct CalibrateRequest {
    /// Column holding the true label (else agreement with full quality).
    pub label_column: Option<String>,
    pub sample: usize,
}

/// The sample: `(file index, row indices)` plus ids, chosen by a hash of
/// the row id so the same table always gives the same sample.
fn choose_sample(files: &[ImageFileReader], n: usize) -> Result<Vec<(usize, Vec<usize>)>> {
    let mut keyed: Vec<(u64, usize, usize)> = Vec::new();
    for (f, reader) in files.iter().enumerate() {
        let scan = reader.scan(&[COL_ID], &crate::storage::BandSelection::none(), 8192)?;
        let mut row = 0;
        for batch in scan {
            let batch = batch?;
            let ids = ids_of(&batch.batch, reader)?;
            for i in 0..ids.len() {
                keyed.push((splitmix(ids.value(i)), f, row));
                row += 1;
            }
        }
    }
    keyed.sort_unstable();
    keyed.truncate(n);
    let mut by_file: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (_, f, r) in keyed {
        by_file.entry(f).or_default().push(r);
    }
    Ok(by_file
        .into_iter()
        .map(|(f, mut rows)| {
            rows.sort_unstable();
            (f, rows)
        })
        .collect())
}

/// The id column of a batch read from `reader`.
fn ids_of(batch: &arrow::array::RecordBatch, reader: &ImageFileReader) -> Result<UInt64Array> {
    batch
        .column_by_name(COL_ID)
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>().cloned())
        .ok_or_else(|| Error::corrupt(reader.path(), "id column missing"))
}

/// A fixed 64-bit mix (SplitMix64's finaliser): a reproducible shuffle key.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What one format produced on the sample.
struct Run {
    stats: FormatStats,
    /// Per image, in sample order: the model's output vector.
    outputs: Vec<Vec<f32>>,
    labels: Vec<Option<String>>,
}

/// Runs `model` on the sample under `format`.
fn run_format(
    model: &ModelHandle,
    files: &[ImageFileReader],
    sample: &[(usize, Vec<usize>)],
    format: &ReadFormat,
    label_column: Option<&str>,
) -> Result<Run> {
    let loaded = model.runner(Some(format)).model()?;
    let bands = format.bands();
    let columns: Vec<&str> = label_column.into_iter().collect();
    let (mut decode, mut infer) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    let mut outputs = Vec::new();
    let mut labels = Vec::new();
    let (mut band_bytes, mut rows_in_files) = (0u64, 0u64);
    for (f, rows) in sample {
        let reader = &files[*f];
        band_bytes += reader
            .column_bytes()
            .iter()
            .filter(|(name, _)| parse_band_column(name).is_some_and(|(p, k)| bands.contains(p, k)))
            .map(|(_, b)| b)
            .sum::<u64>();
        rows_in_files += reader.num_rows() as u64;
        let started = Instant::now();
        let batch_len = BATCH.min(loaded.max_batch(loaded.input_side(Some(format))));
        let mut scan = reader.scan_rows(&columns, &bands, batch_len, Some(rows))?;
        decode += started.elapsed();
        loop {
            let started = Instant::now();
            let Some(batch) = scan.next() else { break };
            let batch = batch?;
            let images = (0..batch.num_rows())
                .map(|r| batch.image(r))
                .collect::<Result<Vec<_>>>()?;
            // A head runs its backbone on the images: all of it is inference.
            let prepared = match model.backbone {
                None => Ok(loaded.format_tensor(images, format)?),
                Some(_) => Err(images),
            };
            decode += started.elapsed();
            if let Some(col) = label_column {
                let all: Vec<usize> = (0..batch.num_rows()).collect();
                labels.extend(label_values(&batch, col, reader.path(), &all)?);
            }
            let started = Instant::now();
            let scores = match prepared {
                Ok((tensor, size)) => loaded.run_at(&tensor, batch.num_rows(), size)?,
                Err(images) => model.run_images(images, format)?,
            };
            infer += started.elapsed();
            outputs.extend(scores.chunks_exact(loaded.outputs).map(<[f32]>::to_vec));
        }
    }
    let n = outputs.len().max(1) as f64;
    Ok(Run {
        stats: FormatStats {
            format: *format,
            bands: format.band_count(files[0].chroma()),
            bytes_per_image: band_bytes as f64 / rows_in_files.max(1) as f64,
            decode_us: decode.as_secs_f64() * 1e6 / n,
            model_us: infer.as_secs_f64() * 1e6 / n,
            correct: 0,
            n: outputs.len() as u64,
        },
        outputs,
        labels,
    })
}

/// Counts the images whose `outputs` agree with `reference`'s (or with
/// their `labels`).
fn score(
    model: &ModelHandle,
    outputs: &[Vec<f32>],
    labels: &[Option<String>],
    reference: &[Vec<f32>],
    metric: &Metric,
) -> u64 {
    let name = |i: usize| -> String {
        match &model.labels {
            Some(l) => l[i].clone(),
            None => i.to_string(),
        }
    };
    let mut correct = 0;
    for (i, out) in outputs.iter().enumerate() {
        let ok = match metric {
            Metric::Labels { .. } => labels[i]
                .as_deref()
                .is_some_and(|l| l.trim().eq_ignore_ascii_case(name(argmax(out)).trim())),
            Metric::Agreement if model.spec.output == OutputKind::Embedding => {
                cosine(out, &reference[i]).is_some_and(|c| c >= EMBEDDING_AGREEMENT)
            }
            Metric::Agreement => argmax(out) == argmax(&reference[i]),
        };
        correct += ok as u64;
    }
    correct
}

/// Measures compressed view column `m` as a source for `model`: on the
/// sample's rows the view holds, the model's results from the column's
/// decoded vectors (for a head: the head run on them) against its results
/// from exact vectors, computed from the bands under the format the view
/// was made with (or against the labels).
fn measure_view(
    model: &ModelHandle,
    files: &[ImageFileReader],
    sample: &[(usize, Vec<usize>)],
    m: &ViewMatch,
    metric: &Metric,
    label_column: Option<&str>,
) -> Result<ViewStats> {
    let compression = m.compression.map_or("none", |c| c.name());
    let format = m.format.ok_or_else(|| {
        Error::InvalidArgument(format!(
            "view {} column {}: no read format recorded, so CALIBRATE cannot compute its exact values",
            m.view.name, m.output.column
        ))
    })?;
    let values = m.values()?;
    let loaded = model.runner(Some(&format)).model()?;
    let mut columns = vec![COL_ID];
    columns.extend(label_column);
    let (mut exact, mut approx, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (f, rows) in sample {
        let reader = &files[*f];
        let scan = reader.scan_rows(&columns, &format.bands(), BATCH, Some(rows))?;
        for batch in scan {
            let batch = batch?;
            let ids = ids_of(&batch.batch, reader)?;
            // Only the rows the view holds are compared.
            let mut held = Vec::new();
            let mut stored = Vec::new();
            for r in 0..batch.num_rows() {
                if let Some(OutputValue::Vector(v)) = values.values.get(&ids.value(r)) {
                    held.push(r);
                    stored.extend_from_slice(v);
                }
            }
            if held.is_empty() {
                continue;
            }
            let images = held
                .iter()
                .map(|&r| batch.image(r))
                .collect::<Result<Vec<_>>>()?;
            let n = held.len();
            let (from_bands, from_view) = match &model.backbone {
                Some(b) if m.via_backbone => (
                    model.run_images(images, &format)?,
                    loaded.run_features(&stored, n)?,
                ),
                Some(_) | None => (model.run_images(images, &format)?, stored),
            };
            let width = from_bands.len() / n;
            if from_view.len() != from_bands.len() {
                return Err(Error::InvalidArgument(format!(
                    "view {} column {}: its vectors have {} values, {} computes {width}",
                    m.view.name,
                    m.output.column,
                    from_view.len() / n,
                    model.name
                )));
            }
            exact.extend(from_bands.chunks_exact(width).map(<[f32]>::to_vec));
            approx.extend(from_view.chunks_exact(width).map(<[f32]>::to_vec));
            if let Some(col) = label_column {
                labels.extend(label_values(&batch, col, reader.path(), &held)?);
            }
        }
    }
    Ok(ViewStats {
        view: m.view.name.clone(),
        column: m.output.column.clone(),
        compression: compression.to_string(),
        files: m.files(),
        bytes_per_image: m.bytes_per_row(),
        correct: score(model, &approx, &labels, &exact, metric),
        n: approx.len() as u64,
    })
}

/// Calibrates `model` on `table`, and measures `views` (compressed view
/// columns that may stand for its input or output there). `cancel` stops
/// it between formats.
pub fn calibrate(
    model: &ModelHandle,
    table: &ImageTable,
    views: &[ViewMatch],
    request: &CalibrateRequest,
    progress: Option<&dyn CalibrationProgress>,
    cancel: &AtomicBool,
) -> Result<Profile> {
    if request.sample == 0 {
        return Err(Error::InvalidArgument("SAMPLE must be at least 1".into()));
    }
    let metric = match &request.label_column {
        Some(c) => {
            if c == crate::sql::image_scan::IMAGE_COLUMN || !table.schema_has_column(c) {
                return Err(Error::InvalidArgument(format!(
                    "CALIBRATE {} ON {} USING {c}: the table has no label column '{c}'",
                    model.name,
                    table.name()
                )));
            }
            Metric::Labels { column: c.clone() }
        }
        None => Metric::Agreement,
    };
    let files = table
        .files()
        .iter()
        .map(ImageFileReader::open)
        .collect::<Result<Vec<_>>>()?;
    let sample = choose_sample(&files, request.sample)?;
    let images: usize = sample.iter().map(|(_, r)| r.len()).sum();
    if images == 0 {
        return Err(Error::InvalidArgument(format!(
            "CALIBRATE {} ON {}: the table is empty",
            model.name,
            table.name()
        )));
    }
    // A family is measured on its members' formats, the largest first; a
    // model on every format of its design space.
    let space = match model.reference_member() {
        Some(r) => std::iter::once(r.format)
            .chain(
                model
                    .members
                    .iter()
                    .map(|m| m.format)
                    .filter(|f| *f != r.format),
            )
            .collect(),
        None => space_params(model, table)?.design_space(),
    };
    if let Some(p) = progress {
        p.start((space.len() + views.len()) as u64, images as u64);
    }
    let interrupted = || {
        Error::Cancelled(format!(
            "CALIBRATE {} ON {} interrupted; no profile stored",
            model.name,
            table.name()
        ))
    };
    let result = (|| {
        let label_column = request.label_column.as_deref();
        let mut runs: Vec<Run> = Vec::with_capacity(space.len());
        // Load the model (and warm its session) before anything is timed.
        for format in &space {
            model.runner(Some(format)).model()?;
        }
        for format in &space {
            if cancel.load(Ordering::Relaxed) {
                return Err(interrupted());
            }
            runs.push(run_format(model, &files, &sample, format, label_column)?);
            if let Some(p) = progress {
                p.format_done(&format.to_string());
            }
        }
        // Inference cost depends on the input size only: every format of a
        // size gets the fastest time measured at that size, so noise does
        // not rank formats that feed the model the same tensor shape. (A
        // family's members are different models: each keeps its own.)
        for i in (0..runs.len()).filter(|_| !model.is_family()) {
            let size = runs[i].stats.format.input_size();
            let best = runs
                .iter()
                .filter(|r| r.stats.format.input_size() == size)
                .map(|r| r.stats.model_us)
                .fold(f64::INFINITY, f64::min);
            runs[i].stats.model_us = best;
        }
        let mut measured = Vec::with_capacity(views.len());
        for m in views {
            if cancel.load(Ordering::Relaxed) {
                return Err(interrupted());
            }
            measured.push(measure_view(
                model,
                &files,
                &sample,
                m,
                &metric,
                label_column,
            )?);
            if let Some(p) = progress {
                p.format_done(&format!("view {}", m.view.name));
            }
        }
        let views = measured;
        let reference = &runs[0];
        let formats = runs
            .iter()
            .map(|r| FormatStats {
                correct: score(model, &r.outputs, &r.labels, &reference.outputs, &metric),
                ..r.stats.clone()
            })
            .collect();
        Ok(Profile {
            model: model.name.clone(),
            table: table.name().to_string(),
            model_checksum: model.entry.checksum.clone(),
            table_version: table.version(),
            metric: metric.clone(),
            sample: images as u64,
            reference: space[0],
            formats,
            views,
        })
    })();
    if let Some(p) = progress {
        p.finish();
    }
    result
}

/// The labels in column `col` of `rows` of `batch` (read from `path`), as
/// text; a null label is `None`.
fn label_values(
    batch: &ImageBatch,
    col: &str,
    path: &std::path::Path,
    rows: &[usize],
) -> Result<Vec<Option<String>>> {
    let c = batch.batch.column_by_name(col).ok_or_else(|| {
        Error::InvalidArgument(format!("no column '{col}' in {}", path.display()))
    })?;
    rows.iter()
        .map(|&r| {
            (!c.is_null(r))
                .then(|| array_value_to_string(c, r).map_err(Error::from))
                .transpose()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_keys_are_a_fixed_shuffle() {
        // SplitMix64's published outputs: seed 0, then seed 1234567 (each
        // call mixes the seed plus one step of the golden-ratio increment).
        const STEP: u64 = 0x9E37_79B9_7F4A_7C15;
        assert_eq!(splitmix(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix(STEP), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix(1_234_567), 6_457_827_717_110_365_317);
        assert_eq!(
            splitmix(1_234_567u64.wrapping_add(STEP)),
            3_203_168_211_198_807_973
        );
        let mut keys: Vec<u64> = (0..100).map(splitmix).collect();
        let sorted = keys.clone();
        keys.sort_unstable();
        assert_ne!(keys, sorted, "ids should not keep their order");
        keys.dedup();
        assert_eq!(keys.len(), 100);
    }
}
