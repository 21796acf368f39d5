//! The reuse benchmark: what the output cache, materialized views and
//! heads on a shared backbone save, with MobileNetV2 on one core, all
//! ratios against a baseline measured in the same run.
//!
//! ```text
//! bash scripts/make_corpus.sh --out bench-data/corpus --count 1000
//! cargo bench --bench reuse
//! ```
//! 1. the same model query twice in one process (second from the cache);
//! 2. a new process (empty cache) reading a materialized view of the
//!    model's output, against computing it;
//! 3. five heads over one materialized backbone against the five whole
//!    models (each head run from the images: backbone + head);
//! 4. (in `cargo bench --bench planner`: CALIBRATE of the coarse head);
//! 5. peak RSS of the 1,000-photo query with a cache smaller than its
//!    outputs (a child process per run, so peaks do not mix).

use std::path::Path;
use std::time::{Duration, Instant};

use spectradb::Database;

mod common;
use common::{
    child_stdout, collect, current_thread_runtime, numbers, peak_rss_mib, this_benchmark,
    IMAGENET_224,
};

fn timed(rt: &tokio::runtime::Runtime, db: &Database, sql: &str) -> Duration {
    let t = Instant::now();
    collect(rt, db, sql);
    t.elapsed()
}

fn open(path: &Path) -> (tokio::runtime::Runtime, Database) {
    let rt = current_thread_runtime();
    let db = Database::open(path).unwrap();
    collect(&rt, &db, "SET datafusion.execution.target_partitions = 1");
    (rt, db)
}

/// Child mode: runs one query under a cache size and prints its peak RSS.
fn child(db_path: &Path, cache: &str, sql: &str) {
    let (rt, db) = open(db_path);
    collect(&rt, &db, &format!("SET spectradb.cache_size = '{cache}'"));
    let base = peak_rss_mib();
    let t = Instant::now();
    collect(&rt, &db, sql);
    let stats = collect(&rt, &db, "SELECT bytes, capacity FROM spectradb_cache");
    let col = |i: usize| {
        arrow::array::AsArray::as_primitive::<arrow::datatypes::UInt64Type>(stats[0].column(i))
            .value(0)
    };
    println!(
        "{:.3} {:.1} {:.1} {} {}",
        t.elapsed().as_secs_f64(),
        base,
        peak_rss_mib(),
        col(0),
        col(1)
    );
}

fn run_child(db_path: &Path, cache: &str, sql: &str) -> Vec<f64> {
    let out = child_stdout(
        this_benchmark()
            .args(["--child", db_path.to_str().unwrap(), cache, sql])
            .env("SPECTRADB_MODEL_THREADS", "1"),
        "the child query",
    );
    numbers(&out)
}

