//! The format planner's generalisation benchmark (issue 5): calibrate a
//! model on one half of a corpus, then, on the other half, run it under the
//! format the planner picks for each accuracy target and measure the
//! agreement with full quality there, and the speed-up.
//!
//! ```text
//! cargo bench --bench planner                       # MobileNetV2 on bench-data/corpus
//! cargo bench --bench planner -- fashion            # the Fashion-MNIST CNN on bench-data/fashion
//! ```
//! Corpora: `bash scripts/make_corpus.sh --out bench-data/corpus --count 1000`
//! and `bash scripts/make_fashion_corpus.sh --out bench-data/fashion --split test --count 2000`.
//! Printed: the profile's frontier, then one row per target: the chosen
//! format, its lower bound on the calibration half, the agreement measured
//! on the held-out half, and time per image against the full-quality and
//! the default format, all measured in this run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;
use spectradb::read_format::profile::Profile;
use spectradb::BlockingDatabase;

mod common;
use common::IMAGENET_224;

const TARGETS: [f64; 4] = [0.99, 0.95, 0.90, 0.80];
const LEVEL: f64 = 0.95;

struct Case {
    name: &'static str,
    corpus: &'static str,
    /// `WITH (...)` of the CREATE IMAGE TABLE statements.
    table_options: &'static str,
    /// The statements that register the model (a head needs its backbone
    /// first); `{IMAGENET_224}` stands for [`IMAGENET_224`].
    create_model: &'static [&'static str],
}

const MOBILENET: Case = Case {
    name: "mobilenet",
    corpus: "bench-data/corpus",
    table_options: "quality = 90",
    create_model: &[
        "CREATE MODEL mobilenet FROM 'tests/data/models/mobilenet_v2_imagenet.onnx' \
        WITH ({IMAGENET_224}, output = 'class')",
    ],
};

/// A coarse task (ten groups of ImageNet classes) on the same backbone:
/// should tolerate a cheaper read format than the 1,000 classes.
const COARSE: Case = Case {
    name: "coarse",
    corpus: "bench-data/corpus",
    table_options: "quality = 90",
    create_model: &[
        "CREATE MODEL backbone FROM 'tests/data/models/mobilenet_v2_backbone.onnx' \
        WITH ({IMAGENET_224}, output = 'embedding')",
        "CREATE MODEL coarse FROM 'tests/data/models/mobilenet_v2_coarse.onnx' \
        ON FEATURES OF backbone WITH (labels = 'tests/data/models/coarse_classes.txt')",
    ],
};

const FASHION: Case = Case {
    name: "fashion",
    corpus: "bench-data/fashion",
    table_options: "chroma = 'gray'",
    create_model: &[
        "CREATE MODEL fashion FROM 'tests/data/models/fashion_mnist_cnn.onnx' \
        WITH (labels = 'tests/data/models/fashion_mnist_classes.txt')",
    ],
};

/// All image files (.jpg, .png, .webp) under `dir` (any depth, except the
/// `source/` folder where make_corpus.py keeps the lossless crops), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            let image = p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["jpg", "jpeg", "png", "webp"].contains(&e.to_ascii_lowercase().as_str())
            });
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "source") {
                    stack.push(p);
                }
            } else if image {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Links every other file into `<work>/calib` and `<work>/test`.
fn split(corpus: &Path, work: &Path) -> (PathBuf, PathBuf) {
    let (calib, test) = (work.join("calib"), work.join("test"));
    for d in [&calib, &test] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).unwrap();
    }
    for (i, f) in files(corpus).iter().enumerate() {
        let rel = f
            .strip_prefix(corpus)
            .unwrap()
            .to_string_lossy()
            .replace('/', "__");
        let to = if i % 2 == 0 { &calib } else { &test }.join(rel);
        std::os::unix::fs::symlink(std::fs::canonicalize(f).unwrap(), to).unwrap();
    }
    (calib, test)
}

/// Timed runs per format; the best is reported.
const REPEATS: usize = 3;

/// `SELECT id, model(image)` under `format`: outputs by id, and the best
/// time of [`REPEATS`] runs in seconds.
fn run(db: &BlockingDatabase, model: &str, format: &str) -> (Vec<String>, f64) {
    db.sql(&format!("SET spectradb.read_format = '{format}'"))
        .unwrap();
    let mut secs = f64::INFINITY;
    let mut batches: Vec<RecordBatch> = Vec::new();
    for _ in 0..REPEATS {
        let start = Instant::now();
        batches = db
            .sql(&format!("SELECT id, {model}(image) FROM test ORDER BY id"))
            .unwrap();
        secs = secs.min(start.elapsed().as_secs_f64());
    }
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            out.push(array_value_to_string(b.column(1), r).unwrap());
        }
    }
    (out, secs)
}

