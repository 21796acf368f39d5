//! Image values (the `image` column's blobs) as pixels and tensors.
//!
//! A value carries the bands its scan read, so it decodes at most at the
//! scale those bands make ([`spectradb::image_value::ImageHeader::max_scale`]),
//! and a tensor decodes at the smallest scale that reaches its size, as a
//! model function does.

use ndarray::Array3;
use numpy::{IntoPyArray, PyArray3};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use spectradb::codec::decode::decode_rgb as decode_at;
use spectradb::codec::tensor::{choose_scale, to_tensor_at, Layout, TensorScratch, TensorSpec};
use spectradb::image_value::{decode_image_value, read_image_header};
use spectradb::model::runner::swap_red_blue;
use spectradb::{Error, Result};

use crate::errors;

/// A tensor as one model wants it: size, layout, normalisation, channel order.
#[derive(Debug, Clone, Copy)]
pub struct TensorArgs {
    pub spec: TensorSpec,
    pub bgr: bool,
}

impl TensorArgs {
    /// The shape of one tensor.
    pub fn shape(&self) -> [usize; 3] {
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        match self.spec.layout {
            Layout::Chw => [3, h, w],
            Layout::Hwc => [h, w, 3],
        }
    }
}

/// The largest scale `value` can be decoded at, or why it cannot be.
fn max_scale(value: &[u8]) -> Result<usize> {
    match read_image_header(value)?.max_scale() {
        0 => Err(Error::InvalidArgument(
            "the image value holds no pixel bands (only model outputs): select the image \
             without a model function, or from the table itself"
                .into(),
        )),
        s => Ok(s),
    }
}

/// Writes `value`'s tensor into `out` (`args.spec.len()` floats).
pub fn tensor_into(
    value: &[u8],
    args: &TensorArgs,
    out: &mut [f32],
    scratch: &mut TensorScratch,
) -> Result<()> {
    let most = max_scale(value)?;
    let img = decode_image_value(value)?;
    let spec = &args.spec;
    let s = most.min(choose_scale(
        img.width(),
        img.height(),
        spec.width,
        spec.height,
    ));
    to_tensor_at(&img, spec, s, out, scratch)?;
    if args.bgr {
        swap_red_blue(out, spec.layout);
    }
    Ok(())
}

/// RGB pixels (height x width x 3) of an image value: decoded at scale
/// `scale/8` (by default the largest its bands allow), or resized to
/// `size` = (width, height) from the smallest scale that reaches it.
#[pyfunction]
#[pyo3(signature = (value, scale=None, size=None))]
pub fn decode_rgb<'py>(
    py: Python<'py>,
    value: &[u8],
    scale: Option<usize>,
    size: Option<(u32, u32)>,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let (w, h, data) = py
        .detach(|| -> Result<(u32, u32, Vec<u8>)> {
            let most = max_scale(value)?;
            match size {
                None => {
                    let s = scale.unwrap_or(most);
                    if s > most {
                        return Err(Error::InvalidArgument(format!(
                            "scale {s} needs bands the image value does not hold \
                             (it was read up to scale {most})"
                        )));
                    }
                    let rgb = decode_at(&decode_image_value(value)?, s)?;
                    Ok((rgb.width, rgb.height, rgb.data))
                }
                Some((w, h)) => {
                    // The tensor path with values kept on the 0..255 scale.
                    let args = TensorArgs {
                        spec: TensorSpec {
                            width: w,
                            height: h,
                            layout: Layout::Hwc,
                            mean: [0.0; 3],
                            std: [1.0 / 255.0; 3],
                        },
                        bgr: false,
                    };
                    let mut out = vec![0f32; args.spec.len()];
                    tensor_into(value, &args, &mut out, &mut TensorScratch::new())?;
                    let pixels = out.iter().map(|v| v.round().clamp(0.0, 255.0) as u8);
                    Ok((w, h, pixels.collect()))
                }
            }
        })
        .map_err(errors::error)?;
    let array = Array3::from_shape_vec((h as usize, w as usize, 3), data)
        .map_err(|e| errors::error(format!("decoded pixels have the wrong size: {e}")))?;
    Ok(array.into_pyarray(py))
}

/// A model input tensor (float32) of an image value: `size` x `size`,
/// normalised by `mean` and `std` (R, G, B on the 0..1 scale), in
/// `layout` "chw" or "hwc", with the channels in "rgb" or "bgr" order.
#[pyfunction]
#[pyo3(signature = (value, size, mean, std, layout="chw", order="rgb"))]
pub fn image_tensor<'py>(
    py: Python<'py>,
    value: &[u8],
    size: (u32, u32),
    mean: [f32; 3],
    std: [f32; 3],
    layout: &str,
    order: &str,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    tensor_array(py, value, &tensor_args(size, mean, std, layout, order)?)
}

/// One image value's tensor as a numpy array, decoded with the GIL released.
pub fn tensor_array<'py>(
    py: Python<'py>,
    value: &[u8],
    args: &TensorArgs,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let data = py
        .detach(|| -> Result<Vec<f32>> {
            let mut out = vec![0f32; args.spec.len()];
            tensor_into(value, args, &mut out, &mut TensorScratch::new())?;
            Ok(out)
        })
        .map_err(errors::error)?;
    let array = Array3::from_shape_vec(args.shape(), data)
        .map_err(|e| errors::error(format!("tensor has the wrong size: {e}")))?;
    Ok(array.into_pyarray(py))
}

/// Checked tensor arguments from Python's spelling of them.
pub fn tensor_args(
    (width, height): (u32, u32),
    mean: [f32; 3],
    std: [f32; 3],
    layout: &str,
    order: &str,
) -> PyResult<TensorArgs> {
    let layout = match layout.to_ascii_lowercase().as_str() {
        "chw" => Layout::Chw,
        "hwc" => Layout::Hwc,
        other => {
            return Err(PyValueError::new_err(format!(
                "layout must be 'chw' or 'hwc', got '{other}'"
            )))
        }
    };
    let bgr = match order.to_ascii_lowercase().as_str() {
        "rgb" => false,
        "bgr" => true,
        other => {
            return Err(PyValueError::new_err(format!(
                "order must be 'rgb' or 'bgr', got '{other}'"
            )))
        }
    };
    if width == 0 || height == 0 {
        return Err(PyValueError::new_err(format!(
            "size must be positive, got {width}x{height}"
        )));
    }
    if let Some(s) = std.iter().find(|s| !s.is_finite() || **s == 0.0) {
        return Err(PyValueError::new_err(format!(
            "std must be finite and non-zero, got {s}"
        )));
    }
    Ok(TensorArgs {
        spec: TensorSpec {
            width,
            height,
            layout,
            mean,
            std,
        },
        bgr,
    })
}

/// What an image value's header says: size, planes, bands, largest scale.
#[pyfunction]
pub fn image_info<'py>(py: Python<'py>, value: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let header = read_image_header(value).map_err(errors::error)?;
    let info = PyDict::new(py);
    info.set_item("width", header.width)?;
    info.set_item("height", header.height)?;
    info.set_item("planes", header.chroma.planes())?;
    info.set_item("bands", header.band_count())?;
    info.set_item("max_scale", header.max_scale())?;
    Ok(info)
}
