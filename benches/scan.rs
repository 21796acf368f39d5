//! The scan-parallelism benchmark: a model query over a table of ONE data
//! file (200 photos ingested at once) on one core against two cores. The
//! scan splits a file's rows over partitions, so two cores should give
//! >= 1.7x on a decode-bound query (the tiny model: inference nearly free).
//!
//! ```text
//! bash scripts/make_corpus.sh --out bench-data/corpus --count 1000
//! cargo bench --bench scan
//! ```
//! Queries: the tiny model and 64 px thumbnails (decode-bound), MobileNetV2
//! (model-bound). Printed: best of five interleaved runs per setting (ms),
//! and the ratio.
//! Two cores means a two-worker runtime and `target_partitions = 2`; each
//! partition's model calls run ONNX Runtime on one thread.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use spectradb::Database;

const PHOTOS: usize = 200;
const REPEATS: usize = 5;

fn collect(rt: &tokio::runtime::Runtime, db: &Database, sql: &str) -> Vec<RecordBatch> {
    rt.block_on(async { db.sql(sql).await.unwrap().collect().await.unwrap() })
}

fn main() {
    std::env::set_var("SPECTRADB_MODEL_THREADS", "1");
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = Database::open(work.join("db")).unwrap();
    collect(&rt, &db, "SET spectradb.cache_size = 0");
    collect(
        &rt,
        &db,
        &format!("CREATE IMAGE TABLE one FROM '{}/*.jpg'", photos.display()),
    );
    let files = db.catalog().unwrap().tables["one"].files.len();
    assert_eq!(files, 1, "the table should be one data file");
    let models = root.join("tests/data/models");
    let norm = "size = 224, mean = '0.485,0.456,0.406', std = '0.229,0.224,0.225'";
    for (name, file) in [
        ("tiny", "tiny_rgb_224.onnx"),
        ("mobilenet", "mobilenet_v2_imagenet.onnx"),
    ] {
        collect(
            &rt,
            &db,
            &format!(
                "CREATE MODEL {name} FROM '{}' WITH ({norm}, output = 'class')",
                models.join(file).display()
            ),
        );
    }
    println!("{PHOTOS} photos in one data file; ms per query, best of {REPEATS}, interleaved:");
    for (what, sql) in [
        ("tiny", "SELECT count(tiny(image)) FROM one"),
        ("thumbnail", "SELECT count(thumbnail(image, 64)) FROM one"),
        ("mobilenet", "SELECT count(mobilenet(image)) FROM one"),
    ] {
        let mut best = [Duration::MAX; 2];
        for _ in 0..REPEATS {
            for (i, parts) in [1, 2].into_iter().enumerate() {
                collect(
                    &rt,
                    &db,
                    &format!("SET datafusion.execution.target_partitions = {parts}"),
                );
                let t = Instant::now();
                collect(&rt, &db, sql);
                best[i] = best[i].min(t.elapsed());
            }
        }
        let [one, two] = best.map(|d| d.as_secs_f64() * 1e3);
        let goal = if what == "mobilenet" {
            "model-bound"
        } else {
            "decode-bound: goal >= 1.7x"
        };
        println!(
            "  {what:10} 1 core {one:8.1}   2 cores {two:8.1}   speed-up {:.2}x ({goal})",
            one / two
        );
    }
}
