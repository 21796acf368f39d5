//! The embedded API: `Database`, `BlockingDatabase`, ingest from Rust,
//! snapshots, and which columns a query reads.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt64Type};
use spectradb::ingest::{IngestOptions, Label, OnError};
use spectradb::{BlockingDatabase, Database, IngestMode};

fn count(batches: &[RecordBatch]) -> i64 {
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_queries_read_no_band_column_and_image_queries_do() {
    let db = Database::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled'")
        .await
        .unwrap();
    let stats = db.scan_stats();
    let (bytes0, bands0) = (stats.bytes_read(), stats.band_columns_read());
    let b = db
        .sql("SELECT count(*), sum(width * height) FROM photos WHERE uri LIKE '%imagenet_1%'")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(count(&b), 10);
    let plain_bytes = stats.bytes_read() - bytes0;
    assert_eq!(
        stats.band_columns_read(),
        bands0,
        "a plain query opened band columns"
    );
    // The footer (with the band codes) plus the plain columns.
    assert!(plain_bytes > 0);

    let b = db
        .sql("SELECT count(to_png(image, 1)) FROM photos")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(b[0].column(0).as_primitive::<Int64Type>().value(0) > 0);
    let image_bytes = stats.bytes_read() - bytes0 - plain_bytes;
    // One data file, all 3 x 64 band columns of it.
    assert_eq!(stats.band_columns_read() - bands0, 192);
    assert!(
        image_bytes > 20 * plain_bytes,
        "image scan read {image_bytes} bytes, plain scan {plain_bytes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_query_is_a_snapshot_and_reopening_sees_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Database::open(&path).unwrap();
    let opts = IngestOptions {
        label: Label::ParentDir,
        ..Default::default()
    };
    let r = db
        .ingest(
            "photos",
            "tests/data/photos/dev/opencv_*.jpg",
            IngestMode::Create,
            &opts,
        )
        .unwrap();
    assert_eq!((r.ingested, r.skipped.len()), (16, 0));
    let before = db.sql("SELECT count(*) FROM photos").await.unwrap();
    db.sql("INSERT INTO photos FROM 'tests/data/photos/dev/skimage_*'")
        .await
        .unwrap();
    // The DataFrame planned before the insert reads the version it saw.
    assert_eq!(count(&before.collect().await.unwrap()), 16);
    let after = db.sql("SELECT count(*) FROM photos").await.unwrap();
    assert_eq!(count(&after.collect().await.unwrap()), 23);

    // Another handle (as another process would) sees the commits, and a
    // commit made through it is seen by the first handle's next statement.
    let other = Database::open(&path).unwrap();
    let skip = IngestOptions {
        on_error: OnError::Skip,
        ..Default::default()
    };
    let r = other
        .ingest("photos", "tests/data/broken", IngestMode::Append, &skip)
        .unwrap();
    assert_eq!((r.ingested, r.skipped.len()), (1, 2));
    let b = db
        .sql("SELECT count(*) FROM photos")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(count(&b), 24);
    let b = db
        .sql("SELECT max(id) FROM photos")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(b[0].column(0).as_primitive::<UInt64Type>().value(0), 23);

    // Creating a table that exists is refused, naming it.
    let err = db
        .ingest("photos", "tests/data/broken", IngestMode::Create, &skip)
        .unwrap_err()
        .to_string();
    assert!(err.contains("table 'photos' already exists"), "{err}");
}

#[test]
fn blocking_wrapper_and_session_access() {
    let db = BlockingDatabase::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE p FROM 'tests/data/photos/jpeg-variants/flower_small*' WITH (chroma = '444')")
        .unwrap();
    let b = db
        .sql("SELECT count(*) FROM p WHERE width(image) = width")
        .unwrap();
    assert_eq!(count(&b), 4);
    // The DataFusion session is there for anything spectradb does not wrap.
    let ctx = db.database().session().clone();
    let b = db
        .runtime()
        .block_on(async { ctx.sql("SELECT count(*) FROM p").await?.collect().await })
        .unwrap();
    assert_eq!(count(&b), 4);
    let err = db.sql("SELEC 1").unwrap_err().to_string();
    assert!(err.contains("SELEC"), "{err}");
}

#[test]
fn create_or_replace_table_over_an_image_table_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let db = BlockingDatabase::open(&path).unwrap();
    db.sql("CREATE IMAGE TABLE x FROM 'tests/data/colors'")
        .unwrap();
    let image_files = db.database().catalog().unwrap().tables["x"].files.clone();
    // Without OR REPLACE the name is taken.
    let err = db.sql("CREATE TABLE x AS SELECT 1 AS n").unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    db.sql("CREATE OR REPLACE TABLE x AS SELECT CAST(7 AS BIGINT) AS n")
        .unwrap();
    let catalog = db.database().catalog().unwrap();
    assert!(!catalog.tables.contains_key("x"), "the image table is gone");
    assert!(catalog.plain_tables.contains_key("x"));
    // The session sees the new table at once.
    assert_eq!(count(&db.sql("SELECT n FROM x").unwrap()), 7);
    let shown = db.sql("SHOW TABLES").unwrap();
    assert_eq!(shown.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
    drop(db);

    // Reopened: one table x, the ordinary one; the image files are retired.
    let db = BlockingDatabase::open(&path).unwrap();
    assert_eq!(count(&db.sql("SELECT n FROM x").unwrap()), 7);
    let catalog = db.database().catalog().unwrap();
    assert!(!catalog.tables.contains_key("x"));
    for f in &image_files {
        assert!(
            catalog.retired.iter().any(|r| r.path == f.path),
            "{} not retired",
            f.path
        );
    }
}

/// Images model `tiny` has run so far.
fn inferred(db: &Database) -> u64 {
    db.model_stats("tiny").map_or(0, |s| s.images)
}

/// An interrupt and a statement's own token each stop a model query inside
/// the batch it is running: at most the chunk of 32 images in flight and
/// one more run after the cancel (one partition: one call at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_model_query_stops_within_a_chunk() {
    use spectradb::cancel::QueryCancel;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    let db = std::sync::Arc::new(Database::in_memory().unwrap());
    for sql in [
        "CREATE IMAGE TABLE colors FROM 'tests/data/colors'",
        "CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx' \
         WITH (labels = 'tests/data/models/tiny_rgb_labels.txt')",
        "SET spectradb.cache_size = 0",
        "SET datafusion.execution.target_partitions = 1",
    ] {
        db.sql(sql).await.unwrap().collect().await.unwrap();
    }
    // Each small picture thousands of times, sorted: thousands of images
    // in one batch.
    let many = "SELECT tiny(image) FROM \
                (SELECT c.image FROM colors c CROSS JOIN range(3000) r ORDER BY r.value)";
    type Stop = fn(&Database, &QueryCancel);
    let stops: [(&str, Stop); 2] = [
        ("the interrupt flag", |db, _| {
            db.interrupt_flag().store(true, Ordering::Relaxed)
        }),
        ("the statement's token", |_, token| token.cancel()),
    ];
    for (how, stop) in stops {
        let df = db.sql(many).await.unwrap();
        let token = QueryCancel::of_frame(&df).unwrap();
        let start = inferred(&db);
        let run = tokio::spawn(df.collect());
        let waited = Instant::now();
        while inferred(&db) < start + 32 {
            assert!(
                waited.elapsed() < Duration::from_secs(20),
                "{how}: no inference"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        stop(&db, &token);
        let at_cancel = inferred(&db);
        let err = run.await.unwrap().expect_err("the query was cancelled");
        let err = spectradb::Error::from(err);
        assert!(
            matches!(err, spectradb::Error::Cancelled(_)),
            "{how}: {err}"
        );
        assert!(err.to_string().contains("tiny"), "{err}");
        let after = inferred(&db) - at_cancel;
        assert!(after <= 64, "{how}: {after} images run after the cancel");
    }
    // The next statement starts with the interrupt cleared.
    let n = db
        .sql("SELECT count(tiny(image)) FROM colors")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(count(&n) > 0);
}
