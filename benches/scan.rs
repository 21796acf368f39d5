//! The scan-parallelism benchmark: a model query over a table of ONE data
//! file (200 photos ingested at once) on one core against two cores. The
//! scan splits a file's rows over partitions, so two cores should give
//! >= 1.7x on a decode-bound query (the tiny model: inference nearly free).
//!
//! ```text
//! bash scripts/make_corpus.sh --out bench-data/corpus --count 1000
//! cargo bench --bench scan
//! ```
//! Each setting runs in a child process: "1 core" is pinned to one CPU
//! with `taskset` (even with one partition the scan decodes on its own
//! thread while the model runs, so an unpinned run already uses two cores)
//! and reads with `target_partitions = 1`; "2 cores" is pinned to two CPUs
//! with `target_partitions = 2`, and also with 1 (the file as one
//! partition, as before the scan split files). ONNX Runtime runs one thread
//! per session.
//! Queries: the tiny model and 64 px thumbnails (decode-bound), MobileNetV2
//! (model-bound). Printed: best of five interleaved runs per setting (ms),
//! and the ratio.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use spectradb::Database;

mod common;
use common::{child_stdout, collect, multi_thread_runtime, numbers, IMAGENET_224};

const PHOTOS: usize = 200;
const REPEATS: usize = 5;
const QUERIES: [(&str, &str); 3] = [
    ("tiny", "SELECT count(tiny(image)) FROM one"),
    ("thumbnail", "SELECT count(thumbnail(image, 64)) FROM one"),
    ("mobilenet", "SELECT count(mobilenet(image)) FROM one"),
];

/// In a child: each query once to warm up, then timed; prints `ms` per query.
fn child(db_dir: &Path, partitions: usize) {
    let rt = multi_thread_runtime(2);
    let db = Database::open(db_dir).unwrap();
    collect(&rt, &db, "SET spectradb.cache_size = 0");
    collect(
        &rt,
        &db,
        &format!("SET datafusion.execution.target_partitions = {partitions}"),
    );
    for (_, sql) in QUERIES {
        collect(&rt, &db, sql);
        let t = Instant::now();
        collect(&rt, &db, sql);
        print!("{} ", t.elapsed().as_secs_f64() * 1e3);
    }
    println!();
}

/// Runs a child on `cpus` (a taskset list) with `partitions`; ms per query.
fn run_child(db_dir: &Path, cpus: &str, partitions: usize) -> Vec<f64> {
    let out = child_stdout(
        Command::new("taskset")
            .args(["-c", cpus])
            .arg(std::env::current_exe().unwrap())
            .env("SPECTRADB_SCAN_CHILD", partitions.to_string())
            .env("SPECTRADB_SCAN_DB", db_dir),
        "the pinned child (taskset, from util-linux)",
    );
    numbers(&out)
}

fn main() {
    std::env::set_var("SPECTRADB_MODEL_THREADS", "1");
    if let (Some(p), Some(dir)) = (
        std::env::var_os("SPECTRADB_SCAN_CHILD"),
        std::env::var_os("SPECTRADB_SCAN_DB"),
    ) {
        child(Path::new(&dir), p.to_str().unwrap().parse().unwrap());
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = std::env::var_os("SPECTRADB_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench-data/corpus"));
    let mut jpegs: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| {
            panic!(
                "no corpus at {} ({e}): run bash scripts/make_corpus.sh --out bench-data/corpus --count 1000",
                corpus.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    jpegs.sort();
    assert!(
        jpegs.len() >= PHOTOS,
        "the corpus has {} photos",
        jpegs.len()
    );

    // The first 200 photos, linked into one folder: one INSERT, one file.
    let work = root.join("bench-data/scan");
    let _ = std::fs::remove_dir_all(&work);
    let photos = work.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for p in &jpegs[..PHOTOS] {
        std::os::unix::fs::symlink(p, photos.join(p.file_name().unwrap())).unwrap();
    }
    let db_dir = work.join("db");
    {
        let rt = multi_thread_runtime(2);
        let db = Database::open(&db_dir).unwrap();
        collect(
            &rt,
            &db,
            &format!("CREATE IMAGE TABLE one FROM '{}/*.jpg'", photos.display()),
        );
        let files = db.catalog().unwrap().tables["one"].files.len();
        assert_eq!(files, 1, "the table should be one data file");
        let models = root.join("tests/data/models");
        for (name, file) in [
            ("tiny", "tiny_rgb_224.onnx"),
            ("mobilenet", "mobilenet_v2_imagenet.onnx"),
        ] {
            collect(
                &rt,
                &db,
                &format!(
                    "CREATE MODEL {name} FROM '{}' WITH ({IMAGENET_224}, output = 'class')",
                    models.join(file).display()
                ),
            );
        }
    }
    // 1 core; 2 cores reading the file as one partition (as before the
    // scan split files); 2 cores, 2 partitions.
    let settings = [("0", 1), ("0,1", 1), ("0,1", 2)];
    let mut best = [[f64::MAX; 3]; QUERIES.len()];
    for _ in 0..REPEATS {
        for (i, (cpus, parts)) in settings.into_iter().enumerate() {
            for (q, ms) in run_child(&db_dir, cpus, parts).into_iter().enumerate() {
                best[q][i] = best[q][i].min(ms);
            }
        }
    }
    println!("{PHOTOS} photos in one data file; ms per query, best of {REPEATS}, interleaved:");
    println!("  query      1 core   2 cores, 1 partition   2 cores, 2 partitions (speed-up)");
    for ((what, _), [one, whole, two]) in QUERIES.iter().zip(best) {
        let goal = if *what == "mobilenet" {
            "model-bound"
        } else {
            "decode-bound: goal >= 1.7x"
        };
        println!(
            "  {what:10} {one:6.1}   {whole:6.1} ({:.2}x)          {two:6.1} ({:.2}x; {goal})",
            one / whole,
            one / two
        );
    }
}
