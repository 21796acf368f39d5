//! The format planner's generalisation benchmark (issue 5): calibrate a
//! model on one half of a corpus, then, on the other half, run it under the
//! format the planner picks for each accuracy target and measure the
//! agreement with full quality there, and the speed-up.
//!
//! ```text
//! cargo bench --bench planner                       # MobileNetV2 on bench-data/corpus
//! cargo bench --bench planner -- fashion            # the Fashion-MNIST CNN on bench-data/fashion
//! cargo bench --bench planner -- fashion_labels fam # the CNN and its family, against labels
//! cargo bench --bench planner -- fashion fam_agree   # the same against full quality / the largest member
//! ```
//! Corpora: `bash scripts/make_corpus.sh --out bench-data/corpus --count 1000`
//! and `bash scripts/make_fashion_corpus.sh --out bench-data/fashion --split test --count 2000`.
//! Printed: the profile's frontier, then one row per target: the chosen
//! format, its lower bound on the calibration half, the agreement measured
//! on the held-out half, and time per image against the full-quality and
//! the default format, all measured in this run. A case calibrated against
//! labels measures accuracy against them on the held-out half instead of
//! agreement; a model family also gets one row per member.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;
use spectradb::read_format::profile::Profile;
use spectradb::BlockingDatabase;

mod common;
use common::IMAGENET_224;

const TARGETS: [f64; 5] = [0.99, 0.95, 0.90, 0.85, 0.80];
const LEVEL: f64 = 0.95;

struct Case {
    /// The case's name on the command line and the model's in SQL.
    name: &'static str,
    corpus: &'static str,
    /// `WITH (...)` of the CREATE IMAGE TABLE statements; `{labels}`
    /// stands for a CSV of each file's parent folder in the corpus.
    table_options: &'static str,
    /// The statements that register the model (a head needs its backbone
    /// first); `{IMAGENET_224}` stands for [`IMAGENET_224`].
    create_model: &'static [&'static str],
    /// Calibrate and measure against the table's labels, not against the
    /// full-quality format's outputs.
    labels: bool,
}

const MOBILENET: Case = Case {
    name: "mobilenet",
    corpus: "bench-data/corpus",
    table_options: "quality = 90",
    create_model: &[
        "CREATE MODEL mobilenet FROM 'tests/data/models/mobilenet_v2_imagenet.onnx' \
        WITH ({IMAGENET_224}, output = 'class')",
    ],
    labels: false,
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
    labels: false,
};

const FASHION: Case = Case {
    name: "fashion",
    corpus: "bench-data/fashion",
    table_options: "chroma = 'gray'",
    create_model: &[
        "CREATE MODEL fashion FROM 'tests/data/models/fashion_mnist_cnn.onnx' \
        WITH (labels = 'tests/data/models/fashion_mnist_classes.txt')",
    ],
    labels: false,
};

/// The same fixed CNN, calibrated against the labels: what the family
/// below is compared with.
const FASHION_LABELS: Case = Case {
    name: "fashion_labels",
    corpus: "bench-data/fashion",
    table_options: "chroma = 'gray', label = '{labels}'",
    create_model: &[
        "CREATE MODEL fashion_labels FROM 'tests/data/models/fashion_mnist_cnn.onnx' \
        WITH (labels = 'tests/data/models/fashion_mnist_classes.txt')",
    ],
    labels: true,
};

/// The members of the Fashion-MNIST family: the CNN trained at 28, 14, 7
/// and 4 pixels (scripts/train_fashion_family.py), one per read format.
macro_rules! fashion_family {
    ($name:literal) => {
        concat!(
            "CREATE MODEL ",
            $name,
            " FAMILY ( \
            FORMAT 'y s8 28' FROM 'tests/data/models/fashion_mnist_cnn.onnx', \
            FORMAT 'y s4 14' FROM 'tests/data/models/fashion_mnist_cnn_14.onnx', \
            FORMAT 'y s2 7' FROM 'tests/data/models/fashion_mnist_cnn_7.onnx', \
            FORMAT 'y s1 4' FROM 'tests/data/models/fashion_mnist_cnn_4.onnx' \
            ) WITH (labels = 'tests/data/models/fashion_mnist_classes.txt')"
        )
    };
}

/// The family calibrated against the labels.
const FAMILY: Case = Case {
    name: "fam",
    corpus: "bench-data/fashion",
    table_options: "chroma = 'gray', label = '{labels}'",
    create_model: &[fashion_family!("fam")],
    labels: true,
};

/// The family calibrated against its largest member: targets are
/// agreement with it, as for a fixed model against full quality (`fashion`).
const FAMILY_AGREEMENT: Case = Case {
    name: "fam_agree",
    corpus: "bench-data/fashion",
    table_options: "chroma = 'gray', label = '{labels}'",
    create_model: &[fashion_family!("fam_agree")],
    labels: false,
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

/// Links every other file into `<work>/calib` and `<work>/test`, and
/// writes `<work>/calib.csv` and `<work>/test.csv`: each link's name and
/// the name of the folder its file is in (the class, in a labelled corpus).
fn split(corpus: &Path, work: &Path) -> (PathBuf, PathBuf) {
    let (calib, test) = (work.join("calib"), work.join("test"));
    for d in [&calib, &test] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).unwrap();
    }
    let mut csv = [String::from("file,label\n"), String::from("file,label\n")];
    for (i, f) in files(corpus).iter().enumerate() {
        let rel = f
            .strip_prefix(corpus)
            .unwrap()
            .to_string_lossy()
            .replace('/', "__");
        let folder = f.parent().and_then(|p| p.file_name()).unwrap();
        csv[i % 2].push_str(&format!("{rel},{}\n", folder.to_string_lossy()));
        let to = if i % 2 == 0 { &calib } else { &test }.join(rel);
        std::os::unix::fs::symlink(std::fs::canonicalize(f).unwrap(), to).unwrap();
    }
    for (half, text) in ["calib", "test"].iter().zip(csv) {
        std::fs::write(work.join(format!("{half}.csv")), text).unwrap();
    }
    (calib, test)
}

