//! Readers and writers at the same time: snapshots that survive concurrent
//! drops (in another process), VACUUM, long scans that leave the async
//! workers free, statements that would change data without keeping it.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt64Type};
use futures::StreamExt;
use spectradb::ingest::IngestOptions;
use spectradb::{Database, Error, IngestMode};

fn first_i64(batches: &[RecordBatch]) -> i64 {
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

/// The one number `sql` returns.
async fn number(db: &Database, sql: &str) -> i64 {
    first_i64(&db.sql(sql).await.unwrap().collect().await.unwrap())
}

fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Runs the `spectradb` binary on `db` with `-c` statements; panics with
/// its stderr when it fails.
fn spectradb_cli(db: &std::path::Path, statements: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spectradb"));
    cmd.arg(db);
    for s in statements {
        cmd.args(["-c", s]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "spectradb {statements:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_survives_a_drop_and_create_in_another_process_then_vacuum_frees_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Database::open(&path).unwrap();
    // Two images per data file: the scan opens ten files one after another.
    let opts = IngestOptions {
        images_per_file: 2,
        ..Default::default()
    };
    db.ingest(
        "t",
        "tests/data/photos/imagenet-labeled",
        IngestMode::Create,
        &opts,
    )
    .unwrap();
    let old_files = files_under(&path.join("tables/t"));
    assert_eq!(old_files, 10);
    db.sql("SET datafusion.execution.target_partitions = 1")
        .await
        .unwrap();
    let df = db.sql("SELECT id, image FROM t").await.unwrap();
    let mut stream = df.execute_stream().await.unwrap();
    let mut ids: Vec<u64> = Vec::new();
    let mut take = |b: RecordBatch| {
        let col = b.column(0).as_primitive::<UInt64Type>();
        ids.extend(col.values().iter().copied());
    };
    take(stream.next().await.unwrap().unwrap());

    // Another process drops the table and makes a new one of that name.
    spectradb_cli(
        &path,
        &[
            "DROP TABLE t",
            "CREATE IMAGE TABLE t FROM 'tests/data/photos/dev/opencv_a*.jpg'",
        ],
    );

    // The scan planned before goes on reading its snapshot's files.
    while let Some(b) = stream.next().await {
        take(b.expect("the old snapshot's files are still there"));
    }
    ids.sort();
    assert_eq!(ids, (0..20).collect::<Vec<u64>>());
    drop(stream);

    // A new statement sees the new table.
    let new_rows = number(&db, "SELECT count(*) FROM t").await;
    assert!(new_rows > 0 && new_rows < 20, "{new_rows}");
    let on_disk = files_under(&path.join("tables/t"));
    assert_eq!(on_disk, old_files + 1, "old files kept, new one added");

    // VACUUM within the retention period keeps them; with none, frees them.
    let kept = db.vacuum(None).await.unwrap();
    assert_eq!(kept.files, 0);
    let freed = db
        .sql("VACUUM RETAIN 0 SECONDS")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let freed_files = freed[0].column(0).as_primitive::<UInt64Type>().value(0);
    let freed_bytes = freed[0].column(1).as_primitive::<UInt64Type>().value(0);
    assert_eq!(freed_files, old_files as u64);
    assert!(freed_bytes > 100_000, "{freed_bytes}");
    assert_eq!(files_under(&path.join("tables/t")), 1);
    assert_eq!(
        number(&db, "SELECT count(*) FROM t").await,
        new_rows,
        "vacuum keeps the current version"
    );
}

#[test]
fn a_long_scan_leaves_the_async_worker_free_for_a_small_query() {
    // One worker thread, as a loaded server would have to share it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path().join("db")).unwrap());
    for round in 0..10 {
        let mode = if round == 0 {
            IngestMode::Create
        } else {
            IngestMode::Append
        };
        db.ingest(
            "big",
            "tests/data/photos/imagenet-labeled",
            mode,
            &IngestOptions::default(),
        )
        .unwrap();
    }
    rt.block_on(async {
        db.sql("SET datafusion.execution.target_partitions = 1")
            .await
            .unwrap();
        let long_db = db.clone();
        let long = tokio::spawn(async move {
            // Every band of 200 photos: seconds of decoding.
            let df = long_db.sql("SELECT count(image) FROM big").await?;
            Ok::<_, Error>(first_i64(&df.collect().await?))
        });
        // Wait until the long scan is decoding.
        while db.scan_stats().band_columns_read() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let small_db = db.clone();
        let small = tokio::spawn(async move {
            let df = small_db
                .sql("SELECT count(*) FROM big WHERE id < 7")
                .await?;
            Ok::<_, Error>(first_i64(&df.collect().await?))
        });
        let small = tokio::time::timeout(Duration::from_secs(60), small)
            .await
            .expect("the small query finished")
            .unwrap()
            .unwrap();
        assert_eq!(small, 7);
        assert!(
            !long.is_finished(),
            "the small query had to wait for the long scan"
        );
        assert_eq!(long.await.unwrap().unwrap(), 200);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_that_would_change_data_without_keeping_it_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Database::open(&path).unwrap();
    db.sql("CREATE TABLE notes (x INT)").await.unwrap();
    for sql in [
        "EXPLAIN ANALYZE INSERT INTO notes VALUES (1)",
        "PREPARE add_note(INT) AS INSERT INTO notes VALUES ($1)",
    ] {
        let err = db.sql(sql).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{sql}: {err}");
        assert!(
            err.to_string().contains("run the statement itself"),
            "{err}"
        );
    }
    // Reads are fine, and nothing changed, in this session or on disk.
    db.sql("EXPLAIN ANALYZE SELECT count(*) FROM notes")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    for handle in [&db, &Database::open(&path).unwrap()] {
        assert_eq!(number(handle, "SELECT count(*) FROM notes").await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_errors_reach_the_caller_typed() {
    let db = Database::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE p FROM 'tests/data/photos/jpeg-variants/flower_small*'")
        .await
        .unwrap();
    let err = db
        .sql("SELECT to_png(image, 9) FROM p")
        .await
        .unwrap()
        .collect()
        .await
        .map_err(Error::from)
        .unwrap_err();
    let Error::Function { name, source } = &err else {
        panic!("expected a typed function error, got {err:?}");
    };
    assert_eq!(name, "to_png");
    assert!(matches!(**source, Error::InvalidArgument(_)), "{source:?}");
}
