//! Compressed feature maps: how a materialized view stores its float
//! vector columns (`WITH (compression = 'f16' | 'int8')`).
//!
//! A view of a backbone's 1280-d output is 5 KB a row as float32, and a
//! head query reads all of it. Half floats halve that; int8 with a scale
//! per vector quarters it. Both stay plain Parquet that pyarrow and DuckDB
//! read: a half-float list column, or a struct of an int8 list (`values`)
//! and its float32 `scale`. Columns are decoded back to the float32 lists
//! they were (same list kind, same item field) when the view is loaded,
//! so queries and heads never see the stored form.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int8Array, LargeListArray,
    ListArray, RecordBatch, StructArray,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Float32Type, Int8Type, Schema, SchemaRef,
};

use crate::error::{Error, Result};
use crate::storage::catalog::Compression;

/// The struct fields of an int8 column.
const VALUES: &str = "values";
const SCALE: &str = "scale";

/// The largest finite half float.
const HALF_MAX: f32 = 65504.0;

/// Whether `data_type` is a list of float32 (what model outputs are).
fn is_float_vector(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
            if f.data_type() == &DataType::Float32
    )
}

/// The same list type with items of `item` (name and nullability kept).
fn with_items(list: &DataType, item: DataType) -> DataType {
    let swap = |f: &FieldRef| Arc::new(f.as_ref().clone().with_data_type(item.clone()));
    match list {
        DataType::List(f) => DataType::List(swap(f)),
        DataType::LargeList(f) => DataType::LargeList(swap(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(swap(f), *n),
        other => other.clone(),
    }
}

/// The columns of `schema` that `compression` stores compressed; an error
/// when it asks for compression and there is nothing to compress.
pub fn compressible_columns(schema: &Schema, compression: Compression) -> Result<Vec<String>> {
    if compression == Compression::None {
        return Ok(Vec::new());
    }
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| is_float_vector(f.data_type()))
        .map(|f| f.name().clone())
        .collect();
    if columns.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "compression = '{}' stores float vectors (model embeddings or scores) compactly, \
             and the view's query returns none (columns: {})",
            compression.name(),
            schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(columns)
}

/// `batches` with `columns` stored as `compression` says, and their schema.
pub fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    columns: &[String],
    compression: Compression,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    map_columns(schema, batches, columns, |column| match compression {
        Compression::None => Ok(column.clone()),
        Compression::F16 => {
            let values = list_values(column.as_ref());
            let floats = values.as_primitive::<Float32Type>();
            if let Some(x) = floats
                .iter()
                .flatten()
                .find(|x| x.is_finite() && x.abs() > HALF_MAX)
            {
                return Err(Error::InvalidArgument(format!(
                    "compression = 'f16': a value {x} is beyond half floats' range (±{HALF_MAX}); \
                     use compression = 'int8', which scales each vector"
                )));
            }
            let target = with_items(column.data_type(), DataType::Float16);
            Ok(cast(column, &target)?)
        }
        Compression::Int8 => quantize(column),
    })
}

/// The float32 columns `encode` was given, from what it stored.
pub fn decode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    columns: &[String],
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    map_columns(schema, batches, columns, |column| {
        match column.data_type() {
            DataType::Struct(_) => dequantize(column),
            list => Ok(cast(column, &with_items(list, DataType::Float32))?),
        }
    })
}

/// Applies `f` to the named columns of every batch.
fn map_columns(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    columns: &[String],
    f: impl Fn(&ArrayRef) -> Result<ArrayRef>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let chosen: Vec<bool> = schema
        .fields()
        .iter()
        .map(|field| columns.contains(field.name()))
        .collect();
    let mut out_schema = None;
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let arrays = batch
            .columns()
            .iter()
            .zip(&chosen)
            .map(|(c, &chosen)| if chosen { f(c) } else { Ok(c.clone()) })
            .collect::<Result<Vec<_>>>()?;
        let fields: Fields = schema
            .fields()
            .iter()
            .zip(&arrays)
            .map(|(field, a)| field.as_ref().clone().with_data_type(a.data_type().clone()))
            .collect();
        let s = out_schema
            .get_or_insert_with(|| Arc::new(Schema::new(fields)))
            .clone();
        out.push(RecordBatch::try_new(s, arrays)?);
    }
    let out_schema = match out_schema {
        Some(s) => s,
        // No rows: the stored types follow from an empty batch.
        None => {
            return map_columns(
                schema,
                &[RecordBatch::new_empty(schema.clone())],
                columns,
                f,
            )
            .map(|(s, _)| (s, Vec::new()))
        }
    };
    Ok((out_schema, out))
}

