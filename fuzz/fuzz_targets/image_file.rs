//! Arbitrary bytes as an image file (JPEG, PNG, WebP), through the entry
//! ingest uses, then a small tensor of whatever image came out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spectradb::codec::tensor::{to_tensor, TensorSpec};
use spectradb::source::{load_bytes, SourceOptions, SourcePath};

fuzz_target!(|data: &[u8]| {
    // A lower pixel cap than ingest's default keeps each run fast; the cap
    // itself is checked the same way whatever its value.
    let opts = SourceOptions {
        max_pixels: 1 << 22,
        ..SourceOptions::default()
    };
    let Ok((image, path)) = load_bytes("fuzz", data, &opts) else {
        return;
    };
    let _ = to_tensor(&image, &TensorSpec::imagenet(16));
    if path == SourcePath::JpegCoefficients {
        // The same JPEG through the pixel decoder too.
        let pixels = SourceOptions {
            jpeg_passthrough: false,
            ..opts
        };
        if let Ok((image, _)) = load_bytes("fuzz", data, &pixels) {
            let _ = to_tensor(&image, &TensorSpec::imagenet(16));
        }
    }
});
