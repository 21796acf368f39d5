//! Scalar functions over the `image` column: `width`, `height`,
//! `to_png(image [, scale])` and `thumbnail(image, max_side)`.
//!
//! Each takes an image value (see [`crate::image_value`]) and works from the
//! bands it carries; a null image gives a null result.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, Int64Array, UInt32Builder};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{exec_err, DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::codec::decode::decode_rgb;
use crate::codec::tensor::choose_scale;
use crate::error::{Error, Result};
use crate::image_value::{binary_values, decode_image_value, read_image_header};

/// All image functions, ready to register with a `SessionContext`.
pub fn image_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(ImageFn::new(ImageFnKind::Width)),
        ScalarUDF::from(ImageFn::new(ImageFnKind::Height)),
        ScalarUDF::from(ImageFn::new(ImageFnKind::ToPng)),
        ScalarUDF::from(ImageFn::new(ImageFnKind::Thumbnail)),
    ]
}

/// PNG bytes of an image value decoded at scale `s/8`.
pub fn png_at_scale(bytes: &[u8], s: usize) -> Result<Vec<u8>> {
    let rgb = decode_rgb(&decode_image_value(bytes)?, s)?;
    let img = image::RgbImage::from_raw(rgb.width, rgb.height, rgb.data)
        .ok_or_else(|| Error::Internal("decoded buffer has the wrong size".into()))?;
    encode_png(&img)
}

/// Encodes RGB pixels as PNG.
fn encode_png(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::Internal(format!("PNG encoding failed: {e}")))?;
    Ok(out.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ImageFnKind {
    Width,
    Height,
    ToPng,
    Thumbnail,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ImageFn {
    kind: ImageFnKind,
    signature: Signature,
}

impl ImageFn {
    fn new(kind: ImageFnKind) -> Self {
        let mut variants = Vec::new();
        for image in [DataType::LargeBinary, DataType::Binary] {
            match kind {
                ImageFnKind::Width | ImageFnKind::Height => {
                    variants.push(TypeSignature::Exact(vec![image]))
                }
                ImageFnKind::ToPng => {
                    variants.push(TypeSignature::Exact(vec![image.clone()]));
                    variants.push(TypeSignature::Exact(vec![image, DataType::Int64]));
                }
                ImageFnKind::Thumbnail => {
                    variants.push(TypeSignature::Exact(vec![image, DataType::Int64]))
                }
            }
        }
        ImageFn {
            kind,
            signature: Signature::one_of(variants, Volatility::Immutable),
        }
    }
}

fn to_df(fname: &str, e: Error) -> DataFusionError {
    Error::Function {
        name: fname.to_string(),
        source: Box::new(e),
    }
    .into()
}

/// The image argument as optional byte slices, whichever binary type it has.
fn image_values(a: &ArrayRef) -> DfResult<Vec<Option<&[u8]>>> {
    match binary_values(a.as_ref()) {
        Some(v) => Ok(v),
        None => exec_err!("expected an image column, got {}", a.data_type()),
    }
}

impl ScalarUDFImpl for ImageFn {
    fn name(&self) -> &str {
        match self.kind {
            ImageFnKind::Width => "width",
            ImageFnKind::Height => "height",
            ImageFnKind::ToPng => "to_png",
            ImageFnKind::Thumbnail => "thumbnail",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            ImageFnKind::Width | ImageFnKind::Height => DataType::UInt32,
            ImageFnKind::ToPng | ImageFnKind::Thumbnail => DataType::Binary,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let fname = self.name();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let images = image_values(&arrays[0])?;
        let ints: Option<&Int64Array> = arrays.get(1).map(|a| a.as_primitive::<Int64Type>());
        let out: ArrayRef = match self.kind {
            ImageFnKind::Width | ImageFnKind::Height => {
                let mut b = UInt32Builder::with_capacity(images.len());
                for v in &images {
                    match v {
                        None => b.append_null(),
                        Some(bytes) => {
                            let h = read_image_header(bytes).map_err(|e| to_df(fname, e))?;
                            b.append_value(if self.kind == ImageFnKind::Width {
                                h.width
                            } else {
                                h.height
                            });
                        }
                    }
                }
                Arc::new(b.finish())
            }
            ImageFnKind::ToPng | ImageFnKind::Thumbnail => {
                let mut b = BinaryBuilder::with_capacity(images.len(), 0);
                for (row, v) in images.iter().enumerate() {
                    let arg = ints.filter(|a| !a.is_null(row)).map(|a| a.value(row));
                    let (Some(bytes), false) = (v, ints.is_some() && arg.is_none()) else {
                        b.append_null();
                        continue;
                    };
                    let png = self.png(bytes, arg).map_err(|e| to_df(fname, e))?;
                    b.append_value(png);
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

impl ImageFn {
    fn png(&self, bytes: &[u8], arg: Option<i64>) -> Result<Vec<u8>> {
        let header = read_image_header(bytes)?;
        let available = header.max_scale();
        if available == 0 {
            return Err(Error::InvalidArgument(
                "the image value carries no complete band corner to decode".into(),
            ));
        }
        match self.kind {
            ImageFnKind::ToPng => {
                let s = match arg {
                    None => available,
                    Some(s) if (1..=8).contains(&s) => s as usize,
                    Some(s) => {
                        return Err(Error::InvalidArgument(format!(
                            "scale must be 1..8 (eighths of full size), got {s}"
                        )))
                    }
                };
                png_at_scale(bytes, s)
            }
            _ => {
                let side = match arg {
                    Some(n) if (1..=65_535).contains(&n) => n as u32,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "max_side must be 1..65535 pixels, got {}",
                            arg.unwrap_or_default()
                        )))
                    }
                };
                let (w, h) = (header.width, header.height);
                let f = (side as f64 / w.max(h) as f64).min(1.0);
                let (tw, th) = (
                    ((w as f64 * f).round() as u32).max(1),
                    ((h as f64 * f).round() as u32).max(1),
                );
                let s = choose_scale(w, h, tw, th).min(available);
                let rgb = decode_rgb(&decode_image_value(bytes)?, s)?;
                let rgb = image::RgbImage::from_raw(rgb.width, rgb.height, rgb.data)
                    .ok_or_else(|| Error::Internal("decoded buffer has the wrong size".into()))?;
                if (rgb.width(), rgb.height()) == (tw, th) {
                    return encode_png(&rgb);
                }
                encode_png(&image::imageops::resize(
                    &rgb,
                    tw,
                    th,
                    image::imageops::FilterType::Triangle,
                ))
            }
        }
    }
}
