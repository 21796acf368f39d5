//! `spectradb demo`: builds a database from the bundled photos with SQL and
//! runs a few queries, showing what each one read.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use spectradb::sql::display::human_bytes;
use spectradb::Database;

use super::output::{print_batches, Format};
use super::progress::{Bar, CalibrationBar};
use super::shell::{collect, save_images};

/// The demo runs a model: on a fresh machine it installs ONNX Runtime from
/// the Python package index first (what the error would tell a user to do).
fn ensure_onnx_runtime() -> Result<()> {
    if spectradb::model::runtime::find_library().is_ok() {
        return Ok(());
    }
    let version = spectradb::model::runtime::ORT_VERSION;
    println!(
        "ONNX Runtime not found: installing it (python3 -m pip install onnxruntime=={version}) ..."
    );
    let status = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            &format!("onnxruntime=={version}"),
        ])
        .status()
        .context("running python3 -m pip")?;
    if !status.success() {
        anyhow::bail!(
            "could not install ONNX Runtime; {}",
            spectradb::model::runtime::install_hint()
        );
    }
    spectradb::model::runtime::find_library()?;
    Ok(())
}

pub fn run(photos: &Path, out: &Path) -> Result<()> {
    if !photos.is_dir() {
        anyhow::bail!(
            "{} is not a directory (run the demo from the repository root, or pass --photos)",
            photos.display()
        );
    }
    let db_path = out.join("photos.db");
    if db_path.exists() {
        std::fs::remove_dir_all(&db_path).with_context(|| {
            format!("removing the previous demo database {}", db_path.display())
        })?;
    }
    ensure_onnx_runtime()?;
    let db = Database::open(&db_path)?;
    db.set_progress(Some(Arc::new(Bar::default())));
    db.set_calibration_progress(Some(Arc::new(CalibrationBar::default())));
    let runtime = tokio::runtime::Runtime::new()?;
    let glob = format!("{}/**/*", photos.display());
    let steps: Vec<(&str, String)> = vec![
        (
            "Ingest every bundled photo; the folder name becomes the label, undecodable files are skipped and listed",
            format!(
                "CREATE IMAGE TABLE photos FROM '{glob}' WITH (label = 'parent_dir', quality = 90, on_error = 'skip')"
            ),
        ),
        ("What the database holds", "SHOW TABLES".into()),
        (
            "Plain SQL on plain columns reads no frequency band at all",
            "SELECT label, count(*) AS images, min(width) AS min_w, max(width) AS max_w, round(avg(height), 1) AS avg_h FROM photos GROUP BY label ORDER BY label".into(),
        ),
        (
            "Register the bundled ImageNet model (MobileNetV2) as a SQL function",
            "CREATE MODEL mobilenet FROM 'tests/data/models/mobilenet_v2_imagenet.onnx' WITH (input = 'pixels', size = 224, mean = '0.485,0.456,0.406', std = '0.229,0.224,0.225', labels = 'tests/data/models/imagenet_classes.txt')".into(),
        ),
        ("The models the database knows", "SHOW MODELS".into()),
        (
            "Classify the labelled ImageNet photos (the true class index is in the file name)",
            "SELECT id, regexp_replace(uri, '.*/', '') AS file, mobilenet(image) AS predicted FROM photos WHERE label = 'imagenet-labeled' ORDER BY id LIMIT 8".into(),
        ),
        (
            "Models work anywhere in SQL: here in a WHERE clause and a GROUP BY",
            "SELECT label, count(*) AS photos FROM photos WHERE mobilenet(image) LIKE '%dog%' OR mobilenet(image) LIKE '%retriever%' GROUP BY label ORDER BY label".into(),
        ),
        (
            "The same model outputs again come from the cache: no band is read, no model runs",
            "SELECT label, count(*) AS photos FROM photos WHERE mobilenet(image) LIKE '%cat%' GROUP BY label ORDER BY label".into(),
        ),
        ("", "SELECT kind, entries, bytes, hits, misses FROM spectradb_cache".into()),
        (
            "Heads on a shared backbone: MobileNetV2 split into its feature extractor and a coarse 10-group head",
            "CREATE MODEL backbone FROM 'tests/data/models/mobilenet_v2_backbone.onnx' WITH (size = 224, mean = '0.485,0.456,0.406', std = '0.229,0.224,0.225', output = 'embedding')".into(),
        ),
        (
            "",
            "CREATE MODEL coarse FROM 'tests/data/models/mobilenet_v2_coarse.onnx' ON FEATURES OF backbone WITH (labels = 'tests/data/models/coarse_classes.txt')".into(),
        ),
        (
            "Materialize the backbone's features once; heads then read them instead of the images",
            "CREATE MATERIALIZED VIEW feats AS SELECT id, backbone(image) AS f FROM photos".into(),
        ),
        (
            "",
            "SELECT coarse(image) AS coarse_group, count(*) AS photos FROM photos GROUP BY coarse_group ORDER BY photos DESC, coarse_group".into(),
        ),
        (
            "",
            "EXPLAIN SELECT id, coarse(image) FROM photos".into(),
        ),
        (
            "Nearest neighbours by the model's output vector (cosine distance), in plain SQL",
            "WITH q AS (SELECT mobilenet_scores(image) AS v FROM photos WHERE uri LIKE '%imagenet_06_609%') SELECT regexp_replace(p.uri, '.*/', '') AS file, round(cosine_distance(mobilenet_scores(p.image), q.v), 4) AS distance FROM photos p, q ORDER BY distance LIMIT 3".into(),
        ),
        (
            "Calibrate: run the model under every read format on a sample, measuring agreement with full quality and cost (the frontier comes first)",
            "CALIBRATE mobilenet ON photos SAMPLE 40".into(),
        ),
        (
            "Ask for 90% agreement (as a 95% lower bound): EXPLAIN shows the format the planner picks, the bands the scan reads, and why",
            "SET spectradb.accuracy_target = 0.9".into(),
        ),
        (
            "",
            "EXPLAIN SELECT count(*) FROM photos WHERE mobilenet(image) LIKE '%dog%'".into(),
        ),
        (
            "Files the ingest skipped, and why",
            "SELECT uri, reason FROM spectradb_ingest_errors ORDER BY uri LIMIT 5".into(),
        ),
        (
            "Image functions rebuild pixels from the bands: PNG at 1/4 scale, and thumbnails",
            "SELECT id, uri, width(image) AS w, height(image) AS h, to_png(image, 2) AS quarter, thumbnail(image, 96) AS thumb FROM photos WHERE label = 'imagenet-labeled' ORDER BY id LIMIT 5".into(),
        ),
    ];
    for (what, sql) in &steps {
        if what.is_empty() {
            println!("spectradb> {sql};");
        } else {
            println!("\n-- {what}\nspectradb> {sql};");
        }
        let before = db.scan_stats().bytes_read();
        let batches = runtime.block_on(collect(&db, sql))?;
        print_batches(&mut std::io::stdout(), &batches, Format::Table)?;
        for n in db.take_notices() {
            println!("({n})");
        }
        let read = db.scan_stats().bytes_read() - before;
        if read > 0 {
            println!("(read {} of image table files)", human_bytes(read));
        }
    }
    let thumbs = out.join("thumbnails");
    let sql = "SELECT id, thumbnail(image, 160) AS thumb FROM photos ORDER BY id";
    let batches = runtime.block_on(collect(&db, sql))?;
    let n = save_images(&batches, &thumbs)?;
    println!(
        "\nspectradb> .save {sql} {}\nsaved {n} thumbnails to {}",
        thumbs.display(),
        thumbs.display()
    );
    println!(
        "\nExplore it yourself:  cargo run --release -- {}",
        db_path.display()
    );
    Ok(())
}
