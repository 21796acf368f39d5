//! Damaged files stay contained: a table whose file is missing, cut or
//! damaged fails only the statements that read it, names the file, and is
//! marked in SHOW TABLES; `CHECK TABLE` / `CHECK DATABASE` / `spectradb
//! check` find every damaged file; a scan of damaged pages ends with an
//! error in bounded memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use spectradb::storage::catalog::DatabaseDir;
use spectradb::Database;

use super::common::{error, rows, strings};

const BIN: &str = env!("CARGO_BIN_EXE_spectradb");

/// A database with image tables `good` (two photos) and `bad` (three), an
/// ordinary table and a materialized view; returns its directory.
async fn database(dir: &Path) -> PathBuf {
    let path = dir.join("d.db");
    let db = Database::open(&path).unwrap();
    for (t, photos) in [("good", "opencv_aero*"), ("bad", "opencv_b*")] {
        db.sql(&format!(
            "CREATE IMAGE TABLE {t} FROM 'tests/data/photos/dev/{photos}.jpg'"
        ))
        .await
        .unwrap();
    }
    db.sql("CREATE TABLE notes AS SELECT 1 AS x").await.unwrap();
    db.sql("CREATE MATERIALIZED VIEW sizes AS SELECT id, width FROM good")
        .await
        .unwrap();
    path
}

/// The first data file of image table `table`.
fn data_file(db: &Path, table: &str) -> PathBuf {
    let catalog = DatabaseDir::open(db).unwrap().read_catalog().unwrap();
    db.join(&catalog.tables[table].files[0].path)
}

/// SHOW TABLES as (name, status) pairs.
async fn statuses(db: &Database) -> Vec<(String, String)> {
    let shown = rows(db, "SHOW TABLES").await;
    let status_col = shown[0].schema().index_of("status").unwrap();
    strings(&shown, 0)
        .into_iter()
        .zip(strings(&shown, status_col))
        .collect()
}

fn status_of(statuses: &[(String, String)], name: &str) -> String {
    statuses
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| panic!("{name} not in SHOW TABLES: {statuses:?}"))
}

