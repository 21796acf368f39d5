//! Source image files (JPEG, PNG, WebP) -> [`CoefficientImage`].
//!
//! Two paths: a sequential JPEG whose layout matches the table is taken
//! over coefficient for coefficient ([`jpeg`]); everything else is decoded
//! to pixels (the `image` crate, EXIF orientation applied) and encoded.

pub mod jpeg;

use std::io::Cursor;
use std::path::Path;

use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::codec::encode::{encode_gray, encode_rgb, EncodeOptions};
use crate::codec::{CoefficientImage, MAX_DIMENSION};
use crate::error::{Error, Result};
use jpeg::{read_coefficients, JpegError};

/// How source images are turned into stored images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOptions {
    /// Chroma layout and quality of the table (quality applies to the pixel path).
    pub encode: EncodeOptions,
    /// Largest image accepted, in pixels (decompression-bomb guard); table
    /// files hold at most [`crate::storage::layout::MAX_PIXELS`].
    pub max_pixels: u64,
    /// Take a JPEG's own coefficients when its layout allows.
    pub jpeg_passthrough: bool,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            encode: EncodeOptions::default(),
            max_pixels: crate::storage::layout::MAX_PIXELS,
            jpeg_passthrough: true,
        }
    }
}

/// Which path an image took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePath {
    /// JPEG coefficients taken over as they are.
    JpegCoefficients,
    /// Decoded to pixels and encoded at the table's quality.
    Pixels,
}

/// Reads and converts the file at `path` (a local path or an `s3://` URL).
pub fn load_file(path: &Path, opts: &SourceOptions) -> Result<(CoefficientImage, SourcePath)> {
    let bytes = crate::storage::remote::read_all(path)?;
    load_bytes(&path.display().to_string(), &bytes, opts)
}

/// Converts an in-memory file; `name` is used in error messages.
pub fn load_bytes(
    name: &str,
    bytes: &[u8],
    opts: &SourceOptions,
) -> Result<(CoefficientImage, SourcePath)> {
    let decode_err = |reason: String| Error::ImageDecode {
        path: name.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(decode_err("the file is empty".into()));
    }
    let format = image::guess_format(bytes).map_err(|_| {
        decode_err("not a recognised image format (expected JPEG, PNG or WebP)".into())
    })?;
    if format == ImageFormat::Jpeg && opts.jpeg_passthrough {
        match read_coefficients(bytes, opts.max_pixels) {
            Ok(j) => {
                let upright = j
                    .exif
                    .as_deref()
                    .and_then(Orientation::from_exif_chunk)
                    .is_none_or(|o| o == Orientation::NoTransforms);
                if upright {
                    if let Some(img) = j.image.with_chroma(opts.encode.chroma) {
                        return Ok((img, SourcePath::JpegCoefficients));
                    }
                }
            }
            Err(JpegError::Invalid(reason)) => return Err(decode_err(reason)),
            Err(JpegError::TooLarge { width, height }) => {
                return Err(too_large(name, width, height, opts))
            }
            Err(JpegError::Unsupported(_)) => {}
        }
    }
    let img = if format == ImageFormat::Jpeg {
        decode_jpeg_pixels(name, bytes, opts)?
    } else {
        decode_pixels(name, bytes, format, opts)?
    };
    Ok((img, SourcePath::Pixels))
}

fn too_large(name: &str, width: u32, height: u32, opts: &SourceOptions) -> Error {
    Error::ImageTooLarge {
        path: name.to_string(),
        width: width as u64,
        height: height as u64,
        limit: opts.max_pixels,
    }
}

/// JPEGs the coefficient path does not cover: zune-jpeg in strict mode,
/// so a truncated or damaged file is an error rather than a grey smear.
fn decode_jpeg_pixels(name: &str, bytes: &[u8], opts: &SourceOptions) -> Result<CoefficientImage> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let decode_err = |e: zune_jpeg::errors::DecodeErrors| Error::ImageDecode {
        path: name.to_string(),
        reason: e.to_string(),
    };
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(u16::MAX as usize)
        .set_max_height(u16::MAX as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(decode_err)?;
    let (w, h) = decoder
        .dimensions()
        .ok_or_else(|| Error::Internal("JPEG headers decoded without dimensions".into()))?;
    let (w, h) = (w as u32, h as u32);
    if w as u64 * h as u64 > opts.max_pixels {
        return Err(too_large(name, w, h, opts));
    }
    let grey = decoder.input_colorspace() == Some(ColorSpace::Luma);
    let out = if grey {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    decoder.set_options(options.jpeg_set_out_colorspace(out));
    let pixels = decoder.decode().map_err(decode_err)?;
    let orientation = decoder
        .exif()
        .and_then(|e| Orientation::from_exif_chunk(e))
        .unwrap_or(Orientation::NoTransforms);
    let mut img = if grey {
        image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
    } else {
        image::RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    }
    .ok_or_else(|| Error::Internal(format!("{name}: JPEG decoder returned a short buffer")))?;
    img.apply_orientation(orientation);
    encode_dynamic(name, &img, grey, opts)
}

fn encode_dynamic(
    name: &str,
    img: &DynamicImage,
    grey: bool,
    opts: &SourceOptions,
) -> Result<CoefficientImage> {
    let (w, h) = (img.width(), img.height());
    if w > MAX_DIMENSION || h > MAX_DIMENSION {
        return Err(Error::ImageDecode {
            path: name.to_string(),
            reason: format!("{w}x{h} pixels: a side over {MAX_DIMENSION} cannot be stored"),
        });
    }
    if grey {
        encode_gray(img.to_luma8().as_raw(), w, h, opts.encode)
    } else {
        encode_rgb(img.to_rgb8().as_raw(), w, h, opts.encode)
    }
}

fn decode_pixels(
    name: &str,
    bytes: &[u8],
    format: ImageFormat,
    opts: &SourceOptions,
) -> Result<CoefficientImage> {
    let decode_err = |e: image::ImageError| Error::ImageDecode {
        path: name.to_string(),
        reason: e.to_string(),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(Limits::no_limits());
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    if width as u64 * height as u64 > opts.max_pixels {
        return Err(too_large(name, width, height, opts));
    }
    if width == 0 || height == 0 {
        return Err(Error::ImageDecode {
            path: name.to_string(),
            reason: "image has no pixels".into(),
        });
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(16));
    decoder.set_limits(limits).map_err(decode_err)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let color = decoder.color_type();
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    img.apply_orientation(orientation);
    let grey = matches!(
        color,
        ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16
    );
    encode_dynamic(name, &img, grey, opts)
}
