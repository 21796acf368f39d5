//! Fixtures shared by the integration tests.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type};
use spectradb::ingest::{ingest, IngestOptions, IngestReport};
use spectradb::storage::catalog::DatabaseDir;
use spectradb::Database;

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The photos under `tests/data/photos/<sub>`, sorted.
pub fn photos(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir().join("photos").join(sub))
        .expect("fixture folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// The image as the `image` crate decodes it, RGB8: "the decoded source".
pub fn decoded_rgb(path: &Path) -> (u32, u32, Vec<u8>) {
    let img = image::open(path).expect("fixture decodes").to_rgb8();
    (img.width(), img.height(), img.into_raw())
}

/// Ingests `files` into `table` as one committed write.
pub fn ingest_committed(
    db: &DatabaseDir,
    table: &str,
    create: bool,
    files: &[PathBuf],
    opts: &IngestOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> spectradb::Result<IngestReport> {
    let mut tx = db.begin()?;
    let report = ingest(&mut tx, table, create, files, opts, progress)?;
    tx.commit()?;
    Ok(report)
}

/// The batches of `sql`, which must succeed.
pub async fn rows(db: &Database, sql: &str) -> Vec<RecordBatch> {
    db.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The error `sql` fails with, planning or running.
pub async fn error(db: &Database, sql: &str) -> String {
    match db.sql(sql).await {
        Err(e) => e.to_string(),
        Ok(df) => match df.collect().await {
            Err(e) => spectradb::Error::from(e).to_string(),
            Ok(_) => panic!("{sql} succeeded"),
        },
    }
}

/// Column `col` of every row of a result, as text (any type, cast).
pub fn strings(batches: &[RecordBatch], col: usize) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let c = arrow::compute::cast(b.column(col), &DataType::Utf8).expect("castable to text");
        let c = c.as_string::<i32>();
        out.extend((0..c.len()).map(|i| c.value(i).to_string()));
    }
    out
}

/// Every file under `dir`, at any depth.
/// A float vector column's rows (model scores or embeddings).
pub fn vectors(batches: &[RecordBatch], col: usize) -> Vec<Vec<f32>> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(col).as_fixed_size_list().clone();
            (0..c.len()).map(move |i| c.value(i).as_primitive::<Float32Type>().values().to_vec())
        })
        .collect()
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(files_under(&p));
        } else {
            v.push(p);
        }
    }
    v
}

/// MobileNetV2's preprocessing: ImageNet pixels at 224 x 224, mean and std.
pub const IMAGENET_INPUT: &str =
    "input = 'pixels', size = 224, mean = '0.485,0.456,0.406', std = '0.229,0.224,0.225'";

/// `CREATE MODEL` of `tests/data/models/<file>`, a model of the MobileNetV2
/// family (the classifier or its backbone) that gives `output`.
pub fn create_imagenet_model(name: &str, file: &str, output: &str) -> String {
    format!(
        "CREATE MODEL {name} FROM 'tests/data/models/{file}' \
         WITH ({IMAGENET_INPUT}, output = '{output}')"
    )
}

/// `CREATE MODEL mobilenet`: MobileNetV2's ImageNet classifier, giving the class.
pub fn create_mobilenet() -> String {
    create_imagenet_model("mobilenet", "mobilenet_v2_imagenet.onnx", "class")
}