/// Timed runs per format; the best is reported.
const REPEATS: usize = 3;

/// One format's held-out run: outputs by id, the best time of [`REPEATS`]
/// runs in seconds, and the bytes the scan read per run.
struct Run {
    outputs: Vec<String>,
    secs: f64,
    bytes: u64,
}

/// `SELECT id, model(image)` under `format`, [`REPEATS`] times.
fn run(db: &BlockingDatabase, model: &str, format: &str) -> Run {
    db.sql(&format!("SET spectradb.read_format = '{format}'"))
        .unwrap();
    let before = db.database().scan_stats().bytes_read();
    let mut secs = f64::INFINITY;
    let mut batches: Vec<RecordBatch> = Vec::new();
    for _ in 0..REPEATS {
        let start = Instant::now();
        batches = db
            .sql(&format!("SELECT id, {model}(image) FROM test ORDER BY id"))
            .unwrap();
        secs = secs.min(start.elapsed().as_secs_f64());
    }
    let bytes = (db.database().scan_stats().bytes_read() - before) / REPEATS as u64;
    Run {
        outputs: column(&batches, 1),
        secs,
        bytes,
    }
}

/// Column `i` of `batches` as display strings.
fn column(batches: &[RecordBatch], i: usize) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(array_value_to_string(b.column(i), r).unwrap());
        }
    }
    out
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
        let labels = work.join(format!("{t}.csv"));
        db.sql(&format!(
            "CREATE IMAGE TABLE {t} FROM '{}' WITH ({})",
            dir.display(),
            case.table_options
                .replace("{labels}", &labels.display().to_string())
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
    let using = if case.labels { " USING label" } else { "" };
    let start = Instant::now();
    db.sql(&format!("CALIBRATE {m} ON calib{using} SAMPLE 100000"))
        .unwrap();
    let catalog = db.database().catalog().unwrap();
    let profile: &Profile = &catalog.profiles[0];
    let metric = if case.labels { "accuracy" } else { "agreement" };
    println!(
        "\n## {m}: calibrated {} formats on {} images in {:.0} s",
        profile.formats.len(),
        profile.sample,
        start.elapsed().as_secs_f64()
    );
    println!("frontier (format, cost us/img, {metric}, lower bound):");
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
    // the native size; a family's largest member), as EXPLAIN names it.
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
    let full = run(&db, m, &reference);
    let def = run(&db, m, &default);
    let n = full.outputs.len() as f64;
    // What the held-out runs are measured against.
    let truth = if case.labels {
        column(
            &db.sql("SELECT id, label FROM test ORDER BY id").unwrap(),
            1,
        )
    } else {
        full.outputs.clone()
    };
    println!(
        "\nheld-out images: {}; full quality {reference}: {:.2} ms/img, {metric} {:.4}; default {default}: {:.2} ms/img ({metric} {:.4})",
        full.outputs.len(),
        full.secs * 1e3 / n,
        agreement(&full.outputs, &truth),
        def.secs * 1e3 / n,
        agreement(&def.outputs, &truth)
    );
    if case.create_model.iter().any(|s| s.contains(" FAMILY (")) {
        println!("| member (format) | {metric} (held out) | agreement with {reference} | bytes read / img | ms/img |");
        println!("|---|---|---|---|---|");
        let mut members: Vec<_> = profile.formats.iter().collect();
        members.sort_by(|a, b| b.cost_us().total_cmp(&a.cost_us()));
        for f in members {
            let r = run(&db, m, &f.format.to_string());
            println!(
                "| {} | {:.4} | {:.4} | {:.0} | {:.3} |",
                f.format,
                agreement(&r.outputs, &truth),
                agreement(&r.outputs, &full.outputs),
                r.bytes as f64 / n,
                r.secs * 1e3 / n
            );
        }
        println!();
    }
    println!("| target | chosen format | lower bound (calib) | {metric} (held out) | ms/img | speed-up vs full | vs default |");
    println!("|---|---|---|---|---|---|---|");
    for target in TARGETS {
        let (format, bound) = match profile.cheapest_meeting(target, LEVEL) {
            Some(f) => (f.format.to_string(), f.lower_bound(LEVEL)),
            None => (reference.clone(), f64::NAN),
        };
        let r = run(&db, m, &format);
        let measured = agreement(&r.outputs, &truth);
        println!(
            "| {target:.2} | {format} | {bound:.4} | {measured:.4}{} | {:.2} | {:.2}x | {:.2}x |",
            if measured + 0.02 < target && !bound.is_nan() {
                " (MISS)"
            } else {
                ""
            },
            r.secs * 1e3 / n,
            full.secs / r.secs,
            def.secs / r.secs
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
    for case in [&FASHION, &FASHION_LABELS, &FAMILY, &FAMILY_AGREEMENT] {
        if all || which.iter().any(|w| w == case.name) {
            bench(case);
        }
    }
}