fn agreement(a: &[String], b: &[String]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

fn bench(case: &Case) {
    let corpus = Path::new(case.corpus);
    if !corpus.is_dir() {
        eprintln!(
            "{}: no corpus at {} (see the header of benches/planner.rs); skipped",
            case.name, case.corpus
        );
        return;
    }
    let work = Path::new("bench-data/planner").join(case.name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let (calib, test) = split(corpus, &work);
    let db = BlockingDatabase::open(work.join("db")).unwrap();
    for (t, dir) in [("calib", &calib), ("test", &test)] {
        db.sql(&format!(
            "CREATE IMAGE TABLE {t} FROM '{}' WITH ({})",
            dir.display(),
            case.table_options
        ))
        .unwrap();
    }
    for statement in case.create_model {
        db.sql(&statement.replace("{IMAGENET_224}", IMAGENET_224))
            .unwrap();
    }
    // Every run below measures computing, not the output cache.
    db.sql("SET spectradb.cache_size = 0").unwrap();
    let m = case.name;
    let start = Instant::now();
    db.sql(&format!("CALIBRATE {m} ON calib SAMPLE 100000"))
        .unwrap();
    let catalog = db.database().catalog().unwrap();
    let profile: &Profile = &catalog.profiles[0];
    println!(
        "\n## {m}: calibrated {} formats on {} images in {:.0} s",
        profile.formats.len(),
        profile.sample,
        start.elapsed().as_secs_f64()
    );
    println!("frontier (format, cost us/img, agreement, lower bound):");
    for i in profile.frontier() {
        let f = &profile.formats[i];
        println!(
            "  {:<16} {:>9.0} {:>7.4} {:>7.4}",
            f.format.to_string(),
            f.cost_us(),
            f.accuracy(),
            f.lower_bound(LEVEL)
        );
    }
    let reference = profile.reference.to_string();
    // The format a query gets without a target (smallest scale that yields
    // the native size), as EXPLAIN names it.
    db.sql("SET spectradb.read_format = 'auto'").unwrap();
    let plan = db
        .sql(&format!("EXPLAIN SELECT {m}(image) FROM test"))
        .unwrap();
    let text: String = (0..plan[0].num_rows())
        .map(|r| array_value_to_string(plan[0].column(1), r).unwrap())
        .collect();
    let default = text
        .split(&format!("{m}: format="))
        .nth(1)
        .and_then(|s| s.split(" (").next())
        .unwrap()
        .to_string();
    // Warm up the model's session, then measure the baselines.
    run(&db, m, &default);
    let (full, full_s) = run(&db, m, &reference);
    let (def_out, def_s) = run(&db, m, &default);
    let n = full.len() as f64;
    println!(
        "\nheld-out images: {}; full quality {reference}: {:.2} ms/img; default {default}: {:.2} ms/img (agreement {:.4})",
        full.len(),
        full_s * 1e3 / n,
        def_s * 1e3 / n,
        agreement(&def_out, &full)
    );
    println!("| target | chosen format | lower bound (calib) | agreement (held out) | ms/img | speed-up vs full | vs default |");
    println!("|---|---|---|---|---|---|---|");
    for target in TARGETS {
        let (format, bound) = match profile.cheapest_meeting(target, LEVEL) {
            Some(f) => (f.format.to_string(), f.lower_bound(LEVEL)),
            None => (reference.clone(), f64::NAN),
        };
        let (out, secs) = run(&db, m, &format);
        let agree = agreement(&out, &full);
        println!(
            "| {target:.2} | {format} | {bound:.4} | {agree:.4}{} | {:.2} | {:.2}x | {:.2}x |",
            if agree + 0.02 < target { " (MISS)" } else { "" },
            secs * 1e3 / n,
            full_s / secs,
            def_s / secs
        );
    }
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = which.is_empty();
    if all || which.iter().any(|w| w == "mobilenet") {
        bench(&MOBILENET);
    }
    if all || which.iter().any(|w| w == "coarse") {
        bench(&COARSE);
    }
    if all || which.iter().any(|w| w == "fashion") {
        bench(&FASHION);
    }
}
