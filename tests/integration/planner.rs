//! The format planner end to end: bands pushed into the scan, the choice
//! from a profile, stale profiles, CALIBRATE on real photos, EXPLAIN.

use std::sync::atomic::Ordering;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
use spectradb::read_format::profile::{FormatStats, Metric, Profile};
use spectradb::storage::catalog::DatabaseDir;
use spectradb::{BlockingDatabase, Database};

use super::common::create_mobilenet;

/// All text of an EXPLAIN result, one line per plan row.
fn plan_text(batches: &[RecordBatch]) -> String {
    let mut out = String::new();
    for b in batches {
        let col = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push_str(col.value(i));
            out.push('\n');
        }
    }
    out
}

fn with_labelled_photos_and_mobilenet() -> (tempfile::TempDir, BlockingDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let db = BlockingDatabase::open(dir.path().join("p.db")).unwrap();
    db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled'")
        .unwrap();
    db.sql(&create_mobilenet()).unwrap();
    (dir, db)
}

/// Bytes and band columns a query's scans read.
fn scan_cost(db: &BlockingDatabase, sql: &str) -> (u64, u64) {
    let stats = db.database().scan_stats();
    let (b0, c0) = (stats.bytes_read(), stats.band_columns_read());
    db.sql(sql).unwrap();
    (stats.bytes_read() - b0, stats.band_columns_read() - c0)
}

#[test]
fn model_calls_read_only_their_formats_bands() {
    let (_dir, db) = with_labelled_photos_and_mobilenet();
    let files = db.database().catalog().unwrap().tables["photos"]
        .files
        .len() as u64;
    // Everything: to_png needs the full image.
    let (all_bytes, all_cols) = scan_cost(&db, "SELECT to_png(image) FROM photos");
    assert_eq!(all_cols, 192 * files);
    // No profile: the smallest scale that yields 224 from 512 (s4 on 512x512,
    // s3 would give 192): the 4x4 corner of 3 planes.
    let (default_bytes, cols) = scan_cost(&db, "SELECT mobilenet(image) FROM photos");
    assert_eq!(cols, 48 * files);
    // Low bands hold most of the bytes, but far from all.
    assert!(
        default_bytes * 4 < all_bytes * 3,
        "{default_bytes} vs {all_bytes}"
    );
    // A forced luma-only s2 format reads 4 band columns per file.
    db.sql("SET spectradb.read_format = 'y s2 112'").unwrap();
    let (small_bytes, cols) = scan_cost(&db, "SELECT mobilenet(image) FROM photos");
    assert_eq!(cols, 4 * files);
    // (Footers are read either way.)
    assert!(
        small_bytes * 2 < default_bytes,
        "{small_bytes} vs {default_bytes}"
    );
    // Two models in one query: one scan reads the union.
    db.sql("SET spectradb.read_format = 'auto'").unwrap();
    db.sql("CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx'")
        .unwrap();
    let (_, cols) = scan_cost(
        &db,
        "SELECT mobilenet(image), tiny(image), width(image) FROM photos",
    );
    assert_eq!(cols, 48 * files, "tiny's s1 lies inside mobilenet's s4");
    // A raw use of image beside a model call keeps every band.
    let (_, cols) = scan_cost(&db, "SELECT mobilenet(image), image FROM photos");
    assert_eq!(cols, 192 * files);
    // A forced format that does not fit the model is an error naming both.
    db.sql("SET spectradb.read_format = 'ycc k6 coef'").unwrap();
    let err = db
        .sql("SELECT mobilenet(image) FROM photos")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'ycc k6 coef' does not fit model mobilenet"),
        "{err}"
    );
    db.sql("SET spectradb.read_format = 'y s2 100x'").unwrap();
    let err = db
        .sql("SELECT mobilenet(image) FROM photos")
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected '<y|ycc>"), "{err}");
}

fn stats(name: &str, cost: f64, correct: u64) -> FormatStats {
    FormatStats {
        format: name.parse().unwrap(),
        bands: 0,
        bytes_per_image: 0.0,
        decode_us: cost / 2.0,
        model_us: cost / 2.0,
        correct,
        n: 300,
    }
}

