//! Fixtures shared by the integration tests.

use std::path::{Path, PathBuf};

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
