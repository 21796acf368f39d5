//! The Flight SQL server in-process, through arrow-flight's own
//! `FlightSqlServiceClient`: every call the server answers, sessions,
//! authentication, the data root, status codes, limits and shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{Int64Type, Schema};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTables, CommandStatementQuery, ProstMessageExt, SqlInfo,
};
use arrow_flight::{FlightDescriptor, FlightInfo};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use spectradb::serve::{Auth, ServeConfig, ServeStats, Tokens};
use spectradb::Database;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::Code;

use super::common::{strings, vectors};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A server on 127.0.0.1:0 over a database in a temporary folder, with
/// the repository as data root (the test photos and models are in it).
pub struct TestServer {
    pub addr: SocketAddr,
    pub stats: Arc<ServeStats>,
    /// The database it serves (for model counters).
    pub db: Arc<Database>,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<spectradb::Result<()>>>,
}

impl TestServer {
    pub async fn start(configure: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::open(dir.path().join("db")).unwrap());
        let mut config = ServeConfig::new(Auth::Tokens(Tokens::new([TOKEN]).unwrap()));
        config.data_root = Some(env!("CARGO_MANIFEST_DIR").into());
        configure(&mut config);
        let stats = config.stats.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(spectradb::serve::run(listener, db.clone(), config, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stats,
            db,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client that sends the token as a bearer header.
    pub async fn client(&self) -> FlightSqlServiceClient<Channel> {
        let mut c = self.anonymous().await;
        c.set_token(TOKEN.into());
        c
    }

    /// A client without credentials.
    pub async fn anonymous(&self) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        FlightSqlServiceClient::new(channel)
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) -> spectradb::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the server stops within 30 s")
            .unwrap()
    }
}

