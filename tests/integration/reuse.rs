//! Reuse across queries: cached model outputs (no band read, no model run
//! on a hit; invalidated by a new model file or a replaced table, kept on
//! append; one computation for concurrent misses), heads on a shared
//! backbone (equal to the whole model on every labelled photo), and
//! materialized views the planner reads instead of running the model.

use std::sync::Arc;

use super::common::{create_imagenet_model, create_mobilenet, files_under, strings, vectors};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use spectradb::{BlockingDatabase, Database};

const TINY: &str = "CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx' \
     WITH (labels = 'tests/data/models/tiny_rgb_labels.txt')";

fn images_computed(db: &BlockingDatabase, model: &str) -> u64 {
    db.database()
        .model_stats(model)
        .expect("model registered")
        .images
}

fn band_columns(db: &BlockingDatabase) -> u64 {
    db.database().scan_stats().band_columns_read()
}

fn ints(batches: &[RecordBatch], col: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(col).as_primitive::<Int64Type>().clone();
            (0..c.len()).map(move |i| c.value(i))
        })
        .collect()
}

fn explain(db: &BlockingDatabase, sql: &str) -> String {
    let batches = db.sql(&format!("EXPLAIN {sql}")).unwrap();
    strings(&batches, 1).join("\n")
}

fn colors_with_tiny() -> BlockingDatabase {
    let db = BlockingDatabase::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE colors FROM 'tests/data/colors'")
        .unwrap();
    db.sql(TINY).unwrap();
    db
}

#[test]
fn a_cached_query_reads_no_band_and_runs_no_model() {
    let db = colors_with_tiny();
    let q = "SELECT uri, tiny(image) FROM colors ORDER BY uri";
    let first = db.sql(q).unwrap();
    let (runs, bands) = (images_computed(&db, "tiny"), band_columns(&db));
    assert_eq!(runs, 3);
    assert!(bands > 0);
    let plan = explain(&db, q);
    assert!(
        plan.contains("rows whose outputs are cached read no bands"),
        "{plan}"
    );

    let second = db.sql(q).unwrap();
    assert_eq!(strings(&first, 1), strings(&second, 1));
    assert_eq!(
        images_computed(&db, "tiny"),
        runs,
        "no image computed again"
    );
    assert_eq!(band_columns(&db), bands, "no band column read");
    let stats = db.database().model_stats("tiny").unwrap();
    assert_eq!(stats.cache_hits, 3);

    // EXPLAIN ANALYZE shows it: no image computed, three hits.
    let analyzed = db.sql(&format!("EXPLAIN ANALYZE {q}")).unwrap();
    let text = strings(&analyzed, 1).join("\n");
    assert!(
        text.contains("tiny: images=0") && text.contains("cache_hits=3"),
        "{text}"
    );
    assert!(text.contains("band_columns=0"), "{text}");
}

#[test]
fn a_partly_cached_query_computes_only_the_missing_rows() {
    let db = BlockingDatabase::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled'")
        .unwrap();
    db.sql(TINY).unwrap();
    db.sql("SELECT tiny(image) FROM photos WHERE id < 5")
        .unwrap();
    assert_eq!(images_computed(&db, "tiny"), 5);
    let all = db
        .sql("SELECT id, tiny(image) FROM photos ORDER BY id")
        .unwrap();
    assert_eq!(strings(&all, 1).len(), 20);
    assert_eq!(images_computed(&db, "tiny"), 20, "15 more, not 20");
}

#[test]
fn cache_entries_follow_model_files_and_table_identity() {
    let db = colors_with_tiny();
    let q = "SELECT tiny_scores(image) FROM colors ORDER BY id";
    db.sql(q).unwrap();
    assert_eq!(images_computed(&db, "tiny"), 3);

    // An append keeps the old rows' entries: only the new row is computed.
    db.sql("INSERT INTO colors FROM 'tests/data/colors/red.png'")
        .unwrap();
    db.sql(q).unwrap();
    assert_eq!(images_computed(&db, "tiny"), 4);

    // Another file under the same model name: nothing cached applies.
    db.sql("DROP MODEL tiny").unwrap();
    db.sql(
        "CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb_224.onnx' \
         WITH (labels = 'tests/data/models/tiny_rgb_labels.txt')",
    )
    .unwrap();
    db.sql(q).unwrap();
    assert_eq!(
        images_computed(&db, "tiny"),
        4,
        "a new handle computed all 4"
    );
    let hits = db.database().model_stats("tiny").unwrap().cache_hits;
    assert_eq!(hits, 0);

    // A table dropped and created again under the same name is another table.
    db.sql("DROP TABLE colors").unwrap();
    db.sql("CREATE IMAGE TABLE colors FROM 'tests/data/colors'")
        .unwrap();
    db.sql(q).unwrap();
    let stats = db.database().model_stats("tiny").unwrap();
    assert_eq!(stats.images, 7, "the new table's 3 rows computed");
    assert_eq!(stats.cache_hits, 0);
}

