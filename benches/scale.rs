//! The scale benchmark: from 1,000 to 10,000 photos, ingest and a model
//! query should take 10x the time (goal: within 1.15x of that) at the same
//! peak memory (goal: within 1.2x), and ingest on two threads should be
//! close to twice as fast as on one (goal: within 1.2x of linear).
//!
//! ```text
//! bash scripts/make_corpus.sh --out bench-data/corpus10k --count 10000 --mirror --no-source
//! cargo bench --profile measure --bench scale
//! SCALE_N=200,2000 SCALE_REPEATS=1 cargo bench --profile measure --bench scale   # a quick run
//! ```
//! Each size N takes N photos spread evenly over the corpus (every
//! 10th of the 10,000 for N = 1,000), so every size has the same mix of
//! source photos. Every step runs in a child process of its own (this
//! bench runs itself with `SCALE_STEP` set), so its peak RSS (VmHWM) is
//! its own:
//! - `ingest`: `Database::ingest` of the N photos into a fresh database,
//!   one decoding thread;
//! - `query`: `SELECT count(tiny(image)) FROM photos` with the tiny model,
//!   `target_partitions = 1`, one model thread, the output cache off;
//! - `ingest2`: for the smallest N, ingest with two decoding threads, run
//!   right after the one-thread ingest of the same photos.
//!
//! Steps are interleaved over `SCALE_REPEATS` rounds (2 by default); the
//! best wall time of each is reported, with its CPU time (user + system,
//! all threads) and how many cores other processes kept busy meanwhile,
//! since the machine may be shared; peak RSS is the highest seen. The two
//! threads only show their speed-up on otherwise idle cores: `SCALE_N=1000`
//! runs just the 1,000-photo steps, quick to repeat when the machine is
//! quiet.
//!
//! Environment: `SCALE_N` (sizes, comma-separated, default `1000,10000`),
//! `SCALE_REPEATS`, `SPECTRADB_SCALE_CORPUS` (default `bench-data/corpus10k`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{Array, Int64Array};
use spectradb::ingest::IngestOptions;
use spectradb::source::{load_file, SourceOptions};
use spectradb::storage::{write_tokenized_file, TokenizedImage, TokenizedRow, WriteOptions};
use spectradb::{Database, IngestMode};

mod common;
use common::{child_stdout, collect, this_benchmark, IMAGENET_224};

const MODEL: &str = "tests/data/models/tiny_rgb_224.onnx";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of this process, all threads.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// (busy, all) CPU time of the whole machine so far, in ticks of all cores.
fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let all: f64 = v.iter().take(8).sum();
    // idle and iowait are fields 4 and 5 of the `cpu` line.
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (all - idle, all)
}

/// Cores the rest of the machine kept busy since `since` (from
/// [`machine_ticks`]) while this process used `own_cpu` seconds in `secs`:
/// with autogroup scheduling a busy neighbour takes its share whatever
/// this process's thread count, so a parallel speed-up is only measured
/// when this is near zero.
fn others_cores(since: (f64, f64), own_cpu: f64, secs: f64) -> f64 {
    let (busy, all) = machine_ticks();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine = (busy - since.0) / (all - since.1).max(1.0) * cores;
    (machine - own_cpu / secs.max(1e-9)).max(0.0)
}

/// One step, in this (child) process; prints its `RESULT` line.
fn step(kind: &str, dir: &Path, db_dir: &Path, threads: usize) {
    let rss_before = status_kib("VmRSS:");
    let (cpu0, ticks) = (cpu_secs(), machine_ticks());
    let t = Instant::now();
    let rows = match kind {
        "ingest" => {
            let _ = std::fs::remove_dir_all(db_dir);
            let db = Database::open(db_dir).unwrap();
            let opts = IngestOptions {
                threads,
                ..Default::default()
            };
            let report = db
                .ingest(
                    "photos",
                    &dir.display().to_string(),
                    IngestMode::Create,
                    &opts,
                )
                .unwrap();
            report.ingested
        }
        "query" => {
            std::env::set_var("SPECTRADB_MODEL_THREADS", "1");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let db = Database::open(db_dir).unwrap();
            collect(&rt, &db, "SET datafusion.execution.target_partitions = 1");
            collect(&rt, &db, "SET spectradb.cache_size = 0");
            collect(&rt, &db, "DROP MODEL IF EXISTS tiny");
            collect(
                &rt,
                &db,
                &format!(
                    "CREATE MODEL tiny FROM '{MODEL}' WITH ({IMAGENET_224}, output = 'class')"
                ),
            );
            // Opening, the model's session and its probe are not the scan.
            let (t, cpu0, rss_before, ticks) = (
                Instant::now(),
                cpu_secs(),
                status_kib("VmRSS:"),
                machine_ticks(),
            );
            let b = collect(&rt, &db, "SELECT count(tiny(image)) FROM photos");
            let n = b[0]
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0) as u64;
            report(
                kind,
                n,
                t.elapsed().as_secs_f64(),
                cpu_secs() - cpu0,
                rss_before,
                ticks,
            );
            return;
        }
        other => panic!("unknown step {other}"),
    };
    report(
        kind,
        rows,
        t.elapsed().as_secs_f64(),
        cpu_secs() - cpu0,
        rss_before,
        ticks,
    );
}

