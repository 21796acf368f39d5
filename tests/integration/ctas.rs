//! `CREATE TABLE .. AS` over image values makes an image table: its files
//! take about the bytes of the same images in the source table (not the
//! ~12x of raw image values), it reopens, models give the same results on
//! it as on the source, and values that cannot be stored are refused with
//! nothing left behind.

use std::sync::Arc;

use super::common::{strings, vectors};
use arrow::array::{AsArray, LargeBinaryArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use spectradb::codec::encode::{encode_rgb, EncodeOptions};
use spectradb::codec::Chroma;
use spectradb::image_value::{encode_image_value, encode_outputs_only, InlineOutput, OutputValue};
use spectradb::BlockingDatabase;

const TINY: &str = "CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb_224.onnx' \
     WITH (labels = 'tests/data/models/tiny_rgb_labels.txt')";

fn image_table_bytes(db: &BlockingDatabase, name: &str) -> u64 {
    let catalog = db.database().catalog().unwrap();
    catalog.tables[name].files.iter().map(|f| f.bytes).sum()
}

/// (id, scores) rows of a query returning them.
fn scores(db: &BlockingDatabase, sql: &str) -> Vec<(u64, Vec<f32>)> {
    let batches = db.sql(sql).unwrap();
    let ids = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<UInt64Type>().values().to_vec());
    ids.zip(vectors(&batches, 1)).collect()
}

#[test]
fn a_copy_of_images_takes_about_the_bytes_of_the_same_images_in_their_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = BlockingDatabase::open(dir.path().join("db")).unwrap();
    db.sql("CREATE IMAGE TABLE h FROM 'tests/data/photos/imagenet-labeled'")
        .unwrap();
    // The first ten photos (ids 0..9 of `h`), ingested on their own.
    db.sql("CREATE IMAGE TABLE h10 FROM 'tests/data/photos/imagenet-labeled/imagenet_0*'")
        .unwrap();
    db.sql("CREATE TABLE c AS SELECT id, image FROM h WHERE id < 10")
        .unwrap();
    db.sql("CREATE TABLE everything AS SELECT * FROM h ORDER BY id DESC")
        .unwrap();
    for (copy, source) in [("c", "h10"), ("everything", "h")] {
        let (copy_bytes, source_bytes) =
            (image_table_bytes(&db, copy), image_table_bytes(&db, source));
        let ratio = copy_bytes as f64 / source_bytes as f64;
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{copy}: {copy_bytes} bytes for images that take {source_bytes} in {source} ({ratio:.2}x)"
        );
    }
    // The same images kept as raw image values (a column not named
    // `image` stays an ordinary column) take many times that.
    db.sql("CREATE TABLE raw AS SELECT id, image AS value FROM h WHERE id < 10")
        .unwrap();
    let catalog = db.database().catalog().unwrap();
    let raw = catalog.plain_tables["raw"].bytes;
    assert!(
        raw > 5 * image_table_bytes(&db, "c"),
        "raw values {raw} bytes"
    );
    // Every file on disk is one the catalog lists (ingest's layout).
    let listed: Vec<String> = catalog.tables["c"]
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect();
    let on_disk = std::fs::read_dir(dir.path().join("db/tables/c"))
        .unwrap()
        .count();
    assert_eq!(on_disk, listed.len());
}

#[test]
fn the_copy_reopens_and_models_see_the_same_images_as_on_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let source = {
        let db = BlockingDatabase::open(&path).unwrap();
        db.sql("CREATE IMAGE TABLE h FROM 'tests/data/photos/imagenet-labeled' WITH (label = 'parent_dir')")
            .unwrap();
        db.sql(TINY).unwrap();
        db.sql("CREATE TABLE c AS SELECT id, uri, label, image FROM h WHERE id % 2 = 0")
            .unwrap();
        scores(
            &db,
            "SELECT id, tiny_scores(image) FROM h WHERE id % 2 = 0 ORDER BY id",
        )
    };
    let db = BlockingDatabase::open(&path).unwrap();
    let copy = scores(&db, "SELECT id, tiny_scores(image) FROM c ORDER BY id");
    assert_eq!(copy.len(), 10);
    assert_eq!(copy, source, "same ids, same model outputs");
    let uris = db
        .sql("SELECT c.uri = h.uri AND c.label = h.label FROM c JOIN h ON c.id = h.id")
        .unwrap();
    assert_eq!(strings(&uris, 0), vec!["true"; 10]);

    // The planner reads it as an image table: a model reads only its bands.
    let plan = db.sql("EXPLAIN SELECT tiny(image) FROM c").unwrap();
    let plan = strings(&plan, 1).join("\n");
    assert!(plan.contains("ImageScanExec: table=c"), "{plan}");
    assert!(plan.contains("tiny: format="), "{plan}");
    let shown = db.sql("SHOW TABLES").unwrap();
    let kinds: Vec<String> = strings(&shown, 0)
        .into_iter()
        .zip(strings(&shown, 1))
        .map(|(n, k)| format!("{n} {k}"))
        .collect();
    assert!(kinds.contains(&"c image".to_string()), "{kinds:?}");

    db.sql("DROP TABLE c").unwrap();
    assert!(db.sql("SELECT count(*) FROM c").is_err());
}

