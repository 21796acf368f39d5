//! What an image table, its scan and a model function look like on the way
//! to a scheduler or an executor.
//!
//! Each is a JSON document: the parts are plain data (file lists, band
//! masks, read formats, catalog entries), and JSON keeps them readable in
//! a captured plan. Arrow schemas travel as an IPC stream header, filter
//! predicates as DataFusion's protobuf, both base64. Models travel by
//! catalog entry, not by bytes: the receiving process opens the model file
//! under the database directory and checks its SHA-256 against the entry.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image_value::OutputValue;
use crate::read_format::space::ReadFormat;
use crate::reuse::cache::ModelCache;
use crate::reuse::slots::{OutputSlot, SlotSource, ViewColumn};
use crate::sql::image_scan::ReadPlan;
use crate::storage::catalog::ModelEntry;
use crate::storage::BandSelection;

/// Where a table's objects live and the store options that hold no
/// secret (credentials come from each process's environment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreWire {
    pub location: String,
    pub options: BTreeMap<String, String>,
}

/// An image table at one catalog version, with the planner's read plan.
#[derive(Debug, Serialize, Deserialize)]
pub struct TableWire {
    pub name: String,
    pub version: u64,
    pub uid: u64,
    pub chroma: String,
    pub schema: String,
    pub files: Vec<String>,
    pub file_rows: Vec<u64>,
    pub min_dims: (u32, u32),
    pub read: Option<ReadPlanWire>,
    pub store: Option<StoreWire>,
}

/// A run of rows of one data file.
#[derive(Debug, Serialize, Deserialize)]
pub struct RangeWire {
    pub path: String,
    pub start: u64,
    pub end: u64,
}

/// A filter pushed into a scan.
#[derive(Debug, Serialize, Deserialize)]
pub struct FilterWire {
    pub display: String,
    /// DataFusion's `PhysicalExprNode`, base64.
    pub predicate: String,
    pub schema: String,
    pub columns: Vec<String>,
}

/// One partitioned scan of an image table.
#[derive(Debug, Serialize, Deserialize)]
pub struct ScanWire {
    pub table: String,
    pub uid: u64,
    pub chroma: String,
    pub groups: Vec<Vec<RangeWire>>,
    pub schema: String,
    pub filter: Option<FilterWire>,
    pub read: ReadPlanWire,
    pub batch_size: usize,
    pub limit: Option<usize>,
    pub store: Option<StoreWire>,
}

/// [`ReadPlan`] between processes.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadPlanWire {
    pub bands: [u64; 3],
    pub notes: Vec<String>,
    pub slots: Vec<SlotWire>,
}

/// [`OutputSlot`] between processes.
#[derive(Debug, Serialize, Deserialize)]
pub struct SlotWire {
    pub description: String,
    pub sources: Vec<SourceWire>,
}

/// [`SlotSource`] between processes: a cache slot names what it looks up
/// (the receiving process looks in its own cache); a view slot carries the
/// view column's values, since executors do not load the client's views.
#[derive(Debug, Serialize, Deserialize)]
pub enum SourceWire {
    Cached {
        checksum: String,
        format: Option<ReadFormat>,
    },
    View {
        key: u64,
        /// See [`encode_view_values`].
        values: String,
    },
}

/// A registered model by catalog entry (its backbone's too, for a head).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandleWire {
    pub name: String,
    pub entry: ModelEntry,
    pub backbone: Option<Box<HandleWire>>,
}

/// One model function: which model, which of its two functions, and the
/// read format the planner bound.
#[derive(Debug, Serialize, Deserialize)]
pub struct ModelFnWire {
    /// The database directory the model files are under.
    pub root: String,
    pub model: HandleWire,
    pub raw_scores: bool,
    pub format: Option<ReadFormat>,
    pub approximate: bool,
}

/// `value` as JSON bytes.
pub fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encoding a plan node: {e}")))
}

/// A `T` from JSON bytes; `what` names it in the error.
pub fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::InvalidArgument(format!("a serialized {what} could not be read: {e}")))
}

pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn base64_decode(text: &str, what: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::InvalidArgument(format!("a serialized {what} is not base64: {e}")))
}

/// `schema` as the header of an Arrow IPC stream, base64.
pub fn encode_schema(schema: &Schema) -> Result<String> {
    let mut buf = Vec::new();
    let mut writer = StreamWriter::try_new(&mut buf, schema)?;
    writer.finish()?;
    drop(writer);
    Ok(base64_encode(&buf))
}

/// The schema [`encode_schema`] wrote.
pub fn decode_schema(text: &str) -> Result<SchemaRef> {
    let bytes = base64_decode(text, "schema")?;
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    Ok(reader.schema())
}

impl ReadPlanWire {
    pub fn from_plan(plan: &ReadPlan) -> Self {
        ReadPlanWire {
            bands: plan.bands.masks,
            notes: plan.notes.clone(),
            slots: plan.slots.iter().map(SlotWire::from_slot).collect(),
        }
    }

    /// The plan, its cache slots looking in `cache`.
    pub fn into_plan(self, cache: &Arc<ModelCache>) -> Result<ReadPlan> {
        Ok(ReadPlan {
            bands: BandSelection { masks: self.bands },
            notes: self.notes,
            slots: self
                .slots
                .into_iter()
                .map(|s| s.into_slot(cache))
                .collect::<Result<_>>()?,
        })
    }
}