fn report(kind: &str, rows: u64, secs: f64, cpu: f64, rss_before: u64, ticks: (f64, f64)) {
    println!(
        "RESULT {kind} rows={rows} secs={secs:.3} cpu={cpu:.2} hwm_kib={} rss_before_kib={rss_before} others={:.2}",
        status_kib("VmHWM:"),
        others_cores(ticks, cpu, secs)
    );
}

/// What a child step measured.
#[derive(Debug, Clone, Copy)]
struct Measure {
    secs: f64,
    cpu: f64,
    hwm_mib: f64,
    /// Cores other processes kept busy meanwhile.
    others: f64,
}

fn run_child(kind: &str, dir: &Path, db_dir: &Path, threads: usize, rows: usize) -> Measure {
    let text = child_stdout(
        this_benchmark()
            .env("SCALE_STEP", kind)
            .env("SCALE_DIR", dir)
            .env("SCALE_DB", db_dir)
            .env("SCALE_THREADS", threads.to_string())
            .current_dir(env!("CARGO_MANIFEST_DIR")),
        &format!("step {kind}"),
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("step {kind} printed no result: {text}"));
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    assert_eq!(
        field("rows") as usize,
        rows,
        "step {kind} saw the wrong number of rows: {line}"
    );
    let m = Measure {
        secs: field("secs"),
        cpu: field("cpu"),
        hwm_mib: field("hwm_kib") / 1024.0,
        others: field("others"),
    };
    println!(
        "  {kind:<7} n={rows:<6} threads={threads} {:8.2} s  cpu {:8.2} s  peak RSS {:7.1} MiB  other processes {:.2} cores",
        m.secs, m.cpu, m.hwm_mib, m.others
    );
    m
}

/// CPU time of this thread so far, in seconds (Linux).
fn thread_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// An ingest's two stages on this thread, CPU seconds per image: decoding
/// the photos of `dir` (coefficients out of the JPEGs) and tokenizing their
/// bands, and writing them as data files of 256 images (fitting the band
/// codes to the tokens and coding them).
fn ingest_stages(dir: &Path, work: &Path) -> (f64, f64) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.truncate(512);
    let opts = SourceOptions::default();
    let write = WriteOptions {
        chroma: opts.encode.chroma,
        quality: opts.encode.quality,
        ..Default::default()
    };
    let (mut decode, mut written) = (0.0, 0.0);
    let out = work.join("stages.parquet");
    for (round, chunk) in files.chunks(256).enumerate() {
        let t = thread_cpu_secs();
        let rows: Vec<TokenizedRow> = chunk
            .iter()
            .enumerate()
            .map(|(i, p)| TokenizedRow {
                id: (round * 256 + i) as u64,
                uri: p.display().to_string(),
                image: TokenizedImage::new(&load_file(p, &opts).unwrap().0).unwrap(),
            })
            .collect();
        decode += thread_cpu_secs() - t;
        let t = thread_cpu_secs();
        write_tokenized_file(&out, &write, &rows, &[]).unwrap();
        written += thread_cpu_secs() - t;
    }
    let _ = std::fs::remove_file(out);
    let n = files.len() as f64;
    (decode / n, written / n)
}

/// `n` of the corpus' JPEGs spread evenly over it, linked into `dir`.
fn subset(jpegs: &[PathBuf], n: usize, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let f = &jpegs[i * jpegs.len() / n];
        let to = dir.join(f.file_name().unwrap());
        std::os::unix::fs::symlink(std::fs::canonicalize(f).unwrap(), to).unwrap();
    }
}