/// What must keep working whatever happened to `bad`.
async fn the_rest_works(db: &Database) {
    assert_eq!(strings(&rows(db, "SELECT 1").await, 0), ["1"]);
    let good = rows(db, "SELECT count(*), sum(width(image)) FROM good").await;
    assert_eq!(strings(&good, 0), ["2"]);
    assert_eq!(strings(&rows(db, "SELECT x FROM notes").await, 0), ["1"]);
    assert_eq!(
        strings(&rows(db, "SELECT count(*) FROM sizes").await, 0),
        ["2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_cut_file_fails_only_its_table_and_shows_in_show_tables() {
    for damage in ["missing", "cut"] {
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path()).await;
        let file = data_file(&path, "bad");
        match damage {
            "missing" => std::fs::remove_file(&file).unwrap(),
            _ => {
                let bytes = std::fs::read(&file).unwrap();
                std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
            }
        }
        // A new process opens the database: the damage is found on load.
        let db = Database::open(&path).unwrap();
        the_rest_works(&db).await;
        let err = error(&db, "SELECT count(*) FROM bad").await;
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            err.contains("table 'bad' is damaged") && err.contains(name),
            "{damage}: {err}"
        );
        let status = status_of(&statuses(&db).await, "bad");
        assert!(
            status.starts_with("damaged: ") && status.contains(name),
            "{status}"
        );
        assert_eq!(status_of(&statuses(&db).await, "good"), "");
        let err = error(&db, "SELECT id, thumbnail(image, 8) FROM bad").await;
        assert!(err.contains("table 'bad' is damaged"), "{err}");
        let report = rows(&db, "CHECK TABLE bad").await;
        let checked = strings(&report, 5);
        assert!(
            checked.len() == 1 && checked[0].starts_with("damaged: ") && checked[0].contains(name),
            "{checked:?}"
        );
        // Dropping the damaged table works and leaves the rest.
        db.sql("DROP TABLE bad").await.unwrap();
        the_rest_works(&db).await;
        assert!(statuses(&db).await.iter().all(|(n, _)| n != "bad"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_footer_fails_the_statements_reading_it_and_is_then_shown() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path()).await;
    let file = data_file(&path, "bad");
    damage_footer(&file);
    let db = Database::open(&path).unwrap();
    the_rest_works(&db).await;
    // The catalog's statistics are enough to list and plan the table.
    assert_eq!(status_of(&statuses(&db).await, "bad"), "");
    let err = error(&db, "SELECT count(*) FROM bad").await;
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "{err}");
    // The scan that found it marks the table.
    let status = status_of(&statuses(&db).await, "bad");
    assert!(
        status.starts_with("damaged: ") && status.contains(name),
        "{status}"
    );
    the_rest_works(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_without_file_statistics_read_footers_and_contain_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path()).await;
    let plan_before = strings(
        &rows(
            &Database::open(&path).unwrap(),
            "SELECT min(width), max(height), count(*) FROM good",
        )
        .await,
        0,
    );
    // A catalog as builds before per-file statistics wrote it.
    let catalog_path = path.join("catalog.json");
    let mut catalog: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&catalog_path).unwrap()).unwrap();
    for table in catalog["tables"].as_object_mut().unwrap().values_mut() {
        for f in table["files"].as_array_mut().unwrap() {
            let f = f.as_object_mut().unwrap();
            assert!(f.remove("stats").is_some() && f.remove("checksum").is_some());
        }
    }
    std::fs::write(&catalog_path, serde_json::to_string(&catalog).unwrap()).unwrap();
    let db = Database::open(&path).unwrap();
    assert_eq!(
        strings(
            &rows(&db, "SELECT min(width), max(height), count(*) FROM good").await,
            0
        ),
        plan_before
    );
    drop(db);
    // Such a catalog reads footers on load: a damaged one is contained.
    damage_footer(&data_file(&path, "bad"));
    let db = Database::open(&path).unwrap();
    the_rest_works(&db).await;
    let status = status_of(&statuses(&db).await, "bad");
    assert!(status.starts_with("damaged: "), "{status}");
    let checks = db.check(spectradb::db::CheckScope::Database).await.unwrap();
    // No checksum in this catalog: the content check finds it.
    let bad: Vec<_> = checks.iter().filter(|c| !c.is_ok()).collect();
    assert_eq!(bad.len(), 1, "{checks:?}");
    assert_eq!(bad[0].name, "bad");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_the_parquet_decoder_panics_on_is_an_error_naming_the_file() {
    // This damage to the bundled photos' table makes the Parquet decoder
    // assert on a bit width instead of returning an error (the message is
    // checked below, so the test notices if the damage stops doing so).
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    // A relative glob (tests run in the crate's root): the file's bytes,
    // uris included, and so where the damage falls, are the same everywhere.
    rows(
        &db,
        "CREATE IMAGE TABLE p FROM 'tests/data/photos/dev/*.jpg'",
    )
    .await;
    drop(db);
    let files: Vec<_> = super::common::files_under(&dir.path().join("db/tables/p"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    damage_pages(&files[0]);
    let db = Database::open(dir.path().join("db")).unwrap();
    let err = error(&db, "SELECT count(to_png(image)) FROM p").await;
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name) && err.contains("corrupt"), "{err}");
    assert!(!err.contains("Join Error"), "{err}");
    assert!(err.contains("decoder failed on damaged data"), "{err}");
    // The database goes on working.
    assert_eq!(rows(&db, "SELECT 1").await[0].num_rows(), 1);
}

/// Same size, the footer's length and magic overwritten.
fn damage_footer(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let n = bytes.len();
    bytes[n - 8..].copy_from_slice(b"\xff\xff\xff\x7fDAMG");
    std::fs::write(file, bytes).unwrap();
}