#[test]
fn the_cache_stays_within_its_size() {
    let db = BlockingDatabase::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled'")
        .unwrap();
    db.sql(TINY).unwrap();
    // Each entry weighs a few hundred bytes: 2 KB holds only some of 20.
    db.sql("SET spectradb.cache_size = 2000").unwrap();
    db.sql("SELECT tiny(image) FROM photos").unwrap();
    let s = db
        .sql("SELECT entries, bytes, evictions FROM spectradb_cache")
        .unwrap();
    let col = |i: usize| {
        s[0].column(i)
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .value(0)
    };
    assert!(col(1) <= 2000, "bytes {} over the size", col(1));
    assert!(col(0) < 20 && col(0) > 0, "entries {}", col(0));
}

#[test]
fn concurrent_queries_compute_each_output_once() {
    let db = Arc::new(Database::in_memory().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled'")
            .await
            .unwrap();
        db.sql(TINY).await.unwrap();
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.sql("SELECT id, tiny(image) FROM photos ORDER BY id")
                        .await
                        .unwrap()
                        .collect()
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut answers = Vec::new();
        for r in runs {
            answers.push(strings(&r.await.unwrap(), 1));
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(answers[0].len(), 20);
    });
    assert_eq!(db.model_stats("tiny").unwrap().images, 20);
}

/// MobileNetV2's backbone and its ImageNet classifier head.
fn create_backbone_and_head(db: &BlockingDatabase) {
    db.sql(&create_imagenet_model(
        "backbone",
        "mobilenet_v2_backbone.onnx",
        "embedding",
    ))
    .unwrap();
    db.sql(
        "CREATE MODEL imagenet_head FROM 'tests/data/models/mobilenet_v2_head.onnx' \
         ON FEATURES OF backbone WITH (output = 'class')",
    )
    .unwrap();
}

/// The labelled photos, the backbone and its heads.
fn photos_with_heads() -> BlockingDatabase {
    let db = BlockingDatabase::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled'")
        .unwrap();
    db.sql(&create_mobilenet()).unwrap();
    create_backbone_and_head(&db);
    db.sql(
        "CREATE MODEL embed FROM 'tests/data/models/mobilenet_v2_embed.onnx' \
         ON FEATURES OF backbone WITH (output = 'embedding')",
    )
    .unwrap();
    db.sql(
        "CREATE MODEL coarse FROM 'tests/data/models/mobilenet_v2_coarse.onnx' \
         ON FEATURES OF backbone WITH (labels = 'tests/data/models/coarse_classes.txt')",
    )
    .unwrap();
    db
}