/// The best time of a step's runs, with the CPU time and neighbours of that run,
/// and the highest peak RSS of all runs.
fn best(runs: &[Measure]) -> Measure {
    let mut b = *runs
        .iter()
        .min_by(|a, b| a.secs.total_cmp(&b.secs))
        .unwrap();
    b.hwm_mib = runs.iter().map(|m| m.hwm_mib).fold(0.0, f64::max);
    b
}

fn main() {
    if let Ok(kind) = std::env::var("SCALE_STEP") {
        let threads = env_or("SCALE_THREADS", "1").parse().unwrap();
        step(
            &kind,
            Path::new(&env_or("SCALE_DIR", "")),
            Path::new(&env_or("SCALE_DB", "")),
            threads,
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = std::env::var_os("SPECTRADB_SCALE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench-data/corpus10k"));
    let sizes: Vec<usize> = env_or("SCALE_N", "1000,10000")
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("SCALE_N: sizes separated by commas")
        })
        .collect();
    let repeats: usize = env_or("SCALE_REPEATS", "2").parse().unwrap();
    let mut jpegs: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| {
            panic!(
                "no corpus at {} ({e}): run bash scripts/make_corpus.sh --out bench-data/corpus10k \
                 --count 10000 --mirror --no-source",
                corpus.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    jpegs.sort();
    let largest = *sizes.iter().max().unwrap();
    assert!(
        jpegs.len() >= largest,
        "{} has {} JPEGs, fewer than N = {largest}",
        corpus.display(),
        jpegs.len()
    );
    let work = root.join("bench-data/scale");
    let smallest = *sizes.iter().min().unwrap();
    for &n in &sizes {
        subset(&jpegs, n, &work.join(format!("photos-{n}")));
    }
    println!(
        "scale: N = {sizes:?} of {} JPEGs in {}, {repeats} rounds, {} cores",
        jpegs.len(),
        corpus.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut runs: BTreeMap<(&str, usize), Vec<Measure>> = BTreeMap::new();
    for round in 0..repeats {
        println!("round {}:", round + 1);
        for &n in &sizes {
            let dir = work.join(format!("photos-{n}"));
            let db = work.join(format!("db-{n}"));
            let m = run_child("ingest", &dir, &db, 1, n);
            runs.entry(("ingest", n)).or_default().push(m);
            if n == smallest {
                let m = run_child("ingest", &dir, &work.join("db-2threads"), 2, n);
                runs.entry(("ingest2", n)).or_default().push(m);
            }
            let m = run_child("query", &dir, &db, 1, n);
            runs.entry(("query", n)).or_default().push(m);
        }
    }

    println!("\nbest of {repeats} (time per image, peak RSS of the step's process):");
    for ((kind, n), r) in &runs {
        let b = best(r);
        println!(
            "  {kind:<7} n={n:<6} {:8.3} ms/image  cpu {:8.3} ms/image  peak RSS {:7.1} MiB  (other processes {:.2} cores)",
            b.secs * 1e3 / *n as f64,
            b.cpu * 1e3 / *n as f64,
            b.hwm_mib,
            b.others
        );
    }
    if sizes.len() >= 2 {
        let (small, large) = (smallest, largest);
        let k = large as f64 / small as f64;
        println!("\n{small} -> {large} ({k}x the photos):");
        for kind in ["ingest", "query"] {
            let (a, b) = (best(&runs[&(kind, small)]), best(&runs[&(kind, large)]));
            println!(
                "  {kind:<7} time {:.3}x linear (goal <= 1.15; CPU time {:.3}x), peak RSS {:.3}x (goal <= 1.2)",
                b.secs / a.secs / k,
                b.cpu / a.cpu / k,
                b.hwm_mib / a.hwm_mib
            );
        }
    }
    let (one, two) = (
        best(&runs[&("ingest", smallest)]),
        best(&runs[&("ingest2", smallest)]),
    );
    let (decode, write) = ingest_stages(&work.join(format!("photos-{smallest}")), &work);
    println!(
        "ingest stages, one thread, CPU per image: decode and tokenize {:.3} ms, write {:.3} ms",
        decode * 1e3,
        write * 1e3,
    );
    println!(
        "ingest of {smallest} photos on 2 threads: {:.2}x faster than 1 thread, {:.3}x linear \
         (goal <= 1.2; CPU time 2 threads / 1 thread {:.3})",
        one.secs / two.secs,
        two.secs / (one.secs / 2.0),
        two.cpu / one.cpu
    );
}
