//! What the benchmarks share: running a statement to its batches, the
//! runtimes they run on, peak RSS, children (a benchmark re-running itself
//! in a fresh process) and the bundled MobileNetV2's model options.
#![allow(dead_code, reason = "each benchmark uses only some of these")]

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::RecordBatch;
use spectradb::Database;

/// The data-path corpus: `SPECTRADB_CORPUS`, else `bench-data/corpus`
/// (made by `scripts/make_corpus.sh`).
pub fn corpus_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = std::env::var_os("SPECTRADB_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench-data/corpus"));
    assert!(
        corpus.is_dir(),
        "no corpus at {}: run bash scripts/make_corpus.sh --out bench-data/corpus --count 1000",
        corpus.display()
    );
    corpus
}

/// `CREATE MODEL` options of the bundled MobileNetV2 models (ImageNet
/// normalisation at 224 pixels); a statement adds its `output`.
pub const IMAGENET_224: &str = "size = 224, mean = '0.485,0.456,0.406', std = '0.229,0.224,0.225'";

/// Runs `sql` to its batches; a benchmark's statements must succeed.
pub fn collect(rt: &tokio::runtime::Runtime, db: &Database, sql: &str) -> Vec<RecordBatch> {
    rt.block_on(async {
        let frame = db.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        frame
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
}

/// A runtime on the calling thread: DataFusion's own partitions still use
/// the blocking pool.
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A runtime with `workers` worker threads.
pub fn multi_thread_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Peak resident set of this process (Linux), in MiB; NaN elsewhere.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// This benchmark's own executable, to run as a child in a fresh process.
pub fn this_benchmark() -> Command {
    Command::new(std::env::current_exe().expect("the benchmark's executable"))
}

/// Runs a child to its end and returns what it printed; a child that fails
/// fails the benchmark with its output.
pub fn child_stdout(command: &mut Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The numbers a child printed, separated by white space.
pub fn numbers(text: &str) -> Vec<f64> {
    text.split_whitespace()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("not a number: {v}")))
        .collect()
}