/// XOR 0x5A into every 97th byte from byte 100 to two thirds of `file`.
fn damage_pages(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let end = bytes.len() * 2 / 3;
    for i in (100..end).step_by(97) {
        bytes[i] ^= 0x5A;
    }
    std::fs::write(file, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_every_file_and_finds_damaged_pages_and_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path()).await;
    let db = Database::open(&path).unwrap();
    db.sql(
        "CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx' \
         WITH (labels = 'tests/data/models/tiny_rgb_labels.txt')",
    )
    .await
    .unwrap();
    let report = rows(&db, "CHECK DATABASE").await;
    let names = strings(&report, 0);
    let kinds = strings(&report, 1);
    let status = strings(&report, 5);
    assert!(status.iter().all(|s| s == "ok"), "{status:?}");
    for (name, kind) in [
        ("good", "image table"),
        ("bad", "image table"),
        ("notes", "table"),
        ("sizes", "materialized view"),
        ("tiny", "model"),
    ] {
        assert!(
            names
                .iter()
                .zip(&kinds)
                .any(|(n, k)| n == name && k == kind),
            "{name}: {names:?} {kinds:?}"
        );
    }
    assert_eq!(
        strings(&report, 3)[names.iter().position(|n| n == "bad").unwrap()],
        "3"
    );

    damage_pages(&data_file(&path, "bad"));
    let report = rows(&db, "CHECK TABLE bad").await;
    assert_eq!(strings(&report, 0), ["bad"]);
    let status = &strings(&report, 5)[0];
    assert!(
        status.starts_with("damaged: ") && status.contains(".parquet"),
        "{status}"
    );
    assert!(
        status.contains("column ") || status.contains("image."),
        "names the damaged column: {status}"
    );
    let shown = status_of(&statuses(&db).await, "bad");
    assert!(shown.starts_with("damaged: "), "{shown}");

    // A file whose bytes differ from those written, wherever they are: the
    // checksum finds it (here the catalog's checksum is what differs).
    let catalog_path = path.join("catalog.json");
    let text = std::fs::read_to_string(&catalog_path).unwrap();
    let catalog: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sum = catalog["tables"]["good"]["files"][0]["checksum"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&catalog_path, text.replace(&sum, "crc32:00000000")).unwrap();
    let checks = db
        .check(spectradb::db::CheckScope::Tables(vec!["good".into()]))
        .await
        .unwrap();
    assert_eq!(checks.len(), 1);
    assert!(
        checks[0].status.contains("checksum") && checks[0].status.contains(&sum),
        "{:?}",
        checks[0]
    );
    let err = error(&db, "CHECK TABLE nothing_here").await;
    assert!(err.contains("nothing_here"), "{err}");
}

/// Runs `spectradb check <db>` with its address space capped (so a scan
/// that allocates without bound fails here instead of exhausting the
/// machine); returns exit code, stdout and its peak RSS in bytes.
fn check_command(db: &Path) -> (i32, String, u64) {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("check")
        .arg(db)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let cap = 8u64 << 30;
            let limit = libc::rlimit {
                rlim_cur: cap,
                rlim_max: cap,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Reaped by wait4 below, which also reports the child's peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spectradb starts");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for this child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: the child is ours and not waited for elsewhere.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    (code, stdout, usage.ru_maxrss as u64 * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spectradb_check_exits_1_on_damaged_pages_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.db");
    // 40 small images in one file: the shape that drove a scan to 24 GB.
    let db = Database::open(&path).unwrap();
    db.sql("CREATE IMAGE TABLE thumbs FROM 'tests/data/fashion/**/*.png'")
        .await
        .unwrap();
    drop(db);
    let (code, out, _) = check_command(&path);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("thumbs") && out.contains("ok"), "{out}");

    damage_pages(&data_file(&path, "thumbs"));
    let (code, out, peak) = check_command(&path);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("damaged") && out.contains(".parquet"), "{out}");
    assert!(peak < 1 << 30, "peak RSS {peak} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_compressed_view_shows_its_damage_and_not_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path()).await;
    {
        let db = Database::open(&path).unwrap();
        db.sql("CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx'")
            .await
            .unwrap();
        db.sql(
            "CREATE MATERIALIZED VIEW scores8 WITH (compression = 'int8') \
             AS SELECT id, tiny_scores(image) AS s FROM good",
        )
        .await
        .unwrap();
        let status = status_of(&statuses(&db).await, "scores8");
        assert!(status.contains("int8 vectors"), "{status}");
    }
    let catalog = DatabaseDir::open(&path).unwrap().read_catalog().unwrap();
    let file = path.join(&catalog.materialized_views["scores8"].files[0].path);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let db = Database::open(&path).unwrap();
    the_rest_works(&db).await;
    let status = status_of(&statuses(&db).await, "scores8");
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        status.starts_with("damaged: ") && status.contains(name) && !status.contains("vectors"),
        "{status}"
    );
}