#[test]
fn heads_on_a_backbone_equal_the_whole_model_and_share_its_work() {
    let db = photos_with_heads();
    let whole = db
        .sql("SELECT id, mobilenet(image) FROM photos ORDER BY id")
        .unwrap();
    let head = db
        .sql("SELECT id, imagenet_head(image) FROM photos ORDER BY id")
        .unwrap();
    assert_eq!(
        ints(&whole, 1),
        ints(&head, 1),
        "the same class on every photo"
    );
    assert_eq!(ints(&head, 1).len(), 20);
    assert_eq!(images_computed(&db, "backbone"), 20);

    // The other heads reuse the backbone's cached features.
    let coarse = db
        .sql("SELECT coarse(image), embed(image) FROM photos ORDER BY id")
        .unwrap();
    assert_eq!(
        images_computed(&db, "backbone"),
        20,
        "backbone not run again"
    );
    assert_eq!(images_computed(&db, "coarse"), 20);
    let groups = strings(&coarse, 0);
    assert!(groups.iter().any(|g| g == "dog"), "{groups:?}");
    for v in vectors(&coarse, 1) {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "embedding norm {norm}");
    }

    let models = db.sql("SHOW MODELS").unwrap();
    let inputs = strings(&models, 1);
    assert!(
        inputs.iter().any(|i| i == "features of backbone"),
        "{inputs:?}"
    );
    let err = db.sql("DROP MODEL backbone").unwrap_err().to_string();
    assert!(
        err.contains("backbone of coarse, embed, imagenet_head"),
        "{err}"
    );
    let err = db
        .sql(
            "CREATE MODEL bad FROM 'tests/data/models/mobilenet_v2_head.onnx' \
             ON FEATURES OF mobilenet",
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("its backbone gives 1000 values"), "{err}");
    let err = db
        .sql(
            "CREATE MODEL bad FROM 'tests/data/models/mobilenet_v2_head.onnx' \
             ON FEATURES OF backbone WITH (size = 128)",
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not apply to a head"), "{err}");
}

#[test]
fn a_materialized_backbone_serves_its_heads_and_appended_rows_are_computed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photos.db");
    {
        let db = BlockingDatabase::open(&path).unwrap();
        db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled/imagenet_0*'")
            .unwrap();
        create_backbone_and_head(&db);
        db.sql("CREATE MATERIALIZED VIEW feats AS SELECT id, backbone(image) AS f FROM photos")
            .unwrap();
        assert_eq!(images_computed(&db, "backbone"), 10);
    }
    // A new process: empty cache, the view on disk.
    let db = BlockingDatabase::open(&path).unwrap();
    let q = "SELECT id, imagenet_head(image) FROM photos ORDER BY id";
    let plan = explain(&db, q);
    assert!(
        plan.contains(
            "imagenet_head: from materialized view feats (column f, the backbone's output)"
        ),
        "{plan}"
    );
    let bands = band_columns(&db);
    let classes = db.sql(q).unwrap();
    assert_eq!(ints(&classes, 1).len(), 10);
    assert_eq!(
        images_computed(&db, "backbone"),
        0,
        "features read from the view"
    );
    assert_eq!(images_computed(&db, "imagenet_head"), 10);
    assert_eq!(band_columns(&db), bands, "no band read");

    // Appended rows are computed (not missing), then a refresh adds them.
    db.sql("INSERT INTO photos FROM 'tests/data/photos/imagenet-labeled/imagenet_1*'")
        .unwrap();
    let plan = explain(&db, q);
    assert!(
        plan.contains("rows added since its refresh are computed"),
        "{plan}"
    );
    let all = db.sql(q).unwrap();
    assert_eq!(ints(&all, 1).len(), 20);
    assert_eq!(images_computed(&db, "backbone"), 10, "only the new rows");
    let refreshed = db.sql("REFRESH MATERIALIZED VIEW feats").unwrap();
    assert_eq!(strings(&refreshed, 1), vec!["appended rows"]);
    // The 10 new rows were cached by the query above: the refresh hits them.
    assert_eq!(images_computed(&db, "backbone"), 10);

    // Another backbone file makes the view stale, and EXPLAIN says so.
    db.sql("DROP MODEL imagenet_head").unwrap();
    db.sql("DROP MODEL backbone").unwrap();
    db.sql(&create_imagenet_model(
        "backbone",
        "mobilenet_v2_imagenet.onnx",
        "embedding",
    ))
    .unwrap();
    let plan = explain(&db, "SELECT backbone(image) FROM photos");
    assert!(
        plan.contains("view feats not used: stale (model backbone changed"),
        "{plan}"
    );
}