fn main() {
    std::env::set_var("SPECTRADB_MODEL_THREADS", "1");
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(Path::new(&args[2]), &args[3], &args[4]);
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = common::corpus_dir();
    let db_path = root.join("bench-data/reuse.db");
    let _ = std::fs::remove_dir_all(&db_path);
    let models = root.join("tests/data/models");
    let model = |f: &str| models.join(f).display().to_string();
    let n;
    {
        let (rt, db) = open(&db_path);
        collect(
            &rt,
            &db,
            &format!(
                "CREATE IMAGE TABLE photos FROM '{}/*.jpg'",
                corpus.display()
            ),
        );
        n = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(
            collect(&rt, &db, "SELECT count(*) FROM photos")[0].column(0),
        )
        .value(0) as usize;
        println!("corpus: {n} photos in {}, one core", corpus.display());
        collect(
            &rt,
            &db,
            &format!(
                "CREATE MODEL mobilenet FROM '{}' WITH ({IMAGENET_224}, output = 'class')",
                model("mobilenet_v2_imagenet.onnx")
            ),
        );
        collect(
            &rt,
            &db,
            &format!(
                "CREATE MODEL backbone FROM '{}' WITH ({IMAGENET_224}, output = 'embedding')",
                model("mobilenet_v2_backbone.onnx")
            ),
        );
        // Five heads: the three head files, and the classifier and coarse
        // heads once more with their raw scores as output.
        for (name, file, opts) in [
            (
                "imagenet_head",
                "mobilenet_v2_head.onnx",
                "output = 'class'".to_string(),
            ),
            (
                "imagenet_raw",
                "mobilenet_v2_head.onnx",
                "output = 'scores'".to_string(),
            ),
            (
                "embed",
                "mobilenet_v2_embed.onnx",
                "output = 'embedding'".to_string(),
            ),
            (
                "coarse",
                "mobilenet_v2_coarse.onnx",
                format!("labels = '{}'", model("coarse_classes.txt")),
            ),
            (
                "coarse_raw",
                "mobilenet_v2_coarse.onnx",
                "output = 'scores'".to_string(),
            ),
        ] {
            collect(
                &rt,
                &db,
                &format!(
                    "CREATE MODEL {name} FROM '{}' ON FEATURES OF backbone WITH ({opts})",
                    model(file)
                ),
            );
        }

        // 1. The same query twice in one process.
        let q = "SELECT count(mobilenet(image)) FROM photos";
        let bands0 = db.scan_stats().band_columns_read();
        let first = timed(&rt, &db, q);
        let bands1 = db.scan_stats().band_columns_read();
        let second = timed(&rt, &db, q);
        let bands2 = db.scan_stats().band_columns_read();
        println!("\n1. the same model query twice in one process");
        println!(
            "   first  {:8.3} s  ({} band columns read)",
            first.as_secs_f64(),
            bands1 - bands0
        );
        println!(
            "   second {:8.3} s  ({} band columns read)   {:.0}x faster (goal >= 100x)",
            second.as_secs_f64(),
            bands2 - bands1,
            first.as_secs_f64() / second.as_secs_f64()
        );

        // Views for 2 and 3.
        let t = Instant::now();
        collect(
            &rt,
            &db,
            "CREATE MATERIALIZED VIEW labels AS SELECT id, mobilenet(image) AS class FROM photos",
        );
        println!(
            "\n   CREATE MATERIALIZED VIEW labels (from the cache): {:.3} s",
            t.elapsed().as_secs_f64()
        );
        collect(&rt, &db, "SET spectradb.cache_size = 0");
        let t = Instant::now();
        collect(
            &rt,
            &db,
            "CREATE MATERIALIZED VIEW feats AS SELECT id, backbone(image) AS f FROM photos",
        );
        println!(
            "   CREATE MATERIALIZED VIEW feats (backbone computed): {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }

    // 2. A new process: empty cache, the view on disk (the child opens the
    // database and runs the query once; computing runs with no view).
    let heads = [
        "imagenet_head",
        "imagenet_raw",
        "embed",
        "coarse",
        "coarse_raw",
    ];
    let with_view = run_child(
        &db_path,
        "256MiB",
        "SELECT count(mobilenet(image)) FROM photos",
    );
    println!("\n2. a new process (empty cache) with a materialized view of the output");
    println!(
        "   through view labels {:8.3} s (query only; opening the database not counted)",
        with_view[0]
    );

    // The computing side: the same model under another name has no view.
    {
        let (rt, db) = open(&db_path);
        collect(
            &rt,
            &db,
            &format!(
                "CREATE MODEL mobilenet2 FROM '{}' WITH ({IMAGENET_224}, output = 'class')",
                model("mobilenet_v2_imagenet.onnx")
            ),
        );
    }
    let computed = run_child(&db_path, "0", "SELECT count(mobilenet2(image)) FROM photos");
    println!(
        "   computed            {:8.3} s   the view is {:.0}x faster (goal >= 100x)",
        computed[0],
        computed[0] / with_view[0]
    );

    // 3. Five heads over the materialized backbone vs five whole models.
    println!("\n3. five heads over one materialized backbone vs the five whole models");
    let mut total_view = 0.0;
    let mut total_full = 0.0;
    for h in heads {
        let q = format!("SELECT count({h}(image)) FROM photos");
        let v = run_child(&db_path, "0", &q)[0];
        total_view += v;
        println!("   {h:22} on view feats {v:8.3} s");
    }
    {
        let (rt, db) = open(&db_path);
        collect(&rt, &db, "DROP MATERIALIZED VIEW feats");
    }
    for h in heads {
        let q = format!("SELECT count({h}(image)) FROM photos");
        let full = run_child(&db_path, "0", &q)[0];
        total_full += full;
        println!("   {h:22} backbone + head from the images {full:8.3} s");
    }
    println!(
        "   all five: {total_view:.3} s on the view vs {total_full:.3} s whole: {:.0}x",
        total_full / total_view
    );

    // 5. Peak RSS with a cache smaller than the outputs (1,000 x 1,000
    // scores are ~4 MB; 1 MiB holds a quarter).
    println!("\n5. peak RSS, SELECT mobilenet_scores(image) over all photos");
    for cache in ["0", "1MiB", "256MiB"] {
        let r = run_child(
            &db_path,
            cache,
            "SELECT id, mobilenet2_scores(image) FROM photos",
        );
        println!(
            "   cache_size {cache:>7}: {:7.3} s, peak RSS {:7.1} MiB (before the query {:7.1}), cache bytes {} of {}",
            r[0], r[2], r[1], r[3], r[4]
        );
    }
    println!("\n({n} photos; every figure from this run)");
}
