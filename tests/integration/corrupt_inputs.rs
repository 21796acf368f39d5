//! Damaged and unusual image files (`tests/data/corrupt`, written by
//! `scripts/make_corrupt_corpus.py`): an ingest takes each file or lists it
//! with a reason, nothing panics, and with `on_error = 'fail'` nothing is
//! committed.

use std::collections::BTreeMap;
use std::path::Path;

use super::common::strings;
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use spectradb::Database;

const CORPUS: &str = "tests/data/corrupt";

/// Names of the corpus files.
fn corpus() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn file_name(uri: &str) -> String {
    Path::new(uri)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

async fn query(db: &Database, sql: &str) -> Vec<RecordBatch> {
    db.sql(sql).await.unwrap().collect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corrupt_file_is_ingested_or_listed_with_a_reason() {
    let files = corpus();
    assert!(files.len() > 80, "corpus has {} files", files.len());
    let db = Database::in_memory().unwrap();
    // A glob takes every file it matches, whatever its extension.
    db.sql(&format!(
        "CREATE IMAGE TABLE c FROM '{CORPUS}/*' WITH (on_error = 'skip')"
    ))
    .await
    .unwrap();
    let rows = query(&db, "SELECT uri, width, height FROM c").await;
    let ingested: BTreeMap<String, (String, String)> = strings(&rows, 0)
        .iter()
        .map(|u| file_name(u))
        .zip(strings(&rows, 1).into_iter().zip(strings(&rows, 2)))
        .collect();
    let errs = query(
        &db,
        "SELECT uri, reason FROM spectradb_ingest_errors WHERE table_name = 'c'",
    )
    .await;
    let errors: BTreeMap<String, String> = strings(&errs, 0)
        .iter()
        .map(|u| file_name(u))
        .zip(strings(&errs, 1))
        .collect();
    assert_eq!(
        strings(&rows, 0).len() + strings(&errs, 0).len(),
        files.len(),
        "each file once"
    );
    for f in &files {
        match (ingested.get(f), errors.get(f)) {
            (Some(_), None) => {}
            (None, Some(reason)) => {
                assert!(reason.contains(f.as_str()), "{f}: {reason}");
                // The per-file panic guard is a last line: no file may need it.
                assert!(!reason.contains("internal error"), "{f}: {reason}");
            }
            other => panic!("{f}: ingested and error: {other:?}"),
        }
    }
    // What must go in: intact files, whatever their name, and every
    // orientation, with 5-8 turned on their side (the source is 64x40).
    for f in [
        "ok_baseline.jpg",
        "ok_progressive.jpg",
        "ok_fruit.png",
        "ok_fruit.webp",
        "png_named.jpg",
        "jpeg_named.png",
        "jpeg_named.bin",
        "png16_gray.png",
        "png16_rgb.png",
        "animated.png",
        "animated.webp",
        "cmyk.jpg",
        "exif_orientation_6.png",
    ] {
        assert!(ingested.contains_key(f), "{f}: {:?}", errors.get(f));
    }
    for o in 1..=8 {
        let f = format!("exif_orientation_{o}.jpg");
        let (w, h) = ingested
            .get(&f)
            .unwrap_or_else(|| panic!("{f}: {:?}", errors.get(&f)));
        let want = if o >= 5 { ("40", "64") } else { ("64", "40") };
        assert_eq!((w.as_str(), h.as_str()), want, "{f}");
    }
    // What must be refused, and why.
    for (f, why) in [
        ("empty.jpg", "empty"),
        ("only_soi.jpg", ""),
        ("text_named.webp", "not a recognised image format"),
        ("MANIFEST.txt", "not a recognised image format"),
        ("README.md", "not a recognised image format"),
        ("bad_dht_oversubscribed.jpg", "over-subscribed"),
        ("huge_65535x65535.jpg", "over the limit"),
        ("huge_65535x65535_progressive.jpg", "over the limit"),
        ("huge_100000x100000.png", "over the limit"),
        ("huge_70000x1.png", "cannot be stored"),
        ("truncated_00001.jpg", ""),
        ("truncated_00020.png", ""),
    ] {
        let reason = errors
            .get(f)
            .unwrap_or_else(|| panic!("{f} was ingested, expected an error with '{why}'"));
        assert!(reason.contains(why), "{f}: {reason}");
    }
    // The table is readable end to end: every ingested image decodes.
    let n = query(&db, "SELECT count(to_png(image, 1)) FROM c").await;
    assert_eq!(
        n[0].column(0).as_primitive::<Int64Type>().value(0) as usize,
        ingested.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_error_fail_a_corrupt_file_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    let before = db.catalog().unwrap();
    let err = db
        .sql(&format!(
            "CREATE IMAGE TABLE c FROM '{CORPUS}/*' WITH (on_error = 'fail')"
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(CORPUS), "the error names the file: {err}");
    let after = db.catalog().unwrap();
    assert_eq!(after.version, before.version);
    assert!(!after.tables.contains_key("c"));
    assert!(after.ingest_errors.is_empty());
    assert!(db.sql("SELECT count(*) FROM c").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_takes_image_files_by_extension_only() {
    let db = Database::in_memory().unwrap();
    db.sql(&format!(
        "CREATE IMAGE TABLE d FROM '{CORPUS}' WITH (on_error = 'skip')"
    ))
    .await
    .unwrap();
    let rows = query(&db, "SELECT uri FROM d").await;
    let errs = query(
        &db,
        "SELECT uri FROM spectradb_ingest_errors WHERE table_name = 'd'",
    )
    .await;
    let seen: Vec<String> = strings(&rows, 0)
        .iter()
        .chain(&strings(&errs, 0))
        .map(|u| file_name(u))
        .collect();
    let images = corpus()
        .into_iter()
        .filter(|f| {
            let ext = f.rsplit('.').next().unwrap().to_ascii_lowercase();
            ["jpg", "jpeg", "png", "webp"].contains(&ext.as_str())
        })
        .count();
    assert_eq!(seen.len(), images);
    for f in ["README.md", "MANIFEST.txt", "jpeg_named.bin"] {
        assert!(
            !seen.iter().any(|s| s == f),
            "{f} was taken from a directory"
        );
    }
}
