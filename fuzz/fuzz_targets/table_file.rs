//! Arbitrary bytes as an image table file: open it, scan every column and
//! band, build each row's image and a small tensor of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spectradb::codec::tensor::{to_tensor, TensorSpec};
use spectradb::storage::{BandSelection, ImageFileReader};

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = ImageFileReader::from_bytes("fuzz.parquet", data.to_vec()) else {
        return;
    };
    let schema = reader.schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let Ok(scan) = reader.scan(&columns, &BandSelection::all(), 16) else {
        return;
    };
    for batch in scan {
        let Ok(batch) = batch else {
            return;
        };
        for row in 0..batch.num_rows() {
            if let Ok(image) = batch.image(row) {
                let _ = to_tensor(&image, &TensorSpec::imagenet(8));
            }
        }
    }
});
