//! Table files on disk: projection, bytes read, corruption, versions.

use std::sync::Arc;

use arrow_array::{ArrayRef, StringArray};
use arrow_schema::{DataType, Field};
use spectradb::codec::tensor::{to_tensor, TensorSpec};
use spectradb::source::{load_file, SourceOptions};
use spectradb::storage::{
    write_image_file, BandSelection, ImageFileReader, ImageRow, WriteOptions,
};
use spectradb::Error;

use super::common::photos;

fn write_labelled(path: &std::path::Path) -> usize {
    let opts = SourceOptions::default();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for (i, p) in photos("imagenet-labeled").into_iter().enumerate() {
        let (image, _) = load_file(&p, &opts).unwrap();
        labels.push(
            p.file_stem()
                .unwrap()
                .to_string_lossy()
                .rsplit('_')
                .next()
                .unwrap()
                .to_string(),
        );
        rows.push(ImageRow {
            id: i as u64,
            uri: p.display().to_string(),
            image,
        });
    }
    let label: ArrayRef = Arc::new(StringArray::from(labels));
    let field = Arc::new(Field::new("label", DataType::Utf8, false));
    write_image_file(path, &WriteOptions::default(), &rows, &[(field, label)]).unwrap();
    rows.len()
}

#[test]
fn scans_read_only_the_selected_bands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photos.parquet");
    let n = write_labelled(&path);
    let file_len = std::fs::metadata(&path).unwrap().len();

    let count = |cols: &[&str], bands: BandSelection| {
        let r = ImageFileReader::open(&path).unwrap();
        let after_open = r.bytes_read();
        let mut rows = 0;
        for b in r.scan(cols, &bands, 8).unwrap() {
            let b = b.unwrap();
            for i in 0..b.num_rows() {
                if !bands.is_empty() {
                    b.image(i).unwrap();
                }
            }
            rows += b.num_rows();
        }
        assert_eq!(rows, n);
        r.bytes_read() - after_open
    };
    let plain = count(&["id", "label"], BandSelection::none());
    let quarter = count(&["id"], BandSelection::for_scale(4));
    let eighth = count(&["id"], BandSelection::for_scale(1));
    let all = count(&["id"], BandSelection::all());
    println!("file {file_len} B: plain {plain}, s=1 {eighth}, s=4 {quarter}, all {all}");
    assert!(
        plain * 50 < file_len,
        "plain columns must not touch bands: {plain} of {file_len}"
    );
    assert!(eighth < quarter && quarter < all);
    assert!(all <= file_len);
    assert!(
        quarter * 10 < all * 8,
        "the 4x4 corner is a fraction of the file: {quarter} vs {all}"
    );
}

#[test]
fn tensors_from_partial_reads_match_full_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photos.parquet");
    write_labelled(&path);
    let r = ImageFileReader::open(&path).unwrap();
    let spec = TensorSpec::imagenet(224);
    let partial: Vec<_> = r
        .scan(&[], &BandSelection::for_scale(4), 64)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .image(3)
        .map(|img| to_tensor(&img, &spec).unwrap())
        .unwrap();
    let full = to_tensor(
        &r.scan(&[], &BandSelection::all(), 64)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .image(3)
            .unwrap(),
        &spec,
    )
    .unwrap();
    assert_eq!(
        partial, full,
        "a 224 tensor of a 512 photo needs only the 4x4 corner"
    );
    // Asking for more than was read is an error that names the band.
    let img = r
        .scan(&[], &BandSelection::for_scale(2), 64)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .image(0)
        .unwrap();
    let err = to_tensor(&img, &spec).unwrap_err().to_string();
    assert!(err.contains("image.y."), "{err}");
}

#[test]
fn corrupt_and_foreign_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photos.parquet");
    write_labelled(&path);

    // Flip bytes in the middle of the file (inside band data): decoding
    // either fails with a message naming the file or, if the flip hit
    // padding, still succeeds, but never panics.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5A;
    }
    let bad = dir.path().join("bad.parquet");
    std::fs::write(&bad, &bytes).unwrap();
    let mut failures = 0;
    match ImageFileReader::open(&bad) {
        Err(e) => {
            assert!(e.to_string().contains("bad.parquet"), "{e}");
            failures += 1;
        }
        Ok(r) => {
            for b in r.scan(&[], &BandSelection::all(), 4).unwrap() {
                match b {
                    Err(e) => {
                        assert!(
                            e.to_string().contains("bad.parquet") || matches!(e, Error::Arrow(_)),
                            "{e}"
                        );
                        failures += 1;
                    }
                    Ok(b) => {
                        for i in 0..b.num_rows() {
                            if let Err(e) = b.image(i) {
                                assert!(e.to_string().contains("bad.parquet"), "{e}");
                                failures += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures > 0,
        "64 flipped bytes inside band data must be noticed"
    );

    // A truncated file and a Parquet file that is not an image table.
    std::fs::write(&bad, &std::fs::read(&path).unwrap()[..1000]).unwrap();
    let e = ImageFileReader::open(&bad).err().expect("truncated file");
    assert!(e.to_string().contains("bad.parquet"), "{e}");

    let plain = dir.path().join("plain.parquet");
    let batch = arrow_array::RecordBatch::try_from_iter([(
        "x",
        Arc::new(StringArray::from(vec!["a"])) as ArrayRef,
    )])
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&plain).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let e = ImageFileReader::open(&plain)
        .err()
        .expect("foreign file")
        .to_string();
    assert!(
        e.contains("plain.parquet") && e.contains("not a spectradb image table"),
        "{e}"
    );
}