impl SlotWire {
    fn from_slot(slot: &OutputSlot) -> Self {
        SlotWire {
            description: slot.description.clone(),
            sources: slot
                .sources
                .iter()
                .map(|s| match s {
                    SlotSource::Cached {
                        checksum, format, ..
                    } => SourceWire::Cached {
                        checksum: checksum.to_string(),
                        format: *format,
                    },
                    SlotSource::View { column, key } => SourceWire::View {
                        key: *key,
                        values: base64_encode(&encode_view_values(column)),
                    },
                })
                .collect(),
        }
    }

    fn into_slot(self, cache: &Arc<ModelCache>) -> Result<OutputSlot> {
        let sources = self
            .sources
            .into_iter()
            .map(|s| {
                Ok(match s {
                    SourceWire::Cached { checksum, format } => SlotSource::Cached {
                        cache: cache.clone(),
                        checksum: checksum.into(),
                        format,
                    },
                    SourceWire::View { key, values } => SlotSource::View {
                        column: Arc::new(decode_view_values(&base64_decode(&values, "view")?)?),
                        key,
                    },
                })
            })
            .collect::<Result<_>>()?;
        Ok(OutputSlot {
            description: self.description,
            sources,
        })
    }
}

const TAG_VECTOR: u8 = 0;
const TAG_LABEL: u8 = 1;
const TAG_CLASS: u8 = 2;

/// A view column's values as bytes: the row count (u64), then per row its
/// id (u64), a tag, then a vector (u32 length, f32s), a label (u32 length,
/// UTF-8) or a class (i64), all little-endian.
pub fn encode_view_values(column: &ViewColumn) -> Vec<u8> {
    let mut rows: Vec<(&u64, &OutputValue)> = column.values.iter().collect();
    rows.sort_by_key(|(id, _)| **id);
    let mut out = Vec::new();
    out.extend_from_slice(&(rows.len() as u64).to_le_bytes());
    for (id, value) in rows {
        out.extend_from_slice(&id.to_le_bytes());
        match value {
            OutputValue::Vector(v) => {
                out.push(TAG_VECTOR);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                for x in v.iter() {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            OutputValue::Label(s) => {
                out.push(TAG_LABEL);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            OutputValue::Class(c) => {
                out.push(TAG_CLASS);
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
    }
    out
}

/// Reads little-endian fields off a byte slice; running out is an error.
struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(Error::InvalidArgument(
                "a serialized view column is cut or damaged".into(),
            ));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
}

/// The column [`encode_view_values`] wrote.
pub fn decode_view_values(bytes: &[u8]) -> Result<ViewColumn> {
    let mut f = Fields { bytes };
    let rows = u64::from_le_bytes(f.array()?);
    let mut column = ViewColumn::default();
    for _ in 0..rows {
        let id = u64::from_le_bytes(f.array()?);
        let [tag] = f.array()?;
        let value = match tag {
            TAG_VECTOR => {
                let n = u32::from_le_bytes(f.array()?) as usize;
                let raw = f.take(n.saturating_mul(4))?;
                let v: Vec<f32> = raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect();
                OutputValue::Vector(v.into())
            }
            TAG_LABEL => {
                let n = u32::from_le_bytes(f.array()?) as usize;
                let s = std::str::from_utf8(f.take(n)?).map_err(|_| {
                    Error::InvalidArgument("a serialized view label is not UTF-8".into())
                })?;
                OutputValue::Label(s.to_string())
            }
            TAG_CLASS => OutputValue::Class(i64::from_le_bytes(f.array()?)),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "a serialized view column has an unknown value tag {other}"
                )))
            }
        };
        column.values.insert(id, value);
    }
    if !f.bytes.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "a serialized view column has {} bytes after its {rows} rows",
            f.bytes.len()
        )));
    }
    Ok(column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn view_values_come_back_as_they_were_written() {
        let mut column = ViewColumn::default();
        column.values.insert(
            7,
            OutputValue::Vector(vec![1.5, -2.0, f32::MIN_POSITIVE].into()),
        );
        column
            .values
            .insert(3, OutputValue::Label("tabby cat".into()));
        column.values.insert(u64::MAX, OutputValue::Class(-42));
        let bytes = encode_view_values(&column);
        let back = decode_view_values(&bytes).unwrap();
        assert_eq!(back.values, column.values);
        // Every cut is an error, never a panic or a shorter column.
        for cut in 1..bytes.len() {
            assert!(decode_view_values(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // An unknown tag, and bytes after the last row, are errors too.
        let mut unknown = 1u64.to_le_bytes().to_vec();
        unknown.extend_from_slice(&[0; 8]);
        unknown.push(9);
        assert!(decode_view_values(&unknown).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_view_values(&longer).is_err());
    }

    #[test]
    fn schemas_keep_their_fields_and_types() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("image", DataType::LargeBinary, true),
            Field::new(
                "v",
                DataType::new_fixed_size_list(DataType::Float32, 4, true),
                true,
            ),
        ]);
        let back = decode_schema(&encode_schema(&schema).unwrap()).unwrap();
        assert_eq!(back.as_ref(), &schema);
        assert!(decode_schema("not base64!").is_err());
        assert!(decode_schema(&base64_encode(b"garbage")).is_err());
    }
}
