//! Source files: every JPEG variant, and bad input.

use spectradb::codec::Chroma;
use spectradb::source::{load_bytes, load_file, SourceOptions, SourcePath};
use spectradb::Error;

use super::common::{data_dir, photos};

/// JPEG variants: every file in jpeg-variants ingests or is refused with a clear error.
#[test]
fn every_jpeg_variant_ingests_or_is_refused_clearly() {
    let mut report = String::new();
    for chroma in [Chroma::Yuv420, Chroma::Yuv444, Chroma::Gray] {
        let mut opts = SourceOptions::default();
        opts.encode.chroma = chroma;
        for path in photos("jpeg-variants") {
            match load_file(&path, &opts) {
                Ok((img, how)) => {
                    let reference = image::open(&path).unwrap();
                    // Orientation may swap the sides; the pixel count must match.
                    assert_eq!(
                        img.width() as u64 * img.height() as u64,
                        reference.width() as u64 * reference.height() as u64,
                        "{}",
                        path.display()
                    );
                    assert_eq!(img.chroma(), chroma);
                    report += &format!("{} {:?} {}\n", chroma.name(), how, path.display());
                }
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&path.display().to_string()),
                        "error must name the file: {msg}"
                    );
                    report += &format!("{} refused: {msg}\n", chroma.name());
                }
            }
        }
    }
    println!("{report}");
    // These are all valid files: today every one of them ingests.
    assert!(!report.contains("refused"), "{report}");
}

#[test]
fn sequential_jpegs_take_the_coefficient_path_and_others_fall_back() {
    let opts = SourceOptions::default();
    let dir = data_dir().join("photos/jpeg-variants");
    let how = |f: &str| load_file(&dir.join(f), &opts).unwrap().1;
    assert_eq!(
        how("flower.png.im_q85_420.jpg"),
        SourcePath::JpegCoefficients
    );
    assert_eq!(
        how("flower_small.q85_420_non_interleaved.jpg"),
        SourcePath::JpegCoefficients
    );
    assert_eq!(
        how("flower.png.im_q85_420_R13B.jpg"),
        SourcePath::JpegCoefficients
    );
    assert_eq!(
        how("flower.png.im_q85_gray.jpg"),
        SourcePath::JpegCoefficients
    );
    assert_eq!(how("flower.png.im_q85_420_progr.jpg"), SourcePath::Pixels);
    assert_eq!(
        how("flower.png.im_q85_444.jpg"),
        SourcePath::Pixels,
        "444 into a 420 table is resampled"
    );
    assert_eq!(how("flower.png.im_q85_rgb.jpg"), SourcePath::Pixels);
}

fn expect_decode_error(name: &str, bytes: &[u8], needle: &str) {
    match load_bytes(name, bytes, &SourceOptions::default()) {
        Err(e @ Error::ImageDecode { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains(needle), "expected '{needle}' in: {msg}");
        }
        Err(e) => panic!("{name}: expected a decode error, got {e}"),
        Ok((_, how)) => panic!("{name}: expected a decode error, got an image ({how:?})"),
    }
}

#[test]
fn bad_input_gets_a_typed_error_naming_the_file() {
    // Sequential JPEGs take the coefficient path, progressive ones zune-jpeg's.
    let jpeg = std::fs::read(
        data_dir().join("photos/jpeg-variants/flower_small.q85_420_non_interleaved.jpg"),
    )
    .unwrap();
    expect_decode_error("half.jpg", &jpeg[..jpeg.len() / 2], "truncated");
    expect_decode_error("tiny.jpg", &jpeg[..300], "truncated");
    let progressive =
        std::fs::read(data_dir().join("photos/imagenet-labeled/imagenet_00_243.jpg")).unwrap();
    expect_decode_error(
        "half_progressive.jpg",
        &progressive[..progressive.len() / 2],
        "",
    );
    expect_decode_error("empty.jpg", &[], "empty");
    expect_decode_error(
        "notes.txt",
        b"this is not an image at all",
        "not a recognised image format",
    );
    let png = std::fs::read(data_dir().join("photos/dev/skimage_chelsea.png")).unwrap();
    match load_bytes("half.png", &png[..png.len() / 2], &SourceOptions::default()) {
        Err(e) => assert!(e.to_string().contains("half.png"), "{e}"),
        Ok(_) => panic!("a truncated PNG must not ingest"),
    }
    // Every prefix of a JPEG: an error or an image, never a panic.
    for cut in (0..jpeg.len()).step_by(997) {
        let _ = load_bytes("cut.jpg", &jpeg[..cut], &SourceOptions::default());
    }
}

/// A JPEG whose frame header claims 65,000 x 65,000 pixels.
fn bomb_jpeg() -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.extend([0xFF, 0xC0, 0, 11, 8]);
    v.extend(65000u16.to_be_bytes());
    v.extend(65000u16.to_be_bytes());
    v.extend([1, 1, 0x11, 0]);
    v.extend([0xFF, 0xD9]);
    v
}

/// A PNG whose header claims 100,000 x 100,000 pixels (CRC is correct).
fn bomb_png() -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let crc = crc32(&ihdr);
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend(13u32.to_be_bytes());
    v.extend(&ihdr);
    v.extend(crc.to_be_bytes());
    // A few bytes of real zlib data, as a bomb would carry.
    let mut idat = b"IDAT".to_vec();
    idat.extend([0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]);
    v.extend(9u32.to_be_bytes());
    v.extend(&idat);
    v.extend(crc32(&idat).to_be_bytes());
    v
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn decompression_bombs_are_refused_before_decoding() {
    for (name, bytes) in [("bomb.jpg", bomb_jpeg()), ("bomb.png", bomb_png())] {
        match load_bytes(name, &bytes, &SourceOptions::default()) {
            Err(e @ Error::ImageTooLarge { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(name) && msg.contains("limit"), "{msg}");
            }
            Err(e) => panic!("{name}: expected ImageTooLarge, got {e}"),
            Ok(_) => panic!("{name}: expected ImageTooLarge, got an image"),
        }
    }
}
