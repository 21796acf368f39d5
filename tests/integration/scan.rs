//! The image scan reads only what a query needs: filters on plain columns
//! drop rows before their bands are read (no decode, no model run), and one
//! data file is split over partitions so every core decodes.

use super::common::strings;
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use spectradb::BlockingDatabase;

const TINY: &str = "CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx' \
     WITH (labels = 'tests/data/models/tiny_rgb_labels.txt')";

fn ids(batches: &[RecordBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_primitive::<UInt64Type>().clone();
            (0..c.len()).map(move |i| c.value(i))
        })
        .collect()
}

/// Bytes and band columns a query's scans read, and images the model ran on.
fn cost(db: &BlockingDatabase, sql: &str) -> (Vec<RecordBatch>, u64, u64, u64) {
    let stats = db.database().scan_stats();
    let (b0, c0) = (stats.bytes_read(), stats.band_columns_read());
    let i0 = db.database().model_stats("tiny").unwrap().images;
    let out = db.sql(sql).unwrap();
    (
        out,
        stats.bytes_read() - b0,
        stats.band_columns_read() - c0,
        db.database().model_stats("tiny").unwrap().images - i0,
    )
}

/// 20 labelled photos in two data files of 10 (ids 0-9 and 10-19), the
/// tiny model, and no cache (each query computes what it reads).
fn two_files() -> BlockingDatabase {
    let db = BlockingDatabase::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled/imagenet_0*'")
        .unwrap();
    db.sql("INSERT INTO photos FROM 'tests/data/photos/imagenet-labeled/imagenet_1*'")
        .unwrap();
    db.sql(TINY).unwrap();
    db.sql("SET spectradb.cache_size = 0").unwrap();
    db
}

#[test]
fn a_filter_on_id_reads_and_runs_only_matching_rows() {
    let db = two_files();
    let (all, all_bytes, all_cols, all_runs) =
        cost(&db, "SELECT id, tiny(image) FROM photos ORDER BY id");
    assert_eq!(all_runs, 20);
    let (some, bytes, cols, runs) = cost(
        &db,
        "SELECT id, tiny(image) FROM photos WHERE id < 4 ORDER BY id",
    );
    assert_eq!(ids(&some), vec![0, 1, 2, 3]);
    assert_eq!(runs, 4, "rows the filter drops are not decoded or run");
    // The second file has no matching row: none of its bands is opened.
    assert_eq!(cols * 2, all_cols);
    // Footers and plain columns aside, half the bytes.
    let (_, base, _, _) = cost(&db, "SELECT id, uri FROM photos");
    assert!(
        (bytes - base) * 10 < (all_bytes - base) * 6,
        "{bytes} of {all_bytes} bytes ({base} without bands) for rows of one file"
    );
    assert_eq!(strings(&some, 1), strings(&all, 1)[..4].to_vec());

    let plan = strings(
        &db.sql("EXPLAIN ANALYZE SELECT tiny(image) FROM photos WHERE id < 4")
            .unwrap(),
        1,
    )
    .join("\n");
    assert!(plan.contains("predicate=id < "), "{plan}");
    assert!(plan.contains("rows_filtered=16"), "{plan}");
    assert!(!plan.contains("FilterExec"), "the scan applies it: {plan}");

    // A LIMIT stops the scan once enough rows matched: the second file is
    // never opened.
    let (out, _, limit_cols, runs) =
        cost(&db, "SELECT tiny(image) FROM photos WHERE id > 5 LIMIT 2");
    assert_eq!(out.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    assert_eq!(runs, 2);
    assert_eq!(limit_cols * 2, all_cols);
}

#[test]
fn filters_on_other_plain_columns_and_aliases_are_pushed_too() {
    let db = two_files();
    let (out, _, _, runs) = cost(
        &db,
        "SELECT p.id, tiny(p.image) FROM photos AS p \
         WHERE p.uri LIKE '%imagenet_1%' AND width > 0 ORDER BY p.id",
    );
    assert_eq!(ids(&out), (10..20).collect::<Vec<u64>>());
    assert_eq!(runs, 10);
    // A filter no file matches reads no band at all.
    let (out, _, cols, runs) = cost(&db, "SELECT tiny(image) FROM photos WHERE id > 1000");
    assert_eq!(out.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    assert_eq!((cols, runs), (0, 0));
    // A filter on the image itself is not pushed, and still holds.
    let (out, _, _, runs) = cost(
        &db,
        "SELECT id FROM photos WHERE id < 3 AND tiny(image) IS NOT NULL ORDER BY id",
    );
    assert_eq!(ids(&out), vec![0, 1, 2]);
    assert_eq!(runs, 3);
}

#[test]
fn one_data_file_is_scanned_by_every_partition() {
    let db = BlockingDatabase::in_memory().unwrap();
    // 60-odd photos in one statement: one data file.
    db.sql("CREATE IMAGE TABLE many FROM 'tests/data/photos/*/*.jpg'")
        .unwrap();
    assert_eq!(
        db.database().catalog().unwrap().tables["many"].files.len(),
        1
    );
    db.sql(TINY).unwrap();
    db.sql("SET spectradb.cache_size = 0").unwrap();
    let q = "SELECT id, tiny(image) FROM many ORDER BY id";
    db.sql("SET datafusion.execution.target_partitions = 1")
        .unwrap();
    let one = db.sql(q).unwrap();
    let plan1 = strings(&db.sql(&format!("EXPLAIN ANALYZE {q}")).unwrap(), 1).join("\n");
    db.sql("SET datafusion.execution.target_partitions = 2")
        .unwrap();
    let two = db.sql(q).unwrap();
    let plan2 = strings(&db.sql(&format!("EXPLAIN ANALYZE {q}")).unwrap(), 1).join("\n");
    assert!(ids(&one).len() > 32, "{}", ids(&one).len());
    assert_eq!(ids(&one), ids(&two));
    assert_eq!(strings(&one, 1), strings(&two, 1));
    // Two partitions merge their sorted halves; one has nothing to merge.
    assert!(plan2.contains("SortPreservingMergeExec"), "{plan2}");
    assert!(!plan1.contains("SortPreservingMergeExec"), "{plan1}");
}
