//! A 224-pixel model query over a table on object storage: requests and
//! bytes it fetches per image, against reading the JPEG objects whole
//! (one GET each, what a pipeline over the photo bucket does), and its
//! time against the same query over a local table, measured in this run.
//! The store is moto's S3 server on 127.0.0.1 (`tests/s3_server.py`,
//! needs `python3 -m pip install "moto[server]"`): loopback has no
//! network cost, so requests and bytes are the figures that carry over.
//!
//! ```text
//! cargo bench --bench object_storage                          # the 20 bundled labelled photos
//! SPECTRADB_CORPUS=bench-data/corpus cargo bench --bench object_storage
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

use spectradb::storage::remote::{self, RemoteFile};
use spectradb::Database;

mod common;
use common::{collect, current_thread_runtime, IMAGENET_224};

/// Each timed query runs this many times; the best is kept.
const RUNS: usize = 3;

fn corpus() -> Vec<PathBuf> {
    let dir = std::env::var("SPECTRADB_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new("tests/data/photos/imagenet-labeled").to_path_buf());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    files
}

fn main() {
    let files = corpus();
    let n = files.len() as f64;
    let mut server = Command::new("python3")
        .args([
            "tests/s3_server.py",
            "spectra-bench-raw",
            "spectra-bench-lake",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs tests/s3_server.py");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let parts: Vec<String> = line.split_whitespace().map(String::from).collect();
    assert_eq!(parts.len(), 3, "the S3 server did not start: '{line}'");
    let endpoint = format!("http://127.0.0.1:{}", parts[0]);
    let options = format!(
        "aws_endpoint = '{endpoint}', aws_region = 'us-east-1', aws_access_key_id = '{}', aws_secret_access_key = '{}'",
        parts[1], parts[2]
    );
    let map = [
        ("aws_endpoint", endpoint.clone()),
        ("aws_region", "us-east-1".into()),
        ("aws_access_key_id", parts[1].clone()),
        ("aws_secret_access_key", parts[2].clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    remote::configure("s3://spectra-bench-raw", &map).unwrap();
    let mut jpeg_bytes = 0u64;
    let mut urls = Vec::new();
    for f in &files {
        let url = format!(
            "s3://spectra-bench-raw/photos/{}",
            f.file_name().unwrap().to_str().unwrap()
        );
        RemoteFile::new(&url).unwrap().upload(f).unwrap();
        jpeg_bytes += std::fs::metadata(f).unwrap().len();
        urls.push(url);
    }

    let rt = current_thread_runtime();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("bench.db")).unwrap();
    let local = files[0].parent().unwrap().display().to_string();
    for sql in [
        format!(
            "CREATE IMAGE TABLE remote FROM 's3://spectra-bench-raw/photos/*.jpg' \
             WITH (location = 's3://spectra-bench-lake/remote', {options})"
        ),
        format!("CREATE IMAGE TABLE here FROM '{local}/*.jpg'"),
        format!(
            "CREATE MODEL mobilenet FROM 'tests/data/models/mobilenet_v2_imagenet.onnx' \
             WITH ({IMAGENET_224}, output = 'class')"
        ),
        "SET spectradb.cache_size = 0".into(),
        "SET datafusion.execution.target_partitions = 1".into(),
    ] {
        collect(&rt, &db, &sql);
    }
    let stored: u64 = db.catalog().unwrap().tables["remote"]
        .files
        .iter()
        .map(|f| f.bytes)
        .sum();

    // Reading the JPEG objects whole: one GET each.
    let mut jpeg_ms = f64::INFINITY;
    for _ in 0..RUNS {
        let t = Instant::now();
        for url in &urls {
            RemoteFile::new(url).unwrap().read_all().unwrap();
        }
        jpeg_ms = jpeg_ms.min(t.elapsed().as_secs_f64() * 1e3);
    }

    let stats = db.scan_stats();
    let query = |table: &str| -> (f64, u64, u64) {
        let mut best = f64::INFINITY;
        let (mut requests, mut bytes) = (0, 0);
        for _ in 0..RUNS {
            let (r0, b0) = (
                stats.store_requests.load(Ordering::Relaxed),
                stats.store_bytes.load(Ordering::Relaxed),
            );
            let t = Instant::now();
            collect(
                &rt,
                &db,
                &format!("SELECT count(mobilenet(image)) FROM {table}"),
            );
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
            requests = stats.store_requests.load(Ordering::Relaxed) - r0;
            bytes = stats.store_bytes.load(Ordering::Relaxed) - b0;
        }
        (best, requests, bytes)
    };
    let (remote_ms, requests, fetched) = query("remote");
    let (local_ms, _, _) = query("here");
    let _ = server.kill();
    let _ = server.wait();

    println!(
        "{} photos, {jpeg_bytes} JPEG bytes, {stored} stored bytes",
        files.len()
    );
    println!("| per image | spectradb table on S3 | JPEG objects | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| requests | {:.2} | 1 | {:.2}x |",
        requests as f64 / n,
        requests as f64 / n
    );
    println!(
        "| bytes fetched | {:.0} | {:.0} | {:.3}x |",
        fetched as f64 / n,
        jpeg_bytes as f64 / n,
        fetched as f64 / jpeg_bytes as f64
    );
    println!(
        "| ms, loopback (GETs only for the JPEGs) | {:.2} | {:.2} | |",
        remote_ms / n,
        jpeg_ms / n
    );
    println!(
        "model query on S3 vs local table: {:.2} vs {:.2} ms per image ({:.2}x)",
        remote_ms / n,
        local_ms / n,
        remote_ms / local_ms
    );
}
