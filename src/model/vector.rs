//! Distances between embeddings, so top-k search is plain SQL:
//! `cosine_similarity(a, b)`, `cosine_distance(a, b)`, `l2_distance(a, b)`
//! over lists of floats (`FixedSizeList<Float32>` from a model, or array
//! literals).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Builder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float32Type};
use datafusion::common::{exec_err, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Metric {
    CosineSimilarity,
    CosineDistance,
    L2,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct VectorFn {
    metric: Metric,
    signature: Signature,
}

/// The three distance functions.
pub fn vector_functions() -> Vec<ScalarUDF> {
    [Metric::CosineSimilarity, Metric::CosineDistance, Metric::L2]
        .into_iter()
        .map(|metric| {
            ScalarUDF::from(VectorFn {
                metric,
                signature: Signature::any(2, Volatility::Immutable),
            })
        })
        .collect()
}

/// Cosine similarity (`None` when a vector is all zeros) and L2 distance.
fn cosine_and_l2(x: &[f32], y: &[f32]) -> (Option<f64>, f64) {
    let (mut dot, mut nx, mut ny, mut l2) = (0f64, 0f64, 0f64, 0f64);
    for (p, q) in x.iter().zip(y) {
        let (p, q) = (*p as f64, *q as f64);
        dot += p * q;
        nx += p * p;
        ny += q * q;
        l2 += (p - q) * (p - q);
    }
    let cos = if nx == 0.0 || ny == 0.0 {
        None
    } else {
        Some(dot / (nx.sqrt() * ny.sqrt()))
    };
    (cos, l2.sqrt())
}

/// Cosine similarity of two equal-length vectors (`None` for a zero vector).
pub fn cosine(x: &[f32], y: &[f32]) -> Option<f32> {
    cosine_and_l2(x, y).0.map(|c| c as f32)
}

fn as_f32_lists(name: &str, a: &ArrayRef) -> DfResult<ArrayRef> {
    let list = DataType::List(Arc::new(Field::new("item", DataType::Float32, true)));
    match a.data_type() {
        DataType::FixedSizeList(..) | DataType::List(_) | DataType::LargeList(_) => {
            Ok(cast(a, &list)?)
        }
        DataType::Null => Ok(cast(a, &list)?),
        other => exec_err!("{name}: expected a list of numbers (an embedding), got {other}"),
    }
}

impl ScalarUDFImpl for VectorFn {
    fn name(&self) -> &str {
        match self.metric {
            Metric::CosineSimilarity => "cosine_similarity",
            Metric::CosineDistance => "cosine_distance",
            Metric::L2 => "l2_distance",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let name = self.name();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let a = as_f32_lists(name, &arrays[0])?;
        let b = as_f32_lists(name, &arrays[1])?;
        let (a, b) = (a.as_list::<i32>(), b.as_list::<i32>());
        let mut out = Float64Builder::with_capacity(a.len());
        for i in 0..a.len() {
            if a.is_null(i) || b.is_null(i) {
                out.append_null();
                continue;
            }
            let (va, vb) = (a.value(i), b.value(i));
            let (x, y) = (
                va.as_primitive::<Float32Type>(),
                vb.as_primitive::<Float32Type>(),
            );
            if x.len() != y.len() {
                return exec_err!(
                    "{name}: vectors have different lengths ({} and {}) in row {i}",
                    x.len(),
                    y.len()
                );
            }
            let (cos, l2) = cosine_and_l2(x.values(), y.values());
            match self.metric {
                Metric::CosineSimilarity => out.append_option(cos),
                Metric::CosineDistance => out.append_option(cos.map(|c| 1.0 - c)),
                Metric::L2 => out.append_value(l2),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
