//! Compressed feature maps: for each `compression` setting of a
//! materialized view of MobileNetV2's 1280-d backbone output, the bytes it
//! stores per image, the time of each bundled head's query fed from it,
//! and the heads' agreement with the same heads fed from the float32 view,
//! all measured in this run, on one core.
//!
//! ```text
//! cargo bench --bench compression                    # the 20 bundled labelled photos
//! SPECTRADB_CORPUS=bench-data/corpus cargo bench --bench compression
//! ```
//! A head reads a compressed view only where CALIBRATE measured it against
//! the accuracy target (what the planner does); the harness checks with
//! EXPLAIN that each timed query read the view it names.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Float32Type;
use arrow::util::display::array_value_to_string;
use spectradb::Database;

mod common;
use common::{collect, current_thread_runtime, IMAGENET_224};

/// Each timed query runs this many times; the best is kept.
const RUNS: usize = 5;

/// The bundled heads on the backbone: name, file, options, and whether
/// the output is a vector (compared by cosine) or a class.
const HEADS: [(&str, &str, &str, bool); 3] = [
    (
        "imagenet_head",
        "mobilenet_v2_head.onnx",
        "output = 'class'",
        false,
    ),
    (
        "coarse",
        "mobilenet_v2_coarse.onnx",
        "labels = 'tests/data/models/coarse_classes.txt'",
        false,
    ),
    (
        "embed",
        "mobilenet_v2_embed.onnx",
        "output = 'embedding'",
        true,
    ),
];

/// One head's outputs in id order: classes as text, or vectors.
enum Outputs {
    Classes(Vec<String>),
    Vectors(Vec<Vec<f32>>),
}

fn outputs(batches: &[RecordBatch], vector: bool) -> Outputs {
    if vector {
        Outputs::Vectors(
            batches
                .iter()
                .flat_map(|b| {
                    let c = b.column(1).as_fixed_size_list().clone();
                    (0..c.len())
                        .map(move |i| c.value(i).as_primitive::<Float32Type>().values().to_vec())
                })
                .collect(),
        )
    } else {
        Outputs::Classes(
            batches
                .iter()
                .flat_map(|b| {
                    (0..b.num_rows()).map(|i| array_value_to_string(b.column(1), i).unwrap())
                })
                .collect(),
        )
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Agreement of `got` with `exact`: the share of equal classes, or for
/// vectors the smallest cosine similarity.
fn agreement(exact: &Outputs, got: &Outputs) -> String {
    match (exact, got) {
        (Outputs::Classes(e), Outputs::Classes(g)) => {
            assert_eq!(e.len(), g.len());
            let same = e.iter().zip(g).filter(|(a, b)| a == b).count();
            format!("{same}/{} same class", e.len())
        }
        (Outputs::Vectors(e), Outputs::Vectors(g)) => {
            assert_eq!(e.len(), g.len());
            let min = e
                .iter()
                .zip(g)
                .map(|(a, b)| cosine(a, b))
                .fold(f64::INFINITY, f64::min);
            format!("min cosine {min:.8}")
        }
        _ => unreachable!("one head gives one kind of output"),
    }
}

/// Bytes of every file under `dir` (views live under the database's
/// `tables/`).
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        total += if p.is_dir() {
            bytes_under(&p)
        } else {
            std::fs::metadata(&p).unwrap().len()
        };
    }
    total
}

