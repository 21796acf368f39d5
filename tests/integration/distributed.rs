//! Queries on a Ballista cluster (feature `distributed`): a scheduler and
//! two executors started as `spectradb scheduler` / `spectradb executor`
//! processes on 127.0.0.1, over image tables on a real S3-protocol server
//! (moto's) and in the database directory. Every answer is compared with
//! the embedded database's.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use spectradb::Database;

use super::common::{data_dir, error, photos, rows as run, strings, vectors};
use super::object_storage::S3Server;

/// A scheduler and executors, each a `spectradb` process, killed on drop.
struct Cluster {
    scheduler: Child,
    executors: Vec<Child>,
    url: String,
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// A scheduler and `executors` executors of one task each; store
    /// credentials reach the executors through their environment.
    fn start(executors: usize, s3: Option<&S3Server>) -> Self {
        let mut scheduler = Command::new(env!("CARGO_BIN_EXE_spectradb"))
            .args([
                "scheduler",
                "--addr",
                "127.0.0.1:0",
                "--executor-timeout",
                "4",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(scheduler.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("df://"))
            .unwrap_or_else(|| panic!("the scheduler did not start: '{line}'"))
            .to_string();
        let scheduler_addr = url.trim_start_matches("df://").to_string();
        let mut cluster = Cluster {
            scheduler,
            executors: Vec::new(),
            url,
        };
        for _ in 0..executors {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_spectradb"));
            cmd.args(["executor", "--scheduler", &scheduler_addr])
                .args([
                    "--addr",
                    &addr.to_string(),
                    "--tasks",
                    "1",
                    "--heartbeat",
                    "1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(s3) = s3 {
                cmd.env("AWS_ACCESS_KEY_ID", &s3.key)
                    .env("AWS_SECRET_ACCESS_KEY", &s3.secret);
            }
            cluster.executors.push(cmd.spawn().unwrap());
            // Its Flight service answers once it is up; it registers with
            // the scheduler at its first poll, right after.
            let since = Instant::now();
            while TcpStream::connect(addr).is_err() {
                assert!(
                    since.elapsed() < Duration::from_secs(30),
                    "executor on {addr} did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Each batch's rows as text, column by column (types differ in nothing
/// that text hides: both sides run the same plans).
fn table(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let columns = batches.first().map_or(0, |b| b.num_columns());
    (0..columns).map(|c| strings(batches, c)).collect()
}

fn local_photos() -> String {
    format!("{}/photos/imagenet-labeled", data_dir().display())
}

const QUERIES: [&str; 5] = [
    "SELECT id, uri, width, height FROM photos ORDER BY id",
    "SELECT id, tiny(image) AS class FROM photos ORDER BY id",
    // A filter pushed into the scan travels as a physical expression.
    "SELECT id FROM photos WHERE id % 3 = 1 AND width > 100 ORDER BY id",
    // An ordinary table travels with the plan.
    "SELECT p.id, n.note FROM photos p JOIN notes n ON p.id = n.id ORDER BY p.id",
    "SELECT count(*), sum(width) FROM here WHERE height > 0",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_answers_as_the_embedded_database_does() {
    let s3 = S3Server::start(&["spectra-cluster-raw", "spectra-cluster-lake"]);
    let labeled = photos("imagenet-labeled");
    s3.upload("spectra-cluster-raw", "a", &labeled[..12]);
    s3.upload("spectra-cluster-raw", "b", &labeled[12..]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");

    let expected = {
        let db = Database::open(&path).unwrap();
        // Two data files on S3 (one per statement), one table here.
        run(
            &db,
            &format!(
                "CREATE IMAGE TABLE photos FROM 's3://spectra-cluster-raw/a/' \
                 WITH (location = 's3://spectra-cluster-lake/photos', {})",
                s3.options()
            ),
        )
        .await;
        run(&db, "INSERT INTO photos FROM 's3://spectra-cluster-raw/b/'").await;
        run(
            &db,
            &format!("CREATE IMAGE TABLE here FROM '{}'", local_photos()),
        )
        .await;
        run(
            &db,
            "CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx'",
        )
        .await;
        run(
            &db,
            "CREATE TABLE notes AS SELECT id, concat('note ', CAST(id AS VARCHAR)) AS note \
             FROM photos WHERE id <= 4",
        )
        .await;
        let mut out = Vec::new();
        for q in QUERIES {
            out.push(table(&run(&db, q).await));
        }
        out
    };
    assert_eq!(expected[0][0].len(), 20);

    let cluster = Cluster::start(2, Some(&s3));
    let db = Database::open_on_cluster(&path, &cluster.url).unwrap();
    for (q, want) in QUERIES.iter().zip(&expected) {
        assert_eq!(&table(&run(&db, q).await), want, "{q}");
    }
    assert_eq!(
        db.scan_stats().bytes_read(),
        0,
        "the executors read the data files, not the client"
    );

    // EXPLAIN shows the stages, with the scan's band choice inside.
    let plan = strings(&run(&db, "EXPLAIN SELECT tiny(image) FROM photos").await, 1).join("\n");
    assert!(plan.contains("ShuffleWriterExec"), "{plan}");
    assert!(plan.contains("ImageScanExec: table=photos"), "{plan}");
    assert!(plan.contains("tiny: format"), "{plan}");

    // A materialized view computed by the cluster, kept by this database.
    run(
        &db,
        "CREATE MATERIALIZED VIEW scores AS SELECT id, tiny_scores(image) AS s FROM photos",
    )
    .await;
    let counted = strings(&run(&db, "SELECT count(*) FROM scores").await, 0);
    assert_eq!(counted, ["20"]);
    // The planner now takes the view's outputs; they travel in the plan.
    let from_view = run(&db, "SELECT id, tiny_scores(image) FROM photos ORDER BY id").await;

    // A table that lives in this process says so.
    let e = error(&db, "SELECT * FROM spectradb_cache").await;
    assert!(
        e.contains("table spectradb_cache cannot be read on a cluster") && !e.contains("bug"),
        "{e}"
    );
    drop(db);
    drop(cluster);

    let db = Database::open(&path).unwrap();
    let here = run(&db, "SELECT id, tiny_scores(image) FROM here ORDER BY id").await;
    let view = run(&db, "SELECT id, s FROM scores ORDER BY id").await;
    assert_eq!(strings(&view, 0), strings(&here, 0));
    assert_eq!(vectors(&view, 1), vectors(&here, 1));
    assert_eq!(vectors(&from_view, 1), vectors(&here, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_mid_query_has_its_tasks_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    {
        let db = Database::open(&path).unwrap();
        run(
            &db,
            &format!("CREATE IMAGE TABLE photos FROM '{}'", local_photos()),
        )
        .await;
        for _ in 0..9 {
            run(
                &db,
                &format!("INSERT INTO photos FROM '{}'", local_photos()),
            )
            .await;
        }
        run(&db, &super::common::create_mobilenet()).await;
    }
    let mut cluster = Cluster::start(2, None);
    let db = Database::open_on_cluster(&path, &cluster.url).unwrap();
    let query = "SELECT count(mobilenet(image)) FROM photos";
    let running = tokio::spawn({
        let frame = db.sql(query).await.unwrap();
        async move { frame.collect().await }
    });
    // The first run loads the model on each executor, then infers 200
    // images: about two seconds here. Kill one executor within it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !running.is_finished(),
        "the query must still run at the kill"
    );
    let victim = &mut cluster.executors[0];
    victim.kill().unwrap();
    victim.wait().unwrap();
    // The scheduler takes the executor as lost after its timeout (4 s here)
    // and runs its tasks again on the other one: the answer is whole.
    let batches = tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .expect("the query ends after an executor is killed")
        .unwrap()
        .unwrap_or_else(|e| panic!("{query}: {}", spectradb::Error::from(e)));
    assert_eq!(strings(&batches, 0), ["200"]);
    // The cluster still answers, and what was committed is all there.
    let counted = run(&db, "SELECT count(*) FROM photos").await;
    assert_eq!(strings(&counted, 0), ["200"]);
    drop(db);
    drop(cluster);
    let db = Database::open(&path).unwrap();
    let counted = run(&db, "SELECT count(*) FROM photos").await;
    assert_eq!(strings(&counted, 0), ["200"]);
    assert!(Path::new(&path).join("catalog.json").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_that_is_not_there_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    let url = format!("df://127.0.0.1:{}", free_port());
    let db = Database::open_on_cluster(&path, &url).unwrap();
    run(
        &db,
        &format!("CREATE IMAGE TABLE photos FROM '{}'", local_photos()),
    )
    .await;
    let e = error(&db, "SELECT count(*) FROM photos").await;
    assert!(
        e.to_lowercase().contains("connect") || e.contains("transport"),
        "{e}"
    );
    let bad = Database::open_on_cluster(&path, "http://127.0.0.1:1")
        .err()
        .unwrap();
    assert!(bad.to_string().contains("df://host:port"), "{bad}");
}
