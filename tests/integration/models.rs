//! Models on real photos: MobileNetV2's accuracy on the 20 labelled
//! ImageNet photos, agreement with Python's onnxruntime on the same
//! pixels, and what happens without ONNX Runtime.

use std::io::Write;
use std::process::Command;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use spectradb::format::model_spec::ModelSpec;
use spectradb::model::runner::Model;
use spectradb::source::{load_file, SourceOptions};
use spectradb::BlockingDatabase;

use super::common::{data_dir, photos};

const MOBILENET: &str = "CREATE MODEL mobilenet FROM 'tests/data/models/mobilenet_v2_imagenet.onnx' \
     WITH (input = 'pixels', size = 224, mean = '0.485,0.456,0.406', std = '0.229,0.224,0.225', output = 'class')";

/// The class index in `imagenet_NN_<class>.jpg`.
fn true_class(uri: &str) -> i64 {
    let stem = uri.rsplit('/').next().unwrap().trim_end_matches(".jpg");
    stem.rsplit('_').next().unwrap().parse().unwrap()
}

#[test]
fn mobilenet_top1_on_labelled_photos_and_agreement_with_onnxruntime() {
    let db = BlockingDatabase::in_memory().unwrap();
    db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled'")
        .unwrap();
    db.sql(MOBILENET).unwrap();
    let batches = db
        .sql("SELECT id, uri, mobilenet(image) AS class FROM photos ORDER BY id")
        .unwrap();
    let mut ours = Vec::new();
    for b in &batches {
        let uris = b.column(1).as_string::<i32>();
        let classes = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            ours.push((uris.value(i).to_string(), classes.value(i)));
        }
    }
    assert_eq!(ours.len(), 20);
    let right = ours.iter().filter(|(u, c)| true_class(u) == *c).count();

    // The same decoded-and-resized pixels through Python's onnxruntime.
    let files = photos("imagenet-labeled");
    let model_path = data_dir().join("models/mobilenet_v2_imagenet.onnx");
    let model = Model::load("m", &model_path, ModelSpec::imagenet(224), None, 2).unwrap();
    let images: Vec<_> = files
        .iter()
        .map(|f| load_file(f, &SourceOptions::default()).unwrap().0)
        .collect();
    let tensor = model.batch_tensor(&images).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("batch.f32");
    let mut f = std::fs::File::create(&raw).unwrap();
    for v in &tensor {
        f.write_all(&v.to_le_bytes()).unwrap();
    }
    drop(f);
    let script = format!(
        "import numpy as np, onnxruntime as ort\n\
         x = np.fromfile({raw:?}, dtype='<f4').reshape(20, 3, 224, 224)\n\
         s = ort.InferenceSession({model:?}, providers=['CPUExecutionProvider'])\n\
         print(' '.join(str(int(i)) for i in s.run(None, {{'input': x}})[0].argmax(1)))\n",
        raw = raw.display().to_string(),
        model = model_path.display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 with onnxruntime (installed by .ci/run) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python: Vec<i64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let agree = ours
        .iter()
        .zip(&python)
        .filter(|((_, c), p)| c == *p)
        .count();
    println!("MobileNetV2 top-1: {right}/20 right; agrees with Python onnxruntime on {agree}/20");
    assert!(right >= 17, "top-1 {right}/20: {ours:?}");
    assert_eq!(agree, 20, "ours {ours:?} python {python:?}");
}

#[test]
fn without_onnx_runtime_the_error_says_how_to_install_it() {
    let bin = env!("CARGO_BIN_EXE_spectradb");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let db = db.to_str().unwrap();
    let run = |env: Option<&str>, sql: &str| {
        let mut c = Command::new(bin);
        c.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([db, "-c", sql]);
        if let Some(v) = env {
            c.env("SPECTRADB_ONNXRUNTIME", v);
        }
        c.output().unwrap()
    };
    let out = run(None, "CREATE IMAGE TABLE colors FROM 'tests/data/colors'; CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx' WITH (labels = 'tests/data/models/tiny_rgb_labels.txt')");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The database opens and plain queries work without the runtime ...
    let missing = dir.path().join("no-such-libonnxruntime.so");
    let missing = missing.to_str().unwrap();
    let out = run(Some(missing), "SELECT count(*) AS n FROM colors");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... and a model call says what is missing and how to get it.
    let out = run(Some(missing), "SELECT tiny(image) FROM colors");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SPECTRADB_ONNXRUNTIME is set to")
            && err.contains("pip install onnxruntime==1.31.1"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The model survives reopening with the runtime.
    let out = run(
        None,
        "SELECT count(*) AS n FROM colors WHERE tiny(image) = 'red'",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| 1 |"));
}