#[test]
fn compressed_feature_views_are_smaller_within_their_bounds_and_not_used_for_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photos.db");
    let exact = {
        let db = BlockingDatabase::open(&path).unwrap();
        db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled/imagenet_0*'")
            .unwrap();
        create_backbone_and_head(&db);
        for c in ["f16", "int8"] {
            db.sql(&format!(
                "CREATE MATERIALIZED VIEW feats_{c} WITH (compression = '{c}') \
                 AS SELECT id, backbone(image) AS f FROM photos"
            ))
            .unwrap();
        }
        // Float32 as computed: about its raw bytes (no dictionary pages).
        let plain_bytes = || -> u64 {
            files_under(&path.join("tables/.plain"))
                .iter()
                .map(|f| std::fs::metadata(f).unwrap().len())
                .sum()
        };
        let before = plain_bytes();
        db.sql("CREATE MATERIALIZED VIEW feats AS SELECT id, backbone(image) AS f FROM photos")
            .unwrap();
        let float32_bytes = plain_bytes() - before;
        assert!(
            float32_bytes < 10 * 1280 * 4 * 110 / 100,
            "{float32_bytes} bytes"
        );
        // Only compressed views are left, for EXPLAIN below.
        db.sql("DROP MATERIALIZED VIEW feats").unwrap();
        // The views ran the model once; this is its exact output (cached).
        vectors(
            &db.sql("SELECT id, backbone(image) FROM photos ORDER BY id")
                .unwrap(),
            1,
        )
    };
    assert_eq!((exact.len(), exact[0].len()), (10, 1280));
    // A new process reads the views from disk and decodes them.
    let db = BlockingDatabase::open(&path).unwrap();
    let shown = db.sql("SHOW TABLES").unwrap();
    let status: Vec<String> = strings(&shown, 5);
    let per_row = |c: &str| -> u64 {
        let s = status
            .iter()
            .find(|s| s.contains(&format!("{c} vectors")))
            .unwrap_or_else(|| panic!("{c} in {status:?}"));
        s.rsplit(", ")
            .next()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let float32 = 1280 * 4;
    assert!(
        per_row("f16") * 100 < float32 * 55,
        "f16: {} bytes a row",
        per_row("f16")
    );
    assert!(
        per_row("int8") * 100 < float32 * 30,
        "int8: {} bytes a row",
        per_row("int8")
    );
    for (c, bound) in [("f16", 0.0), ("int8", 1.0)] {
        let got = vectors(
            &db.sql(&format!("SELECT id, f FROM feats_{c} ORDER BY id"))
                .unwrap(),
            1,
        );
        for (x, y) in exact.iter().zip(&got) {
            let step = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            for (a, b) in x.iter().zip(y) {
                // f16: relative 2^-11; int8: half a step of the vector's scale.
                let allowed = a.abs() * 2f32.powi(-11) + 1e-7 + bound * (step * 0.5 * (1.0 + 1e-4));
                assert!((a - b).abs() <= allowed, "{c}: {a} -> {b}");
            }
        }
    }
    // A head is not fed compressed features: they are near the model's, not equal.
    let plan = explain(&db, "SELECT imagenet_head(image) FROM photos");
    assert!(
        plan.contains("view feats_int8 not used: column f is stored as int8"),
        "{plan}"
    );
}

#[test]
fn a_view_of_labels_answers_the_same_call_without_the_model() {
    let db = colors_with_tiny();
    db.sql("CREATE MATERIALIZED VIEW labels AS SELECT id, tiny(image) AS colour FROM colors")
        .unwrap();
    db.sql("SET spectradb.cache_size = 0").unwrap();
    let before = images_computed(&db, "tiny");
    let q = "SELECT uri, tiny(image) FROM colors ORDER BY uri";
    let plan = explain(&db, q);
    assert!(
        plan.contains("tiny: from materialized view labels (column colour)"),
        "{plan}"
    );
    let got = db.sql(q).unwrap();
    assert_eq!(strings(&got, 1), vec!["blue", "green", "red"]);
    assert_eq!(images_computed(&db, "tiny"), before);
    // A query that needs the image itself reads it.
    let plan = explain(
        &db,
        "SELECT tiny(image), width(image), to_png(image) FROM colors",
    );
    assert!(plan.contains("all bands read"), "{plan}");
}