/// Runs `sql` and collects its result; checks the stream's schema is the
/// one FlightInfo advertised.
pub async fn query(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Vec<RecordBatch> {
    let info = c.execute(sql.to_string(), None).await.unwrap();
    fetch(c, info).await.unwrap()
}

async fn fetch(
    c: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<Vec<RecordBatch>, FlightError> {
    let advertised = Schema::try_from(info.clone()).unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = c.do_get(ticket).await?;
    let mut batches = Vec::new();
    while let Some(b) = stream.try_next().await? {
        batches.push(b);
    }
    if let Some(schema) = stream.schema() {
        assert_eq!(
            schema.as_ref(),
            &advertised,
            "stream schema != FlightInfo schema"
        );
    }
    Ok(batches)
}

/// The gRPC status of planning `sql` (the client library hides it).
async fn status_of(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> tonic::Status {
    let cmd = CommandStatementQuery {
        query: sql.into(),
        transaction_id: None,
    };
    let mut request = tonic::Request::new(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()));
    if let Some(t) = c.token() {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    c.inner_mut()
        .get_flight_info(request)
        .await
        .expect_err("the statement fails")
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

fn first_i64(batches: &[RecordBatch]) -> i64 {
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(20), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server with default settings and a client of it.
async fn served() -> (TestServer, FlightSqlServiceClient<Channel>) {
    let server = TestServer::start(|_| {}).await;
    let c = server.client().await;
    (server, c)
}

/// A query that runs until stopped (billions of rows), its first batch read.
async fn endless(c: &mut FlightSqlServiceClient<Channel>) -> FlightRecordBatchStream {
    let info = c
        .execute("SELECT value FROM range(10000000000)".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = c.do_get(ticket).await.unwrap();
    stream.next().await.unwrap().unwrap();
    stream
}

/// Makes image table `table` of the images in `images` and model `tiny`;
/// the number of images added.
async fn table_and_tiny(c: &mut FlightSqlServiceClient<Channel>, table: &str, images: &str) -> i64 {
    let n = c
        .execute_update(
            format!("CREATE IMAGE TABLE {table} FROM '{}'", repo(images)),
            None,
        )
        .await
        .unwrap();
    c.execute_update(
        format!(
            "CREATE MODEL tiny FROM '{}' WITH (labels = '{}')",
            repo("tests/data/models/tiny_rgb.onnx"),
            repo("tests/data/models/tiny_rgb_labels.txt")
        ),
        None,
    )
    .await
    .unwrap();
    n
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_updates_and_model_queries_run_remotely() {
    let (server, mut c) = served().await;
    let n = table_and_tiny(&mut c, "colors", "tests/data/colors").await;
    assert!(n > 0, "the ingest reports the images it added: {n}");
    let batches = query(&mut c, "SELECT count(*) FROM colors").await;
    assert_eq!(first_i64(&batches), n);
    // spectradb's planner and a model function, streamed.
    let batches = query(
        &mut c,
        "SELECT id, tiny(image) AS label FROM colors ORDER BY id",
    )
    .await;
    assert_eq!(rows(&batches) as i64, n);
    // Pictures come as PNG bytes.
    let batches = query(
        &mut c,
        "SELECT thumbnail(image, 16) AS thumb, to_png(image) AS png FROM colors LIMIT 1",
    )
    .await;
    for column in 0..2 {
        let png = batches[0].column(column).as_binary::<i32>().value(0);
        assert_eq!(&png[1..4], b"PNG");
    }
    // DataFusion tables through the statement path, kept on disk.
    c.execute_update("CREATE TABLE notes (n BIGINT)".into(), None)
        .await
        .unwrap();
    let inserted = c
        .execute_update("INSERT INTO notes VALUES (1), (2), (3)".into(), None)
        .await
        .unwrap();
    assert_eq!(inserted, 3);
    let batches = query(&mut c, "SELECT sum(n) FROM notes").await;
    assert_eq!(first_i64(&batches), 6);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_stream_batch_by_batch_with_the_advertised_schema() {
    let (server, mut c) = served().await;
    c.execute_update("SET datafusion.execution.batch_size = 1000".into(), None)
        .await
        .unwrap();
    let batches = query(
        &mut c,
        "SELECT value, value * 2 AS twice FROM range(100000)",
    )
    .await;
    assert_eq!(rows(&batches), 100_000);
    assert!(batches.len() >= 100, "{} batches", batches.len());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_bind_parameters() {
    let (server, mut c) = served().await;
    let mut p = c
        .prepare("SELECT value FROM range(10) WHERE value > $1".into(), None)
        .await
        .unwrap();
    assert_eq!(p.parameter_schema().unwrap().fields().len(), 1);
    assert_eq!(p.dataset_schema().unwrap().field(0).name(), "value");
    for (bound, expected) in [(6, 3), (8, 1)] {
        let params =
            RecordBatch::try_from_iter([("$1", Arc::new(Int64Array::from(vec![bound])) as _)])
                .unwrap();
        p.set_parameters(params).unwrap();
        let info = p.execute().await.unwrap();
        let batches = fetch(&mut c, info).await.unwrap();
        assert_eq!(rows(&batches), expected, "value > {bound}");
    }
    // A prepared update (no parameters).
    let mut u = c
        .prepare(
            "CREATE TABLE made_by_prepared AS SELECT 1 AS x".into(),
            None,
        )
        .await
        .unwrap();
    u.execute_update().await.unwrap();
    let batches = query(&mut c, "SELECT x FROM made_by_prepared").await;
    assert_eq!(rows(&batches), 1);
    p.close().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_calls_list_catalogs_schemas_tables_and_info() {
    let (server, mut c) = served().await;
    c.execute_update(
        format!(
            "CREATE IMAGE TABLE photos FROM '{}'",
            repo("tests/data/colors")
        ),
        None,
    )
    .await
    .unwrap();
    let info = c.get_catalogs().await.unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    let catalogs = batches[0].column(0).as_string::<i32>();
    assert!(catalogs.iter().any(|c| c == Some("datafusion")));

    let info = c
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("datafusion".into()),
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    let schemas = batches[0].column(1).as_string::<i32>();
    assert!(schemas.iter().any(|s| s == Some("public")));

    let info = c
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: Some("pho%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    assert_eq!(rows(&batches), 1);
    let b = &batches[0];
    assert_eq!(b.column(2).as_string::<i32>().value(0), "photos");
    assert_eq!(b.column(3).as_string::<i32>().value(0), "TABLE");
    let schema_ipc = b.column(4).as_binary::<i32>().value(0).to_vec();
    let schema = Schema::try_from(arrow_flight::IpcMessage(schema_ipc.into())).unwrap();
    assert!(schema.field_with_name("image").is_ok(), "{schema:?}");

    let info = c.get_table_types().await.unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    let types: Vec<_> = batches[0]
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .map(String::from)
        .collect();
    assert!(types.contains(&"TABLE".to_string()), "{types:?}");

    let info = c
        .get_sql_info(vec![SqlInfo::FlightSqlServerName])
        .await
        .unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    assert_eq!(rows(&batches), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_stay_with_the_client_that_set_them() {
    let server = TestServer::start(|_| {}).await;
    let (mut a, mut b) = (server.client().await, server.client().await);
    let setting = "SELECT value FROM information_schema.df_settings \
                   WHERE name = 'datafusion.execution.batch_size'";
    let before = query(&mut b, setting).await;
    let before = before[0].column(0).as_string::<i32>().value(0).to_string();
    for set in [
        "SET spectradb.accuracy_target = 0.5",
        "SET datafusion.execution.batch_size = 1234",
    ] {
        a.execute_update(set.into(), None).await.unwrap();
    }
    let seen =
        |batches: Vec<RecordBatch>| batches[0].column(0).as_string::<i32>().value(0).to_string();
    assert_eq!(seen(query(&mut a, setting).await), "1234");
    assert_eq!(seen(query(&mut b, setting).await), before);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_the_handshake_trades_basic_for_bearer() {
    let server = TestServer::start(|_| {}).await;
    let mut anonymous = server.anonymous().await;
    let status = status_of(&mut anonymous, "SELECT 1").await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status}");

    let mut wrong = server.anonymous().await;
    wrong.set_token("not-the-token-0123456789".into());
    let status = status_of(&mut wrong, "SELECT 1").await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status}");
    assert!(wrong.handshake("alice", "wrong-password").await.is_err());

    let mut basic = server.anonymous().await;
    basic.handshake("alice", TOKEN).await.unwrap();
    assert_eq!(basic.token().map(String::as_str), Some(TOKEN));
    let batches = query(&mut basic, "SELECT 41 + 1").await;
    assert_eq!(first_i64(&batches), 42);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_right_status_code_and_a_message() {
    let (server, mut c) = served().await;
    let bad_sql = status_of(&mut c, "SELEC 1").await;
    assert_eq!(bad_sql.code(), Code::InvalidArgument, "{bad_sql}");
    let no_table = status_of(&mut c, "SELECT * FROM nowhere").await;
    assert_eq!(no_table.code(), Code::InvalidArgument, "{no_table}");
    assert!(no_table.message().contains("nowhere"), "{no_table}");
    let outside = status_of(
        &mut c,
        "CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'",
    )
    .await;
    assert_eq!(outside.code(), Code::PermissionDenied, "{outside}");
    assert!(outside.message().contains("data root"), "{outside}");
    let escape = status_of(
        &mut c,
        &format!("CREATE IMAGE TABLE t FROM '{}/../../*'", repo("tests")),
    )
    .await;
    assert_eq!(escape.code(), Code::PermissionDenied, "{escape}");
    // An unknown prepared statement handle.
    let mut p = c.prepare("SELECT 1".into(), None).await.unwrap();
    p.clone().close().await.unwrap();
    let err = p.execute().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no prepared statement with this handle"),
        "{err}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_stops_its_query() {
    let (server, mut c) = served().await;
    let stream = endless(&mut c).await;
    assert_eq!(server.stats.running_queries(), 1);
    drop(stream);
    let stats = server.stats.clone();
    eventually("the query stops once its stream is dropped", || {
        stats.running_queries() == 0
    })
    .await;
    server.shutdown().await.unwrap();
}

/// Images in the one batch [`MANY_INFERENCES`] hands the model.
const BATCH_IMAGES: u64 = 3 * 10_000;

/// Each small picture 10,000 times, sorted (set the cache off: it would
/// answer the repeats); with a batch size of [`BATCH_IMAGES`], one batch.
const MANY_INFERENCES: &str = "SELECT tiny(image) FROM \
    (SELECT c.image FROM colors c CROSS JOIN range(10000) r ORDER BY r.value)";

/// Turns the model output cache off (clients may not: it is the server's)
/// and returns a new client: each statement of a client sizes the cache
/// as the settings it started with say.
async fn cache_off(server: &TestServer) -> FlightSqlServiceClient<Channel> {
    server.db.sql("SET spectradb.cache_size = 0").await.unwrap();
    server.client().await
}

/// Images model `tiny` has run so far.
fn inferred(server: &TestServer) -> u64 {
    server.db.model_stats("tiny").map_or(0, |s| s.images)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_stops_model_inference_within_its_batch() {
    let (server, mut c) = served().await;
    table_and_tiny(&mut c, "colors", "tests/data/colors").await;
    let mut c = cache_off(&server).await;
    // One partition and one batch: one model call, for every image. Only a
    // cancel that reaches the running call stops it before its end (the
    // database API's test bounds what runs after a cancel to a chunk).
    for set in [
        "SET datafusion.execution.target_partitions = 1".to_string(),
        format!("SET datafusion.execution.batch_size = {BATCH_IMAGES}"),
    ] {
        c.execute_update(set, None).await.unwrap();
    }
    let info = c.execute(MANY_INFERENCES.into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = c.do_get(ticket).await.unwrap();
    eventually("the model runs", || inferred(&server) >= 32).await;
    drop(stream);
    let at_drop = inferred(&server);
    let stats = server.stats.clone();
    eventually("the query stops", || stats.running_queries() == 0).await;
    // Nothing of it runs on elsewhere either.
    let mut last = inferred(&server);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = inferred(&server);
        if now == last {
            break;
        }
        last = now;
    }
    // The cancel takes a network round and a chunk to arrive: far less
    // than the rest of the batch, whatever the load.
    let (after, left) = (last - at_drop, BATCH_IMAGES - at_drop);
    println!("{at_drop} images before the drop, {after} after");
    assert!(
        after < left / 2,
        "{after} of the {left} images left in the batch ran after the stream was dropped"
    );
    server.shutdown().await.unwrap();
}

/// The median of `times`.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clients_are_answered_while_models_fill_every_core() {
    let (server, mut c) = served().await;
    table_and_tiny(&mut c, "colors", "tests/data/colors").await;
    let mut c = cache_off(&server).await;
    let mut load = Vec::new();
    for _ in 0..2 {
        let mut l = server.client().await;
        load.push(tokio::spawn(async move {
            loop {
                let info = l.execute(MANY_INFERENCES.into(), None).await.unwrap();
                fetch(&mut l, info).await.unwrap();
            }
        }));
    }
    let before = inferred(&server);
    eventually("the load runs", || inferred(&server) > before + 64).await;
    let (mut select, mut tables) = (Vec::new(), Vec::new());
    let loaded = inferred(&server);
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(first_i64(&query(&mut c, "SELECT 1").await), 1);
        select.push(t.elapsed());
        let t = Instant::now();
        let info = c
            .get_tables(CommandGetTables {
                catalog: None,
                db_schema_filter_pattern: None,
                table_name_filter_pattern: None,
                table_types: vec![],
                include_schema: true,
            })
            .await
            .unwrap();
        assert!(rows(&fetch(&mut c, info).await.unwrap()) > 0);
        tables.push(t.elapsed());
    }
    assert!(
        inferred(&server) > loaded,
        "the models ran while the other client was answered"
    );
    for l in &load {
        assert!(!l.is_finished(), "a load client failed");
        l.abort();
    }
    let (select, tables) = (median(select), median(tables));
    let limit = Duration::from_millis(200);
    assert!(
        select < limit,
        "SELECT 1 took {select:?} (median) under load"
    );
    assert!(
        tables < limit,
        "GetTables took {tables:?} (median) under load"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_nobody_reads_is_stopped_after_the_idle_timeout() {
    let server = TestServer::start(|c| c.idle_timeout = Duration::from_secs(1)).await;
    let mut c = server.client().await;
    let mut stream = endless(&mut c).await;
    let stats = server.stats.clone();
    eventually("the unread query is stopped", || {
        stats.running_queries() == 0
    })
    .await;
    // Reading again drains what was sent, then says why it ended.
    let err = loop {
        match stream.next().await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("the stream ended without saying why"),
        }
    };
    assert!(err.to_string().contains("idle timeout"), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_running_queries_after_the_grace_period() {
    let server = TestServer::start(|c| c.shutdown_grace = Duration::from_millis(200)).await;
    let mut c = server.client().await;
    let mut stream = endless(&mut c).await;
    let reader = tokio::spawn(async move {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Some(e.to_string()),
                None => return None,
            }
        }
    });
    let stats = server.stats.clone();
    server.shutdown().await.unwrap();
    assert_eq!(stats.running_queries(), 0);
    let ended = reader.await.unwrap();
    assert!(
        ended
            .as_deref()
            .is_some_and(|e| e.contains("shutting down")),
        "{ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_only_loopback_addresses_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path().join("db")).unwrap());
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = spectradb::serve::run(
        listener,
        db.clone(),
        ServeConfig::new(Auth::Disabled),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(spectradb::serve::run(
        listener,
        db,
        ServeConfig::new(Auth::Disabled),
        async {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = FlightSqlServiceClient::new(channel);
    assert_eq!(first_i64(&query(&mut c, "SELECT 7").await), 7);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_messages_are_refused() {
    let server = TestServer::start(|c| c.max_message_bytes = 64 << 10).await;
    let mut c = server.client().await;
    let long = format!("SELECT '{}' AS s", "x".repeat(100 << 10));
    let status = status_of(&mut c, &long).await;
    assert_eq!(status.code(), Code::OutOfRange, "{status}");
    // Results larger than one message are split, not refused.
    let batches = query(&mut c, "SELECT repeat('y', 1000) AS s FROM range(1000)").await;
    assert_eq!(rows(&batches), 1000);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_cannot_take_more_than_the_memory_pool() {
    let server = TestServer::start(|c| c.memory_limit_bytes = 4 << 20).await;
    let mut c = server.client().await;
    // A hash join's build side cannot spill: past the pool it fails.
    let info = c
        .execute(
            "SELECT count(*) FROM range(3000000) a JOIN range(3000000) b ON a.value = b.value"
                .into(),
            None,
        )
        .await
        .unwrap();
    match fetch(&mut c, info).await.unwrap_err() {
        FlightError::Tonic(s) => assert_eq!(s.code(), Code::ResourceExhausted, "{s}"),
        other => panic!("{other}"),
    }
    server.shutdown().await.unwrap();
}

/// The pinned versions `.ci/run` installs.
const PYTHON_CLIENTS: &str =
    "adbc-driver-flightsql==1.13.0 adbc-driver-manager==1.13.0 pyarrow==26.0.1";

/// A self-signed certificate for 127.0.0.1 and localhost, made with the
/// `openssl` command.
fn self_signed_certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command makes the test certificate: install openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// ADBC's Flight SQL driver (DBAPI) and `pyarrow.flight`, in Python,
/// against a plain and a TLS server (tests/flight_clients.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_clients_adbc_and_pyarrow_flight() {
    let check = std::process::Command::new("python3")
        .args([
            "-c",
            "import adbc_driver_flightsql.dbapi, adbc_driver_manager, pyarrow.flight",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        check.status.success(),
        "the Python Flight SQL clients are missing: python3 -m pip install {PYTHON_CLIENTS}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_certificate(certs.path());
    let plain = TestServer::start(|_| {}).await;
    let tls = TestServer::start(|c| {
        c.tls = Some(spectradb::serve::TlsFiles::read(&cert, &key).unwrap());
    })
    .await;
    let out = tokio::process::Command::new("python3")
        .arg(repo("tests/flight_clients.py"))
        .args(["--uri", &format!("grpc://{}", plain.addr)])
        .args(["--token", TOKEN, "--repo", env!("CARGO_MANIFEST_DIR")])
        .args(["--tls-uri", &format!("grpc+tls://{}", tls.addr)])
        .arg("--ca")
        .arg(&cert)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tests/flight_clients.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("all external client checks passed"),
        "{stdout}"
    );
    plain.shutdown().await.unwrap();
    tls.shutdown().await.unwrap();
}

/// Resident memory of this process in KiB (server and clients share it).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The load test of docs/benchmarks.md: 32 clients for
/// `SPECTRADB_LOAD_SECS` (default 60) seconds on loopback, mixing plain
/// and model queries; some clients drop a stream half-way. Run with
/// `cargo test --test integration flight::load -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "load test: 32 clients for a minute (see docs/benchmarks.md)"]
async fn load_32_clients_mixed_queries() {
    let secs: u64 = std::env::var("SPECTRADB_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = TestServer::start(|_| {}).await;
    table_and_tiny(
        &mut server.client().await,
        "photos",
        "tests/data/photos/dev",
    )
    .await;
    let queries = [
        "SELECT count(*) FROM photos",
        "SELECT id, uri, width(image), height(image) FROM photos ORDER BY id",
        "SELECT id, tiny(image) AS label FROM photos",
        "SELECT tiny(image) AS label, count(*) FROM photos GROUP BY 1",
        "SELECT sum(value) FROM range(200000)",
    ];
    let rss_before = rss_kib();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut clients = Vec::new();
    for i in 0..32usize {
        let mut c = server.client().await;
        clients.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut dropped) = (Vec::new(), Vec::new(), 0u64);
            let mut n = i;
            while Instant::now() < deadline {
                n += 1;
                let sql = queries[n % queries.len()];
                let start = Instant::now();
                if n % 16 == 0 {
                    // Read the first batch and walk away.
                    match c.execute(sql.into(), None).await {
                        Ok(info) => {
                            let t = info.endpoint[0].ticket.clone().unwrap();
                            if let Ok(mut s) = c.do_get(t).await {
                                let _ = s.next().await;
                            }
                            dropped += 1;
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                    continue;
                }
                match c.execute(sql.into(), None).await {
                    Ok(info) => match fetch(&mut c, info).await {
                        Ok(_) => latencies.push(start.elapsed()),
                        Err(e) => errors.push(e.to_string()),
                    },
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (latencies, errors, dropped)
        }));
    }
    let mut peak_rss = rss_before;
    let (mut latencies, mut errors, mut dropped) = (Vec::new(), Vec::new(), 0);
    for c in clients {
        while !c.is_finished() {
            peak_rss = peak_rss.max(rss_kib());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (l, e, d) = c.await.unwrap();
        latencies.extend(l);
        errors.extend(e);
        dropped += d;
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let stats = server.stats.clone();
    eventually("no query is left running", || stats.running_queries() == 0).await;
    println!(
        "load: 32 clients, {secs} s: {} queries ({:.1}/s), {} dropped streams, {} errors; \
         p50 {:?}, p99 {:?}, max {:?}; RSS {} MiB before, peak {} MiB",
        latencies.len(),
        latencies.len() as f64 / secs as f64,
        dropped,
        errors.len(),
        pct(0.5),
        pct(0.99),
        latencies.last().unwrap(),
        rss_before / 1024,
        peak_rss / 1024
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {}",
        errors.len(),
        errors[0]
    );
    server.shutdown().await.unwrap();
}

/// EXPLAIN's plan text over Flight.
async fn explain(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> String {
    strings(&query(c, &format!("EXPLAIN {sql}")).await, 1).join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_families_and_compressed_views_work_remotely() {
    let (server, mut c) = served().await;
    c.execute_update(
        format!(
            "CREATE IMAGE TABLE fashion FROM '{}' WITH (label = 'parent_dir', chroma = 'gray')",
            repo("tests/data/fashion")
        ),
        None,
    )
    .await
    .unwrap();
    let member = |format: &str, file: &str| {
        format!(
            "FORMAT '{format}' FROM '{}'",
            repo(&format!("tests/data/models/{file}"))
        )
    };
    c.execute_update(
        format!(
            "CREATE MODEL fam FAMILY (\n  {},\n  {},\n  {},\n  {}\n) WITH (labels = '{}')",
            member("y s8 28", "fashion_mnist_cnn.onnx"),
            member("y s4 14", "fashion_mnist_cnn_14.onnx"),
            member("y s2 7", "fashion_mnist_cnn_7.onnx"),
            member("y s1 4", "fashion_mnist_cnn_4.onnx"),
            repo("tests/data/models/fashion_mnist_classes.txt")
        ),
        None,
    )
    .await
    .unwrap();
    let calibrated = query(&mut c, "CALIBRATE fam ON fashion USING label").await;
    assert_eq!(rows(&calibrated), 4, "one row per member");
    c.execute_update("SET spectradb.accuracy_target = 0.8".into(), None)
        .await
        .unwrap();
    let plan = explain(&mut c, "SELECT fam(image) FROM fashion").await;
    assert!(
        plan.contains("fam: format=y s4 14 (member 2 of 4;"),
        "{plan}"
    );
    // The remote count is what CALIBRATE counted for the chosen member.
    let right = query(
        &mut c,
        "SELECT count(*) FROM fashion WHERE fam(image) = label",
    )
    .await;
    let catalog = server.db.catalog().unwrap();
    let profile = catalog.profiles.iter().find(|p| p.model == "fam").unwrap();
    assert_eq!(first_i64(&right) as u64, profile.formats[1].correct);
    // A member's error names the member and registers nothing.
    let status = status_of(
        &mut c,
        &format!(
            "CREATE MODEL bad FAMILY ({}, FORMAT 'y s4 14' FROM '{}')",
            member("y s8 28", "fashion_mnist_cnn.onnx"),
            repo("tests/data/models/missing.onnx")
        ),
    )
    .await;
    assert!(
        status.message().contains("member 2"),
        "{}",
        status.message()
    );

    // A compressed view of tiny's raw scores (`tiny_scores`), made and
    // read back remotely, within its bound.
    table_and_tiny(&mut c, "colors", "tests/data/colors").await;
    c.execute_update(
        "CREATE MATERIALIZED VIEW s8 WITH (compression = 'int8') \
         AS SELECT id, tiny_scores(image) AS s FROM colors"
            .into(),
        None,
    )
    .await
    .unwrap();
    let status = strings(&query(&mut c, "SHOW TABLES").await, 5);
    assert!(
        status.iter().any(|s| s.contains("int8 vectors")),
        "{status:?}"
    );
    let stored = vectors(&query(&mut c, "SELECT id, s FROM s8 ORDER BY id").await, 1);
    let exact = vectors(
        &query(
            &mut c,
            "SELECT id, tiny_scores(image) FROM colors ORDER BY id",
        )
        .await,
        1,
    );
    assert_eq!(stored.len(), exact.len());
    assert!(!stored.is_empty());
    for (x, y) in exact.iter().zip(&stored) {
        let half_step = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0 * 0.5;
        for (a, b) in x.iter().zip(y) {
            assert!(
                (a - b).abs() <= half_step * (1.0 + 1e-4) + 1e-7,
                "{a} -> {b}"
            );
        }
    }
    server.shutdown().await.unwrap();
}