/// A table `vals(kind, image)` of hand-made image values.
fn register_values(db: &BlockingDatabase) {
    let rgb: Vec<u8> = (0..40 * 24 * 3).map(|i| (i * 13 % 251) as u8).collect();
    let whole = encode_rgb(&rgb, 40, 24, EncodeOptions::default()).unwrap();
    let mut partial = whole.clone();
    for p in 0..3 {
        for k in 10..64 {
            partial.clear_band(p, k);
        }
    }
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    encode_image_value(&whole, &mut a);
    encode_image_value(&partial, &mut b);
    let output = InlineOutput {
        key: 1,
        value: OutputValue::Class(3),
    };
    encode_outputs_only(40, 24, Chroma::Yuv420, None, &[output], &mut c);
    let schema = Schema::new(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("image", DataType::LargeBinary, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(vec!["whole", "partial", "outputs"])),
            Arc::new(LargeBinaryArray::from_iter_values([a, b, c])),
        ],
    )
    .unwrap();
    db.database()
        .session()
        .register_batch("vals", batch)
        .unwrap();
}

#[test]
fn values_without_every_band_are_refused_and_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let db = BlockingDatabase::open(dir.path().join("db")).unwrap();
    register_values(&db);
    let err = db
        .sql("CREATE TABLE c AS SELECT image FROM vals ORDER BY kind DESC")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CREATE TABLE c: row 2: the value holds 30 of the image's 192 band columns")
            && err.contains("select `image` from its image table"),
        "{err}"
    );
    let err = db
        .sql("CREATE TABLE c AS SELECT image FROM vals WHERE kind = 'outputs'")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CREATE TABLE c: row 1: the value carries only model outputs"),
        "{err}"
    );
    // The first row was whole and written nowhere: no table, no file.
    let catalog = db.database().catalog().unwrap();
    assert!(!catalog.tables.contains_key("c"));
    let leftovers = std::fs::read_dir(dir.path().join("db/tables/c")).map_or(0, |d| d.count());
    assert_eq!(leftovers, 0);
    // The whole one alone makes a table, lossless.
    db.sql("CREATE TABLE c AS SELECT image, kind FROM vals WHERE kind = 'whole'")
        .unwrap();
    let same = db
        .sql("SELECT to_png(c.image) = to_png(v.image) FROM c, vals v WHERE v.kind = 'whole'")
        .unwrap();
    assert_eq!(strings(&same, 0), ["true"]);
}

#[test]
fn a_statement_that_fails_late_leaves_no_table_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = BlockingDatabase::open(dir.path().join("db")).unwrap();
    db.sql("CREATE IMAGE TABLE h FROM 'tests/data/photos/imagenet-labeled'")
        .unwrap();
    // The last row repeats an id: every image before it was converted.
    let err = db
        .sql(
            "CREATE TABLE dup AS SELECT id, image FROM \
             (SELECT id, image, 0 AS o FROM h UNION ALL SELECT id, image, 1 AS o FROM h WHERE id = 3) \
             ORDER BY o, id",
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CREATE TABLE dup: row 21 (id 3): the id appears twice"),
        "{err}"
    );
    let catalog = db.database().catalog().unwrap();
    assert!(!catalog.tables.contains_key("dup"));
    let leftovers = std::fs::read_dir(dir.path().join("db/tables/dup")).map_or(0, |d| d.count());
    assert_eq!(leftovers, 0);
    // The name is free: the same statement without the repeat works.
    db.sql("CREATE TABLE dup AS SELECT id, image FROM h")
        .unwrap();
    let n = db.sql("SELECT count(*) FROM dup").unwrap();
    assert_eq!(strings(&n, 0), ["20"]);
}