#[test]
fn a_refresh_after_an_append_runs_the_model_on_the_new_rows_only() {
    let db = colors_with_tiny();
    db.sql("SET spectradb.cache_size = 0").unwrap();
    db.sql("CREATE MATERIALIZED VIEW labels AS SELECT id, tiny(image) AS colour FROM colors")
        .unwrap();
    assert_eq!(images_computed(&db, "tiny"), 3);
    for f in ["red", "green"] {
        db.sql(&format!(
            "INSERT INTO colors FROM 'tests/data/colors/{f}.png'"
        ))
        .unwrap();
    }
    let r = db.sql("REFRESH MATERIALIZED VIEW labels").unwrap();
    assert_eq!(strings(&r, 1), vec!["appended rows"]);
    assert_eq!(images_computed(&db, "tiny"), 5, "two model runs, not five");
    let rows = db
        .sql("SELECT count(*), count(DISTINCT id) FROM labels")
        .unwrap();
    let n = rows[0].column(0).as_primitive::<Int64Type>().value(0);
    let distinct = rows[0].column(1).as_primitive::<Int64Type>().value(0);
    assert_eq!((n, distinct), (5, 5));
}

#[test]
fn a_head_reads_a_compressed_view_only_where_calibration_meets_the_target() {
    let db = BlockingDatabase::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled/imagenet_0*'")
        .unwrap();
    create_backbone_and_head(&db);
    db.sql(
        "CREATE MATERIALIZED VIEW f8 WITH (compression = 'int8') \
         AS SELECT id, backbone(image) AS f FROM photos",
    )
    .unwrap();
    let q = "SELECT id, imagenet_head(image) FROM photos ORDER BY id";
    // The head on exact features (the backbone's outputs are cached).
    db.sql("SET spectradb.cache_size = 0").unwrap();
    let exact = db.sql(q).unwrap();
    assert_eq!(images_computed(&db, "backbone"), 20, "view, then the query");

    let plan = explain(&db, q);
    assert!(
        plan.contains(
            "imagenet_head: view f8 not used: column f is stored as int8 and nothing measured it \
             (CALIBRATE imagenet_head ON photos measures it)"
        ),
        "{plan}"
    );
    let shown = db.sql("CALIBRATE imagenet_head ON photos").unwrap();
    assert!(
        strings(&shown, 0).contains(&"view f8.f (int8)".to_string()),
        "{:?}",
        strings(&shown, 0)
    );
    let plan = explain(&db, q);
    assert!(
        plan.contains(
            "view f8 not used: column f is stored as int8 and there is no accuracy target"
        ),
        "{plan}"
    );
    // Ten of ten photos agree: a 95% lower bound of 0.72, short of 0.99
    // (nor does the view's read format reach it).
    db.sql("SET spectradb.accuracy_target = 0.99").unwrap();
    let plan = explain(&db, q);
    assert!(
        plan.contains("imagenet_head: format=ycc s8 224")
            && !plan.contains("from materialized view"),
        "{plan}"
    );
    db.sql("SET spectradb.accuracy_target = 0.7").unwrap();
    let plan = explain(&db, q);
    assert!(
        plan.contains("imagenet_head: from materialized view f8 (column f, the backbone's output, stored as int8: agreement lower bound 0.7"),
        "{plan}"
    );
    let (backbone, bands, head) = (
        images_computed(&db, "backbone"),
        band_columns(&db),
        images_computed(&db, "imagenet_head"),
    );
    let near = db.sql(q).unwrap();
    assert_eq!(
        ints(&near, 1),
        ints(&exact, 1),
        "the same class on every photo"
    );
    assert_eq!(
        images_computed(&db, "backbone"),
        backbone,
        "features from the view"
    );
    assert_eq!(band_columns(&db), bands, "no band read");
    assert_eq!(images_computed(&db, "imagenet_head"), head + 10);

    // Results from decoded features are not cached under exact keys: with
    // the cache on, the exact query after them computes every row.
    db.sql("RESET spectradb.cache_size").unwrap();
    db.sql(q).unwrap();
    db.sql("RESET spectradb.accuracy_target").unwrap();
    let head = images_computed(&db, "imagenet_head");
    db.sql(q).unwrap();
    assert_eq!(
        images_computed(&db, "imagenet_head"),
        head + 10,
        "no cache hit"
    );

    // An append makes the profile stale; EXPLAIN asks for CALIBRATE again.
    db.sql("INSERT INTO photos FROM 'tests/data/photos/imagenet-labeled/imagenet_1*'")
        .unwrap();
    db.sql("SET spectradb.accuracy_target = 0.7").unwrap();
    let plan = explain(&db, q);
    assert!(
        plan.contains("view f8 not used: column f is stored as int8 and")
            && plan.contains("(CALIBRATE imagenet_head ON photos measures it again)"),
        "{plan}"
    );
}