/// Publishes a made-up profile of mobilenet on photos.
fn plant_profile(db: &BlockingDatabase, table_version: Option<u64>) {
    let dir = DatabaseDir::open(db.database().path()).unwrap();
    let mut tx = dir.begin().unwrap();
    let catalog = tx.catalog_mut();
    let profile = Profile {
        model: "mobilenet".into(),
        table: "photos".into(),
        model_checksum: catalog.models["mobilenet"].checksum.clone(),
        table_version: table_version.unwrap_or(catalog.tables["photos"].version),
        metric: Metric::Agreement,
        sample: 300,
        reference: "ycc s8 224".parse().unwrap(),
        formats: vec![
            stats("ycc s8 224", 100.0, 300),
            stats("ycc s4 224", 60.0, 297),
            stats("ycc s2 112", 20.0, 270),
            stats("y s1 56", 5.0, 150),
        ],
        views: Vec::new(),
    };
    catalog.profiles = vec![profile];
    tx.commit().unwrap();
}

#[test]
fn explain_shows_the_cheapest_format_meeting_the_target() {
    let (_dir, db) = with_labelled_photos_and_mobilenet();
    plant_profile(&db, None);
    let explain = |db: &BlockingDatabase| {
        plan_text(
            &db.sql("EXPLAIN SELECT count(*) FROM photos WHERE mobilenet(image) = 281")
                .unwrap(),
        )
    };
    let plan = explain(&db);
    assert!(plan.contains("mobilenet: format=ycc s4 224"), "{plan}");
    assert!(plan.contains("no accuracy target"), "{plan}");

    db.sql("SET spectradb.accuracy_target = 0.95").unwrap();
    let plan = explain(&db);
    assert!(plan.contains("format=ycc s4 224 (cheapest calibrated format with agreement lower bound 0.971 >= 0.95"), "{plan}");
    assert!(
        plan.contains("bands=y:16 cb:16 cr:16 (48 of 192 band columns)"),
        "{plan}"
    );

    db.sql("SET spectradb.accuracy_target = 0.85").unwrap();
    let plan = explain(&db);
    assert!(plan.contains("format=ycc s2 112 (cheapest"), "{plan}");
    assert!(plan.contains("bands=y:4 cb:4 cr:4"), "{plan}");
    // The choice is what runs: 12 band columns per file.
    let files = db.database().catalog().unwrap().tables["photos"]
        .files
        .len() as u64;
    let (_, cols) = scan_cost(&db, "SELECT mobilenet(image) FROM photos");
    assert_eq!(cols, 12 * files);

    // Nothing in a sample of 300 can promise 0.99: full quality, and why.
    db.sql("SET spectradb.accuracy_target = 0.99").unwrap();
    let plan = explain(&db);
    assert!(
        plan.contains(
            "format=ycc s8 224 (no calibrated format has a lower bound on agreement >= 0.99"
        ),
        "{plan}"
    );

    // Bad settings are refused when a query uses them.
    db.sql("SET spectradb.accuracy_target = 1.5").unwrap();
    let err = db
        .sql("SELECT mobilenet(image) FROM photos")
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected a fraction in 0..1"), "{err}");
}

#[test]
fn a_stale_profile_is_not_used_and_explain_says_so() {
    let (_dir, db) = with_labelled_photos_and_mobilenet();
    plant_profile(&db, None);
    db.sql("SET spectradb.accuracy_target = 0.85").unwrap();
    // The table changes: the profile no longer describes it.
    db.sql("INSERT INTO photos FROM 'tests/data/photos/dev/skimage_coffee.png'")
        .unwrap();
    let plan = plan_text(
        &db.sql("EXPLAIN SELECT mobilenet(image) FROM photos")
            .unwrap(),
    );
    assert!(plan.contains("is stale (the table changed"), "{plan}");
    // The new 400x600 photo needs s5 to reach 224.
    assert!(plan.contains("format=ycc s5 224"), "{plan}");
    // SHOW FORMATS still shows it, with a warning.
    let rows = db.sql("SHOW FORMATS FOR mobilenet ON photos").unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    let warnings = db.database().take_warnings();
    assert!(warnings.iter().any(|w| w.contains("stale")), "{warnings:?}");
}

