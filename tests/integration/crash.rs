//! Crash safety: a writer killed with SIGKILL at random moments never
//! leaves a database that fails to open or shows half an ingest.
//!
//! The parent test re-runs this test binary as the child (the ignored test
//! `crash_child` does the ingesting when SPECTRADB_CRASH_DB is set).

use std::process::{Command, Stdio};
use std::time::Duration;

use spectradb::ingest::{expand_sources, IngestOptions};
use spectradb::storage::catalog::DatabaseDir;
use spectradb::storage::ImageFileReader;

use super::common::{data_dir, ingest_committed};

const ENV: &str = "SPECTRADB_CRASH_DB";

/// The child: commits small ingests in a loop until it is killed.
#[test]
#[ignore = "run by sigkill_during_ingest_leaves_the_last_committed_version"]
fn crash_child() {
    let Ok(path) = std::env::var(ENV) else { return };
    let db = DatabaseDir::open(&path).unwrap();
    let files = expand_sources(&format!(
        "{}/photos/imagenet-labeled/*.jpg",
        data_dir().display()
    ))
    .unwrap();
    let opts = IngestOptions {
        images_per_file: 2,
        threads: 1,
        ..Default::default()
    };
    let exists = db.read_catalog().unwrap().tables.contains_key("t");
    ingest_committed(&db, "t", !exists, &files[..3], &opts, &|_| {}).unwrap();
    for i in 0.. {
        let n = 1 + i % 4;
        ingest_committed(&db, "t", false, &files[..n], &opts, &|_| {}).unwrap();
    }
}

/// Tiny deterministic generator for the kill delays.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn sigkill_during_ingest_leaves_the_last_committed_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x5eed;
    let mut last_version = 0;
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "integration::crash::crash_child",
                "--ignored",
                "--test-threads=1",
            ])
            .env(ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50 + next(&mut seed) % 700));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();

        // The database opens, and the next writer cleans up after the dead one.
        let db = DatabaseDir::open(&path).unwrap();
        let _tx = db.begin().unwrap();
        let catalog = db.read_catalog().unwrap();
        assert!(
            catalog.version >= last_version,
            "round {round}: a committed version was lost"
        );
        last_version = catalog.version;
        println!("round {round}: catalog version {last_version}");
        let Some(t) = catalog.tables.get("t") else {
            continue;
        };
        // Exactly the published files are on disk, each with the rows the catalog says.
        let mut on_disk: Vec<String> = std::fs::read_dir(db.root().join("tables/t"))
            .unwrap()
            .map(|e| format!("tables/t/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = t.files.iter().map(|f| f.path.clone()).collect();
        listed.sort();
        assert_eq!(
            on_disk, listed,
            "round {round}: unpublished files must be gone"
        );
        let mut rows = 0;
        for f in &t.files {
            let r = ImageFileReader::open(db.root().join(&f.path)).unwrap();
            assert_eq!(r.num_rows() as u64, f.rows, "round {round}: {}", f.path);
            rows += f.rows;
        }
        assert_eq!(
            rows, t.next_id,
            "round {round}: ids 0..next_id are exactly the committed rows"
        );
    }
    assert!(last_version > 1, "the child got to commit at least once");
}
