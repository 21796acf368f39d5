//! Ingest into a database directory: commits, appends, on_error.

use arrow_array::{Array, StringArray, UInt64Array};
use spectradb::ingest::{expand_sources, IngestOptions, Label, OnError};
use spectradb::storage::catalog::DatabaseDir;
use spectradb::storage::{BandSelection, ImageFileReader};

use super::common::{data_dir, files_under, ingest_committed};

/// (id, label) of every published row of `table`.
fn rows(db: &DatabaseDir, table: &str) -> Vec<(u64, Option<String>)> {
    let catalog = db.read_catalog().unwrap();
    let mut out = Vec::new();
    for f in &catalog.tables[table].files {
        let r = ImageFileReader::open(db.root().join(&f.path)).unwrap();
        let has_label = r.schema().index_of("label").is_ok();
        let cols: &[&str] = if has_label { &["id", "label"] } else { &["id"] };
        for b in r.scan(cols, &BandSelection::none(), 1024).unwrap() {
            let b = b.unwrap().batch;
            let ids = b
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<UInt64Array>()
                .unwrap()
                .clone();
            let labels = b
                .column_by_name("label")
                .map(|c| c.as_any().downcast_ref::<StringArray>().unwrap().clone());
            for i in 0..b.num_rows() {
                let label = labels
                    .as_ref()
                    .filter(|l| !l.is_null(i))
                    .map(|l| l.value(i).to_string());
                out.push((ids.value(i), label));
            }
        }
    }
    out
}

#[test]
fn ingest_creates_and_appends_with_stable_ids_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let db = DatabaseDir::open(dir.path().join("photos.db")).unwrap();
    let photos = data_dir().join("photos/imagenet-labeled");
    let files = expand_sources(photos.to_str().unwrap()).unwrap();
    assert_eq!(files.len(), 20);
    let opts = IngestOptions {
        label: Label::ParentDir,
        images_per_file: 8,
        threads: 2,
        ..Default::default()
    };
    let seen = std::sync::atomic::AtomicU64::new(0);
    let report = ingest_committed(&db, "photos", true, &files, &opts, &|_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!((report.ingested, report.version), (20, 1));
    assert_eq!(seen.into_inner(), 20, "progress is reported per file");
    let r = rows(&db, "photos");
    assert_eq!(r.len(), 20);
    assert_eq!(
        r.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    assert!(r
        .iter()
        .all(|(_, l)| l.as_deref() == Some("imagenet-labeled")));
    assert_eq!(
        db.read_catalog().unwrap().tables["photos"].files.len(),
        3,
        "8 + 8 + 4 images"
    );

    // INSERT: a glob, ids continue, the table's own layout is kept.
    let glob = format!("{}/photos/dev/opencv_a*.jpg", data_dir().display());
    let more = expand_sources(&glob).unwrap();
    let report = ingest_committed(&db, "photos", false, &more, &opts, &|_| {}).unwrap();
    assert_eq!(report.version, 2);
    let r = rows(&db, "photos");
    assert_eq!(r.len(), 20 + more.len());
    assert_eq!(r.last().unwrap().0, (20 + more.len() - 1) as u64);
    assert!(ingest_committed(&db, "photos", true, &more, &opts, &|_| {})
        .unwrap_err()
        .to_string()
        .contains("already exists"));
    assert!(ingest_committed(&db, "nope", false, &more, &opts, &|_| {})
        .unwrap_err()
        .to_string()
        .contains("no table named"));
}

#[test]
fn on_error_fail_commits_nothing_and_skip_records_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for name in [
        "imagenet_00_243.jpg",
        "imagenet_01_559.jpg",
        "imagenet_02_438.jpg",
    ] {
        std::fs::copy(
            data_dir().join("photos/imagenet-labeled").join(name),
            src.join(name),
        )
        .unwrap();
    }
    std::fs::write(
        src.join("imagenet_01_zz_broken.jpg"),
        b"\xFF\xD8\xFF\xE0 not really",
    )
    .unwrap();
    let files = expand_sources(src.to_str().unwrap()).unwrap();
    assert_eq!(files.len(), 4);

    let db = DatabaseDir::open(dir.path().join("db")).unwrap();
    let fail = IngestOptions {
        images_per_file: 2,
        ..Default::default()
    };
    let err = ingest_committed(&db, "t", true, &files, &fail, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("imagenet_01_zz_broken.jpg"), "{err}");
    assert_eq!(db.read_catalog().unwrap().version, 0, "nothing published");
    assert_eq!(
        files_under(&db.root().join("tables")).len(),
        0,
        "no data file left behind"
    );

    let skip = IngestOptions {
        on_error: OnError::Skip,
        ..fail
    };
    let report = ingest_committed(&db, "t", true, &files, &skip, &|_| {}).unwrap();
    assert_eq!(report.ingested, 3);
    assert_eq!(report.skipped.len(), 1);
    let catalog = db.read_catalog().unwrap();
    assert_eq!(catalog.ingest_errors.len(), 1);
    assert!(catalog.ingest_errors[0]
        .uri
        .ends_with("imagenet_01_zz_broken.jpg"));
    assert_eq!(rows(&db, "t").len(), 3);
}