/// Each row's `[start, end)` in the list's child values.
fn row_ranges(list: &dyn Array) -> Result<Vec<(usize, usize)>> {
    let ranges = match list.data_type() {
        DataType::List(_) => {
            let l = list.as_list::<i32>();
            l.value_offsets()
                .windows(2)
                .map(|w| (w[0] as usize, w[1] as usize))
                .collect()
        }
        DataType::LargeList(_) => {
            let l = list.as_list::<i64>();
            l.value_offsets()
                .windows(2)
                .map(|w| (w[0] as usize, w[1] as usize))
                .collect()
        }
        DataType::FixedSizeList(_, n) => {
            let l = list.as_fixed_size_list();
            let n = *n as usize;
            (0..l.len())
                .map(|i| {
                    let start = l.value_offset(i) as usize;
                    (start, start + n)
                })
                .collect()
        }
        other => {
            return Err(Error::Internal(format!("not a list column: {other}")));
        }
    };
    Ok(ranges)
}

/// The list's child values.
fn list_values(list: &dyn Array) -> ArrayRef {
    match list.data_type() {
        DataType::List(_) => list.as_list::<i32>().values().clone(),
        DataType::LargeList(_) => list.as_list::<i64>().values().clone(),
        _ => list.as_fixed_size_list().values().clone(),
    }
}