/// MobileNetV2's class for every photo under read format `format`, by id.
fn classes_under(db: &BlockingDatabase, format: &str) -> Vec<(u64, i64)> {
    db.sql(&format!("SET spectradb.read_format = '{format}'"))
        .unwrap();
    let batches = db
        .sql("SELECT id, mobilenet(image) FROM photos ORDER BY id")
        .unwrap();
    db.sql("RESET spectradb.read_format").unwrap();
    batches
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_primitive::<UInt64Type>();
            let classes = b.column(1).as_primitive::<Int64Type>();
            (0..b.num_rows())
                .map(|i| (ids.value(i), classes.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn calibrate_on_the_bundled_photos_gives_a_monotone_frontier() {
    let (dir, db) = with_labelled_photos_and_mobilenet();
    // The whole table is the sample, so SQL can count what CALIBRATE counted.
    let batches = db.sql("CALIBRATE mobilenet ON photos SAMPLE 20").unwrap();
    let names: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_string::<i32>();
            (0..c.len())
                .map(|i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(names.contains(&"ycc s8 224".to_string()), "{names:?}");
    assert!(names.contains(&"y s1 56".to_string()), "{names:?}");
    let catalog = db.database().catalog().unwrap();
    let profile = &catalog.profiles[0];
    assert_eq!(profile.sample, 20);
    assert_eq!(profile.formats.len(), names.len());
    assert_eq!(profile.reference.to_string(), "ycc s8 224");
    // Each format's agreement is the number of photos on which SQL, forced
    // to that format, gives the reference format's class.
    let reference = classes_under(&db, "ycc s8 224");
    assert_eq!(reference.len(), 20);
    let mut agreement = std::collections::HashMap::new();
    for f in &profile.formats {
        let name = f.format.to_string();
        let classes = classes_under(&db, &name);
        let same = classes
            .iter()
            .zip(&reference)
            .filter(|(a, b)| a == b)
            .count() as u64;
        assert_eq!((f.correct, f.n), (same, 20), "{name}");
        agreement.insert(name, same as f64 / 20.0);
    }
    // A 1x1 corner (block means) of luma at 56 pixels loses some photos.
    assert!(agreement["y s1 56"] < 1.0, "{agreement:?}");
    let frontier = profile.frontier();
    assert!(frontier.len() >= 2);
    for w in frontier.windows(2) {
        let (a, b) = (&profile.formats[w[0]], &profile.formats[w[1]]);
        assert!(a.cost_us() <= b.cost_us() && a.accuracy() < b.accuracy());
    }
    for f in &profile.formats {
        assert!(f.bytes_per_image > 0.0 && f.decode_us > 0.0 && f.model_us > 0.0);
    }
    // Fewer bands, fewer bytes.
    let bytes = |n: &str| {
        profile
            .formats
            .iter()
            .find(|f| f.format.to_string() == n)
            .unwrap()
            .bytes_per_image
    };
    assert!(bytes("y s1 56") < bytes("ycc s2 112"));
    assert!(bytes("ycc s2 112") < bytes("ycc s4 224"));
    // SHOW FORMATS lists the frontier first, shows the agreement SQL
    // counted, and drew the chart.
    let shown = db.sql("SHOW FORMATS FOR mobilenet ON photos").unwrap();
    let frontier_col = shown[0].column(7).as_boolean();
    assert!(frontier_col.value(0));
    let mut rows = 0;
    for b in &shown {
        let format = b.column(0).as_string::<i32>();
        let acc = b.column(5).as_primitive::<Float64Type>();
        let bound = b.column(6).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let want = agreement[format.value(i)];
            assert!((acc.value(i) - want).abs() < 1e-9, "{}", format.value(i));
            if want == 1.0 {
                // Wilson's 95 % interval for 20 of 20 starts at 0.8389.
                assert_eq!(bound.value(i), 0.8389, "{}", format.value(i));
            }
            rows += 1;
        }
    }
    assert_eq!(rows, profile.formats.len());
    let notices = db.database().take_notices();
    let chart = dir.path().join("p.db/charts/mobilenet_on_photos.svg");
    assert!(chart.exists(), "{notices:?}");
    assert!(std::fs::read_to_string(chart).unwrap().starts_with("<svg"));
    // The profile survives reopening, and drives the planner.
    drop(db);
    let db = BlockingDatabase::open(dir.path().join("p.db")).unwrap();
    db.sql("SET spectradb.accuracy_target = 0.5").unwrap();
    let plan = plan_text(
        &db.sql("EXPLAIN SELECT mobilenet(image) FROM photos")
            .unwrap(),
    );
    assert!(plan.contains("cheapest calibrated format"), "{plan}");
}

#[test]
fn an_interrupted_calibration_stores_nothing() {
    struct StopAfterTwo(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl spectradb::planner::calibrate::CalibrationProgress for StopAfterTwo {
        fn start(&self, _formats: u64, _images: u64) {}
        fn format_done(&self, _format: &str) {
            self.0.store(true, Ordering::Relaxed);
        }
        fn finish(&self) {}
    }
    let (_dir, db) = with_labelled_photos_and_mobilenet();
    let inner: &Database = db.database();
    inner.set_calibration_progress(Some(std::sync::Arc::new(StopAfterTwo(
        inner.interrupt_flag(),
    ))));
    let before = inner.catalog().unwrap().version;
    let err = db
        .sql("CALIBRATE mobilenet ON photos SAMPLE 4")
        .unwrap_err()
        .to_string();
    assert!(err.contains("interrupted; no profile stored"), "{err}");
    let after = inner.catalog().unwrap();
    assert_eq!(after.version, before);
    assert!(after.profiles.is_empty());
}

#[test]
fn explain_analyze_reports_bytes_decode_and_inference() {
    let (_dir, db) = with_labelled_photos_and_mobilenet();
    let plan = plan_text(
        &db.sql("EXPLAIN ANALYZE SELECT mobilenet(image) FROM photos")
            .unwrap(),
    );
    assert!(plan.contains("ImageScanExec: table=photos"), "{plan}");
    assert!(plan.contains("bytes_read="), "{plan}");
    assert!(plan.contains("decode_time="), "{plan}");
    assert!(plan.contains("mobilenet: images=20"), "{plan}");
    assert!(plan.contains("inference="), "{plan}");
    // CALIBRATE errors name what is missing.
    for (sql, want) in [
        ("CALIBRATE nope ON photos", "no model named 'nope'"),
        ("CALIBRATE mobilenet ON nope", "no image table named 'nope'"),
        (
            "CALIBRATE mobilenet ON photos USING colour",
            "no label column 'colour'",
        ),
        (
            "SHOW FORMATS FOR mobilenet ON photos",
            "run CALIBRATE mobilenet ON photos first",
        ),
    ] {
        let err = db.sql(sql).unwrap_err().to_string();
        assert!(err.contains(want), "{sql}: {err}");
    }
}

#[test]
fn calibrate_using_labels_on_a_gray_table_matches_sql() {
    let db = BlockingDatabase::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE fashion FROM 'tests/data/fashion' WITH (label = 'parent_dir', chroma = 'gray')")
        .unwrap();
    db.sql("CREATE MODEL cnn FROM 'tests/data/models/fashion_mnist_cnn.onnx' WITH (labels = 'tests/data/models/fashion_mnist_classes.txt')")
        .unwrap();
    db.sql("CALIBRATE cnn ON fashion USING label").unwrap();
    let catalog = db.database().catalog().unwrap();
    let p = &catalog.profiles[0];
    assert_eq!(
        p.metric,
        Metric::Labels {
            column: "label".into()
        }
    );
    assert_eq!(
        p.sample, 40,
        "the default sample covers the whole small table"
    );
    // A gray table: luma-only formats, scales 1..8 of a fixed 28x28 input.
    assert_eq!(p.reference.to_string(), "y s8 28");
    assert!(p
        .formats
        .iter()
        .all(|f| f.format.to_string().starts_with("y s")));
    assert!(p
        .formats
        .iter()
        .any(|f| f.format.to_string() == "y s2 k3 28"));
    // What CALIBRATE counted under a format is what SQL gets under it.
    for i in [0, p.formats.len() - 1] {
        let f = &p.formats[i];
        db.sql(&format!("SET spectradb.read_format = '{}'", f.format))
            .unwrap();
        let b = db
            .sql("SELECT count(*) FROM fashion WHERE cnn(image) = label")
            .unwrap();
        let n = b[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(n as u64, f.correct, "{}", f.format);
    }
    // An in-memory database draws its chart in the temp folder.
    db.sql("SHOW FORMATS FOR cnn ON fashion").unwrap();
    let notices = db.database().take_notices();
    assert!(
        notices.iter().any(|n| n.contains("cnn_on_fashion.svg")),
        "{notices:?}"
    );
}

/// The Fashion-MNIST family's members, largest first, as the API takes them.
fn fashion_family(member_14: &str) -> Vec<spectradb::read_format::model_spec::MemberSource> {
    [
        ("y s8 28", "tests/data/models/fashion_mnist_cnn.onnx"),
        ("y s4 14", member_14),
        ("y s2 7", "tests/data/models/fashion_mnist_cnn_7.onnx"),
        ("y s1 4", "tests/data/models/fashion_mnist_cnn_4.onnx"),
    ]
    .into_iter()
    .map(
        |(format, source)| spectradb::read_format::model_spec::MemberSource {
            format: format.into(),
            source: source.into(),
            options: Vec::new(),
        },
    )
    .collect()
}

const FASHION_LABELS: [(&str, &str); 1] =
    [("labels", "tests/data/models/fashion_mnist_classes.txt")];

fn labels_option() -> Vec<(String, String)> {
    FASHION_LABELS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn with_fashion_family(path: &std::path::Path) -> BlockingDatabase {
    let db = BlockingDatabase::open(path).unwrap();
    db.sql("CREATE IMAGE TABLE fashion FROM 'tests/data/fashion' WITH (label = 'parent_dir', chroma = 'gray')")
        .unwrap();
    db.database()
        .create_model_family(
            "fam",
            &fashion_family("tests/data/models/fashion_mnist_cnn_14.onnx"),
            &labels_option(),
        )
        .unwrap();
    db
}

fn explain(db: &BlockingDatabase, sql: &str) -> String {
    plan_text(&db.sql(&format!("EXPLAIN {sql}")).unwrap())
}

#[test]
fn a_model_family_runs_the_cheapest_member_meeting_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let db = with_fashion_family(&path);
    let query = "SELECT fam(image) FROM fashion";
    let plan = explain(&db, query);
    assert!(
        plan.contains("fam: format=y s8 28 (member 1 of 4; no profile (CALIBRATE fam ON fashion); the family's largest member)"),
        "{plan}"
    );
    db.sql("CALIBRATE fam ON fashion USING label").unwrap();
    let catalog = db.database().catalog().unwrap();
    let profile = catalog.profiles[0].clone();
    assert_eq!(profile.reference.to_string(), "y s8 28");
    let formats: Vec<String> = profile
        .formats
        .iter()
        .map(|f| f.format.to_string())
        .collect();
    assert_eq!(formats, ["y s8 28", "y s4 14", "y s2 7", "y s1 4"]);
    let members = ["y s8 28", "y s4 14", "y s2 7", "y s1 4"];
    // The scan opens each file once per split: count band columns in units
    // of a full read (64 luma bands of a gray image).
    let (_, all) = scan_cost(&db, "SELECT to_png(image) FROM fashion");
    let files = all / 64;
    assert_eq!(all % 64, 0);
    for target in [0.95, 0.8, 0.7] {
        db.sql(&format!("SET spectradb.accuracy_target = {target}"))
            .unwrap();
        let plan = explain(&db, query);
        let (bytes, columns) = scan_cost(&db, query);
        match profile.cheapest_meeting(target, 0.95) {
            Some(best) => {
                let member = members
                    .iter()
                    .position(|m| *m == best.format.to_string())
                    .unwrap();
                let want = format!(
                    "fam: format={} (member {} of 4; cheapest calibrated format with accuracy (label) lower bound",
                    best.format,
                    member + 1
                );
                assert!(plan.contains(&want), "{target}: {plan}");
                assert!(best.lower_bound(0.95) >= target);
                assert_eq!(columns, best.bands as u64 * files, "{target}");
                assert!(bytes > 0);
            }
            None => {
                assert_eq!(target, 0.95, "0.8 and 0.7 are met on this sample");
                assert!(
                    plan.contains("fam: format=y s8 28 (member 1 of 4; no calibrated format has a lower bound on accuracy (label) >= 0.95"),
                    "{plan}"
                );
                assert_eq!(columns, 64 * files);
            }
        }
    }
    // The 14-pixel member is the only one whose lower bound reaches 0.8:
    // what SQL counts under the target is what CALIBRATE counted for it.
    db.sql("SET spectradb.accuracy_target = 0.8").unwrap();
    let right = db
        .sql("SELECT count(*) FROM fashion WHERE fam(image) = label")
        .unwrap();
    let counted = right[0].column(0).as_primitive::<Int64Type>().value(0) as u64;
    assert_eq!(counted, profile.formats[1].correct);
    assert_eq!(
        profile
            .cheapest_meeting(0.8, 0.95)
            .unwrap()
            .format
            .to_string(),
        "y s4 14"
    );
    // Every member's file is kept (a VACUUM that purges all it may), checked
    // against its own checksum, and the family works after reopening.
    db.sql("VACUUM RETAIN 0 SECONDS").unwrap();
    drop(db);
    let db = BlockingDatabase::open(&path).unwrap();
    let checked = db.sql("CHECK DATABASE").unwrap();
    let kinds: Vec<String> = checked
        .iter()
        .flat_map(|b| {
            let kind = b.column(1).as_string::<i32>().clone();
            let status = b.column(5).as_string::<i32>().clone();
            (0..b.num_rows()).map(move |i| format!("{} {}", kind.value(i), status.value(i)))
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "model ok").count(),
        4,
        "{kinds:?}"
    );
    db.sql("SET spectradb.accuracy_target = 0.8").unwrap();
    let again = db
        .sql("SELECT count(*) FROM fashion WHERE fam(image) = label")
        .unwrap();
    assert_eq!(
        again[0].column(0).as_primitive::<Int64Type>().value(0) as u64,
        counted
    );
}

#[test]
fn a_changed_member_makes_views_of_the_family_stale() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_fashion_family(&dir.path().join("f.db"));
    db.sql("SET spectradb.read_format = 'y s4 14'").unwrap();
    db.sql("CREATE MATERIALIZED VIEW classes AS SELECT id, fam(image) AS class FROM fashion")
        .unwrap();
    let query = "SELECT fam(image) FROM fashion";
    assert!(
        explain(&db, query).contains("fam: from materialized view classes (column class)"),
        "{}",
        explain(&db, query)
    );
    // The same network with one unknown protobuf field appended (ONNX
    // Runtime skips it): another file, the same answers.
    let changed = dir.path().join("fashion_mnist_cnn_14_changed.onnx");
    let mut bytes = std::fs::read("tests/data/models/fashion_mnist_cnn_14.onnx").unwrap();
    bytes.extend_from_slice(&[0xC0, 0x3E, 0x01]); // field 1000, varint 1
    std::fs::write(&changed, bytes).unwrap();
    let before = db.database().catalog().unwrap().models["fam"]
        .checksum
        .clone();
    db.sql("DROP MODEL fam").unwrap();
    db.database()
        .create_model_family(
            "fam",
            &fashion_family(changed.to_str().unwrap()),
            &labels_option(),
        )
        .unwrap();
    let after = db.database().catalog().unwrap().models["fam"]
        .checksum
        .clone();
    assert_ne!(before, after, "the family's checksum covers every member");
    let shown = db.sql("SHOW TABLES").unwrap();
    let status: Vec<String> = shown
        .iter()
        .flat_map(|b| {
            let name = b.column(0).as_string::<i32>().clone();
            let status = b.column(5).as_string::<i32>().clone();
            (0..b.num_rows()).map(move |i| format!("{}: {}", name.value(i), status.value(i)))
        })
        .collect();
    assert!(
        status.contains(&"classes: stale: model fam changed".to_string()),
        "{status:?}"
    );
    let plan = explain(&db, query);
    assert!(!plan.contains("from materialized view"), "{plan}");
    assert!(
        plan.contains("fam: format=y s4 14 (member 2 of 4; forced"),
        "{plan}"
    );
}

#[test]
fn a_coefficient_domain_member_reads_only_its_bands() {
    let db = BlockingDatabase::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE colors FROM 'tests/data/colors'")
        .unwrap();
    db.sql(
        "CREATE MODEL rgb FAMILY ( \
           FORMAT 'ycc s8 32' FROM 'tests/data/models/tiny_rgb.onnx', \
           FORMAT 'ycc k1 coef' FROM 'tests/data/models/tiny_dct_rgb.onnx' \
             WITH (input = 'coefficients', bands = 1) \
         ) WITH (labels = 'tests/data/models/tiny_rgb_labels.txt')",
    )
    .unwrap();
    db.sql("SET spectradb.cache_size = 0").unwrap();
    let query = "SELECT rgb(image) FROM colors";
    let (_, all) = scan_cost(&db, query);
    assert_eq!(all % 192, 0, "the pixel member reads every band");
    let files = all / 192;
    db.sql("CALIBRATE rgb ON colors").unwrap();
    db.sql("SET spectradb.accuracy_target = 0.3").unwrap();
    let plan = explain(&db, query);
    assert!(
        plan.contains("rgb: format=ycc k1 coef (member 2 of 2; cheapest calibrated format with agreement lower bound 0.439 >= 0.3"),
        "{plan}"
    );
    let (_, dc) = scan_cost(&db, query);
    assert_eq!(dc, 3 * files, "the DC band of Y, Cb and Cr");
    // Three of three agree: 0.44 is the bound, and 0.5 needs the pixels.
    db.sql("SET spectradb.accuracy_target = 0.5").unwrap();
    let plan = explain(&db, query);
    assert!(
        plan.contains("rgb: format=ycc s8 32 (member 1 of 2;"),
        "{plan}"
    );
}