fn plan(rt: &tokio::runtime::Runtime, db: &Database, sql: &str) -> String {
    collect(rt, db, &format!("EXPLAIN {sql}"))
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(|i| array_value_to_string(b.column(1), i).unwrap()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Best-of-[`RUNS`] time of `sql` in ms and its outputs.
fn run(rt: &tokio::runtime::Runtime, db: &Database, sql: &str, vector: bool) -> (f64, Outputs) {
    let mut best = f64::INFINITY;
    let mut last = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        last = collect(rt, db, sql);
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    (best, outputs(&last, vector))
}

fn head_query(head: &str) -> String {
    format!("SELECT id, {head}(image) FROM photos ORDER BY id")
}

fn main() {
    std::env::set_var("SPECTRADB_MODEL_THREADS", "1");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = std::env::var_os("SPECTRADB_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("tests/data/photos/imagenet-labeled"));
    // A database of its own per run, so two runs never share one.
    std::fs::create_dir_all(root.join("bench-data")).unwrap();
    let work = tempfile::tempdir_in(root.join("bench-data")).unwrap();
    let db_path = work.path().join("compression.db");
    let rt = current_thread_runtime();
    let db = Database::open(&db_path).unwrap();
    let sql = |s: &str| collect(&rt, &db, s);
    sql("SET datafusion.execution.target_partitions = 1");
    sql(&format!(
        "CREATE IMAGE TABLE photos FROM '{}/*.jpg'",
        corpus.display()
    ));
    let n = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(
        sql("SELECT count(*) FROM photos")[0].column(0),
    )
    .value(0);
    let models = root.join("tests/data/models");
    sql(&format!(
        "CREATE MODEL backbone FROM '{}' WITH ({IMAGENET_224}, output = 'embedding')",
        models.join("mobilenet_v2_backbone.onnx").display()
    ));
    for (name, file, opts, _) in HEADS {
        sql(&format!(
            "CREATE MODEL {name} FROM '{}' ON FEATURES OF backbone WITH ({opts})",
            models.join(file).display()
        ));
    }
    println!("corpus: {n} photos in {}, one core", corpus.display());

    // Backbone + head from the images (no view, no cache): the baseline
    // that any view saves against.
    sql("SET spectradb.cache_size = 0");
    let mut from_images = Vec::new();
    for (head, _, _, vector) in HEADS {
        from_images.push(run(&rt, &db, &head_query(head), vector).0);
    }

    // A view per setting, created after the float32 one is dropped, so the
    // planner's choice is the view under test.
    let tables = db_path.join("tables");
    let mut exact: Vec<Outputs> = Vec::new();
    let mut float32_bytes = 0.0;
    println!(
        "\n| compression | bytes / image | vs float32 | head | ms / query | vs from images | CALIBRATE lower bound | against the float32 view |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for compression in ["none", "f16", "int8"] {
        let view = format!("feats_{compression}");
        let before = bytes_under(&tables);
        sql(&format!(
            "CREATE MATERIALIZED VIEW {view} WITH (compression = '{compression}') \
             AS SELECT id, backbone(image) AS f FROM photos"
        ));
        let per_image = (bytes_under(&tables) - before) as f64 / n as f64;
        if compression == "none" {
            float32_bytes = per_image;
        } else {
            // What the planner needs before it reads a compressed column.
            sql("RESET spectradb.cache_size");
            for (head, ..) in HEADS {
                sql(&format!("CALIBRATE {head} ON photos"));
            }
            sql("SET spectradb.cache_size = 0");
            sql("SET spectradb.accuracy_target = 0.5");
        }
        let catalog = db.catalog().unwrap();
        for (i, (head, _, _, vector)) in HEADS.into_iter().enumerate() {
            let q = head_query(head);
            let p = plan(&rt, &db, &q);
            assert!(
                p.contains(&format!("{head}: from materialized view {view}")),
                "{head} did not read {view}:\n{p}"
            );
            let (ms, got) = run(&rt, &db, &q, vector);
            let bound = catalog
                .profiles
                .iter()
                .find(|p| p.model == head)
                .and_then(|p| p.views.iter().find(|v| v.view == view))
                .map_or("-".to_string(), |v| {
                    format!("{:.3} ({}/{})", v.lower_bound(0.95), v.correct, v.n)
                });
            let agrees = if compression == "none" {
                "(itself)".to_string()
            } else {
                agreement(&exact[i], &got)
            };
            println!(
                "| {compression} | {per_image:.0} | {:.2}x | {head} | {ms:.1} | {:.1}x | {bound} | {agrees} |",
                per_image / float32_bytes,
                from_images[i] / ms
            );
            if compression == "none" {
                exact.push(got);
            }
        }
        sql(&format!("DROP MATERIALIZED VIEW {view}"));
        sql("RESET spectradb.accuracy_target");
    }
    println!(
        "\nfrom images (backbone + head, no view): {}",
        HEADS
            .iter()
            .zip(&from_images)
            .map(|((h, ..), ms)| format!("{h} {ms:.1} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("({n} photos; best of {RUNS} runs per query; every figure from this run)");
}