/// `list` with `values` as its child (offsets, nulls and item field kept,
/// the item type being `values`'s).
fn with_values(list: &dyn Array, values: ArrayRef) -> Result<ArrayRef> {
    let item = |f: &FieldRef| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(values.data_type().clone()),
        )
    };
    Ok(match list.data_type() {
        DataType::List(f) => {
            let l = list.as_list::<i32>();
            Arc::new(ListArray::try_new(
                item(f),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?)
        }
        DataType::LargeList(f) => {
            let l = list.as_list::<i64>();
            Arc::new(LargeListArray::try_new(
                item(f),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?)
        }
        DataType::FixedSizeList(f, n) => {
            let l = list.as_fixed_size_list();
            Arc::new(FixedSizeListArray::try_new(
                item(f),
                *n,
                values,
                l.nulls().cloned(),
            )?)
        }
        other => return Err(Error::Internal(format!("not a list column: {other}"))),
    })
}

/// A float32 list column as a struct of its int8 list and a scale per row.
fn quantize(column: &ArrayRef) -> Result<ArrayRef> {
    let values = list_values(column.as_ref());
    let floats = values.as_primitive::<Float32Type>();
    let mut q = vec![0i8; floats.len()];
    let mut scales = Vec::with_capacity(column.len());
    for (start, end) in row_ranges(column.as_ref())? {
        let row = &floats.values()[start..end];
        let max = row
            .iter()
            .filter(|x| x.is_finite())
            .fold(0f32, |m, x| m.max(x.abs()));
        let scale = max / 127.0;
        if scale > 0.0 {
            for (q, x) in q[start..end].iter_mut().zip(row) {
                *q = (x / scale).round().clamp(-127.0, 127.0) as i8;
            }
        }
        scales.push(scale);
    }
    let q = Int8Array::new(q.into(), floats.nulls().cloned());
    let list = with_values(column.as_ref(), Arc::new(q))?;
    let scales = Float32Array::from(scales);
    let fields = Fields::from(vec![
        Field::new(VALUES, list.data_type().clone(), true),
        Field::new(SCALE, DataType::Float32, true),
    ]);
    Ok(Arc::new(StructArray::try_new(
        fields,
        vec![list, Arc::new(scales)],
        column.nulls().cloned(),
    )?))
}

/// The float32 list column `quantize` was given.
fn dequantize(column: &ArrayRef) -> Result<ArrayRef> {
    let s = column.as_struct();
    let (Some(list), Some(scales)) = (s.column_by_name(VALUES), s.column_by_name(SCALE)) else {
        return Err(Error::Internal(format!(
            "an int8 column needs fields '{VALUES}' and '{SCALE}', found {}",
            column.data_type()
        )));
    };
    let scales = scales.as_primitive::<Float32Type>();
    let q = list_values(list.as_ref());
    let q = q.as_primitive::<Int8Type>();
    let mut floats = vec![0f32; q.len()];
    for (row, (start, end)) in row_ranges(list.as_ref())?.into_iter().enumerate() {
        let scale = scales.value(row);
        for (x, q) in floats[start..end].iter_mut().zip(&q.values()[start..end]) {
            *x = f32::from(*q) * scale;
        }
    }
    let floats = Float32Array::new(floats.into(), q.nulls().cloned());
    let decoded = with_values(list.as_ref(), Arc::new(floats))?;
    // The struct's nulls are the rows' (the inner list carries none of its own).
    let data = decoded
        .to_data()
        .into_builder()
        .nulls(column.nulls().cloned())
        .build()?;
    Ok(arrow::array::make_array(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors(rows: &[Option<Vec<f32>>]) -> ArrayRef {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let mut values = Vec::new();
        let mut valid = Vec::new();
        for r in rows {
            values.extend(r.clone().unwrap_or_else(|| vec![0.0; 4]));
            valid.push(r.is_some());
        }
        Arc::new(
            FixedSizeListArray::try_new(
                item,
                4,
                Arc::new(Float32Array::from(values)),
                Some(valid.into()),
            )
            .unwrap(),
        )
    }

    fn batch(column: ArrayRef) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("f", column.data_type().clone(), true),
        ]));
        let ids = Arc::new(arrow::array::Int64Array::from_iter_values(
            0..column.len() as i64,
        ));
        let b = RecordBatch::try_new(schema.clone(), vec![ids, column]).unwrap();
        (schema, vec![b])
    }

    fn round_trip(column: ArrayRef, compression: Compression) -> (ArrayRef, DataType) {
        let (schema, batches) = batch(column);
        let columns = compressible_columns(&schema, compression).unwrap();
        assert_eq!(columns, vec!["f".to_string()]);
        let (stored, encoded) = encode(&schema, &batches, &columns, compression).unwrap();
        let (back, decoded) = decode(&stored, &encoded, &columns).unwrap();
        assert_eq!(back, schema, "decoding gives back the schema");
        (
            decoded[0].column(1).clone(),
            stored.field(1).data_type().clone(),
        )
    }

    fn row(a: &ArrayRef, i: usize) -> Vec<f32> {
        let l = a.as_fixed_size_list().value(i);
        l.as_primitive::<Float32Type>().values().to_vec()
    }

    #[test]
    fn half_floats_are_within_their_relative_error_and_keep_nulls() {
        let rows = vec![
            Some(vec![1.0, -0.333, 1e-3, 60000.0]),
            None,
            Some(vec![0.0, 2.5, -7.125, 0.1]),
        ];
        let (decoded, stored) = round_trip(vectors(&rows), Compression::F16);
        assert!(
            matches!(&stored, DataType::FixedSizeList(f, 4) if f.data_type() == &DataType::Float16)
        );
        assert!(decoded.is_null(1) && decoded.is_valid(0));
        for i in [0, 2] {
            for (x, y) in rows[i].as_ref().unwrap().iter().zip(row(&decoded, i)) {
                assert!((x - y).abs() <= x.abs() * 2f32.powi(-11), "{x} -> {y}");
            }
        }
    }

    #[test]
    fn int8_is_within_half_a_step_of_each_vectors_scale() {
        let rows = vec![
            Some(vec![0.5, -1.27, 0.001, 1.0]),
            Some(vec![0.0; 4]),
            None,
            Some(vec![300.0, -150.0, 1.0, 299.0]),
        ];
        let (decoded, stored) = round_trip(vectors(&rows), Compression::Int8);
        assert!(matches!(&stored, DataType::Struct(f) if f.len() == 2));
        assert!(decoded.is_null(2));
        assert_eq!(
            row(&decoded, 1),
            vec![0.0; 4],
            "an all-zero vector stays zero"
        );
        for i in [0, 3] {
            let v = rows[i].as_ref().unwrap();
            let step = v.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
            for (x, y) in v.iter().zip(row(&decoded, i)) {
                assert!(
                    (x - y).abs() <= step * 0.5 * (1.0 + 1e-4),
                    "{x} -> {y} (step {step})"
                );
            }
        }
        // The largest value of each vector is exact.
        assert_eq!(row(&decoded, 3)[0], 300.0);
    }

    #[test]
    fn variable_lists_and_sliced_batches_round_trip() {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let list: ArrayRef = Arc::new(ListArray::new(
            item,
            arrow::buffer::OffsetBuffer::from_lengths([2, 0, 3]),
            Arc::new(Float32Array::from(vec![1.0, 2.0, -3.0, 4.0, 5.0])),
            None,
        ));
        let sliced = list.slice(1, 2);
        for c in [Compression::F16, Compression::Int8] {
            let (decoded, _) = round_trip(sliced.clone(), c);
            let l = decoded.as_list::<i32>();
            assert_eq!(l.value(0).len(), 0);
            let last = l.value(1);
            let got = last.as_primitive::<Float32Type>().values().to_vec();
            for (x, y) in [-3.0f32, 4.0, 5.0].iter().zip(got) {
                assert!((x - y).abs() < 0.03, "{c:?}: {x} -> {y}");
            }
        }
    }

    #[test]
    fn half_floats_refuse_values_beyond_their_range() {
        let (schema, batches) = batch(vectors(&[Some(vec![1.0, 7e4, 0.0, 0.0])]));
        let columns = compressible_columns(&schema, Compression::F16).unwrap();
        let e = encode(&schema, &batches, &columns, Compression::F16)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("70000 is beyond half floats' range") && e.contains("'int8'"),
            "{e}"
        );
    }

    #[test]
    fn asking_to_compress_a_view_without_vectors_says_what_it_has() {
        let schema = Schema::new(vec![Field::new("label", DataType::Utf8, true)]);
        assert!(compressible_columns(&schema, Compression::None)
            .unwrap()
            .is_empty());
        let e = compressible_columns(&schema, Compression::Int8)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("compression = 'int8'") && e.contains("label Utf8"),
            "{e}"
        );
    }
}
