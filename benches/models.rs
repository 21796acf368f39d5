//! The models benchmark of issue 4: `SELECT model(image) FROM photos` end
//! to end against the Python pipeline a practitioner writes (Pillow decode,
//! resize to 224, normalise, onnxruntime, batch 32) and against the model
//! alone on pre-made tensors, all on one core, in one run.
//!
//! ```text
//! cargo bench --bench models      # corpus in bench-data/corpus (scripts/make_corpus.sh)
//! ```
//! Needs python3 with onnxruntime, numpy and Pillow (installed when missing).
//! Printed: times per image and the ratios; best of three interleaved runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use spectradb::format::model_spec::ModelSpec;
use spectradb::model::runner::Model;
use spectradb::source::{load_file, SourceOptions};
use spectradb::Database;

const REPEATS: usize = 3;
const BATCH: usize = 32;

const PYTHON: &str = r#"
import sys, time, glob
import numpy as np, onnxruntime as ort
from PIL import Image
model, corpus, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 1, 3)
std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 1, 3)
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
s = ort.InferenceSession(model, opts, providers=['CPUExecutionProvider'])
name = s.get_inputs()[0].name
files = sorted(glob.glob(corpus + '/*.jpg'))
start = time.perf_counter()
out = []
for i in range(0, len(files), 32):
    batch = []
    for f in files[i:i + 32]:
        img = Image.open(f).convert('RGB').resize((size, size), Image.BILINEAR)
        x = (np.asarray(img, np.float32) / 255.0 - mean) / std
        batch.append(x.transpose(2, 0, 1))
    out.append(s.run(None, {name: np.stack(batch)})[0].argmax(1))
print(time.perf_counter() - start, len(np.concatenate(out)))
"#;

fn ensure_python() {
    let ok = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy, PIL"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let st = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "onnxruntime==1.31.1",
                "pillow",
            ])
            .status()
            .expect("python3 runs");
        assert!(st.success(), "could not install onnxruntime and pillow");
    }
}

fn python_pipeline(model: &Path, corpus: &Path, size: u32) -> Duration {
    let out = Command::new("python3")
        .args(["-c", PYTHON])
        .arg(model)
        .arg(corpus)
        .arg(size.to_string())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_secs_f64(secs)
}

fn collect(rt: &tokio::runtime::Runtime, db: &Database, sql: &str) -> Vec<RecordBatch> {
    rt.block_on(async { db.sql(sql).await.unwrap().collect().await.unwrap() })
}

fn main() {
    // One core for spectradb's scan, decode and inference.
    std::env::set_var("SPECTRADB_MODEL_THREADS", "1");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = std::env::var_os("SPECTRADB_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench-data/corpus"));
    assert!(
        corpus.is_dir(),
        "no corpus at {}: run bash scripts/make_corpus.sh --out bench-data/corpus --count 1000",
        corpus.display()
    );
    ensure_python();
    let mut jpegs: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    jpegs.sort();
    let n = jpegs.len();
    println!("corpus: {n} JPEGs in {}", corpus.display());

    let db_dir = root.join("bench-data/models.db");
    let _ = std::fs::remove_dir_all(&db_dir);
    let db = Database::open(&db_dir).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    collect(&rt, &db, "SET datafusion.execution.target_partitions = 1");
    // Each repeat computes: the output cache would answer the later ones.
    collect(&rt, &db, "SET spectradb.cache_size = 0");
    collect(
        &rt,
        &db,
        &format!(
            "CREATE IMAGE TABLE photos FROM '{}/*.jpg'",
            corpus.display()
        ),
    );
    let models = root.join("tests/data/models");
    let norm = "mean = '0.485,0.456,0.406', std = '0.229,0.224,0.225'";
    for (name, file) in [
        ("mobilenet", "mobilenet_v2_imagenet.onnx"),
        ("tiny", "tiny_rgb_224.onnx"),
    ] {
        collect(
            &rt,
            &db,
            &format!(
                "CREATE MODEL {name} FROM '{}' WITH (size = 224, {norm}, output = 'class')",
                models.join(file).display()
            ),
        );
    }

    // The model alone: pre-made tensors, batches of 32, one thread.
    let mobilenet = Model::load(
        "m",
        &models.join("mobilenet_v2_imagenet.onnx"),
        ModelSpec::imagenet(224),
        None,
        1,
    )
    .unwrap();
    let sample: Vec<_> = jpegs[..BATCH]
        .iter()
        .map(|p| load_file(p, &SourceOptions::default()).unwrap().0)
        .collect();
    let premade = mobilenet.batch_tensor(&sample).unwrap();

    let per_img = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
    let mut best = [Duration::MAX; 5];
    for _ in 0..REPEATS {
        let t = Instant::now();
        let mut left = n;
        while left > 0 {
            let k = left.min(BATCH);
            mobilenet
                .run(&premade[..k * premade.len() / BATCH], k)
                .unwrap();
            left -= k;
        }
        best[0] = best[0].min(t.elapsed());
        let t = Instant::now();
        let b = collect(&rt, &db, "SELECT count(mobilenet(image)) FROM photos");
        best[1] = best[1].min(t.elapsed());
        assert_eq!(b[0].num_rows(), 1);
        best[2] = best[2].min(python_pipeline(
            &models.join("mobilenet_v2_imagenet.onnx"),
            &corpus,
            224,
        ));
        let t = Instant::now();
        collect(&rt, &db, "SELECT count(tiny(image)) FROM photos");
        best[3] = best[3].min(t.elapsed());
        best[4] = best[4].min(python_pipeline(
            &models.join("tiny_rgb_224.onnx"),
            &corpus,
            224,
        ));
    }
    let [alone, ours, python, tiny_ours, tiny_python] = best.map(per_img);
    println!("MobileNetV2, 224x224, one core, {n} images (ms per image, best of {REPEATS}):");
    println!("  model alone on pre-made tensors   {alone:8.2}");
    println!(
        "  spectradb SELECT mobilenet(image) {ours:8.2}   {:.3}x the model alone (goal <= 1.10)",
        ours / alone
    );
    println!(
        "  Python: Pillow + numpy + ORT      {python:8.2}   spectradb is {:.2}x faster",
        python / ours
    );
    println!("tiny model (inference nearly free: the data path), 224x224:");
    println!("  spectradb SELECT tiny(image)      {tiny_ours:8.2}");
    println!("  Python: Pillow + numpy + ORT      {tiny_python:8.2}   spectradb is {:.2}x faster (goal >= 3)", tiny_python / tiny_ours);
}
