//! Outputs a scan can hand to model functions instead of an image's bands.
//!
//! When a query's `image` column only feeds model functions, the format
//! planner gives the scan one [`OutputSlot`] per model call: the places
//! that may already hold that call's result for a row (the cache, a
//! materialized view). For a row where every slot has its output, the scan
//! reads no band and sends a value that carries the outputs; other rows get
//! their bands as usual and the model functions compute them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::cache::{ModelCache, OutputKey};
use super::keys::raw_output_key;
use crate::image_value::{InlineOutput, OutputValue};
use crate::read_format::space::ReadFormat;

/// One materialized view column's values by image id.
#[derive(Debug, Default)]
pub struct ViewColumn {
    pub values: HashMap<u64, OutputValue>,
}

/// Where one alternative of a slot looks.
#[derive(Clone)]
pub enum SlotSource {
    /// A model's raw output under a format, in the cache.
    Cached {
        cache: Arc<ModelCache>,
        checksum: Arc<str>,
        format: Option<ReadFormat>,
    },
    /// A column of a materialized view, by image id.
    View {
        column: Arc<ViewColumn>,
        /// The key the value is handed over under.
        key: u64,
    },
}

/// One model call's ways of getting its result without the image's bands.
#[derive(Clone)]
pub struct OutputSlot {
    /// Says what the slot is, for EXPLAIN and equality.
    pub description: String,
    pub sources: Vec<SlotSource>,
}

impl std::fmt::Debug for OutputSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputSlot({})", self.description)
    }
}

impl PartialEq for OutputSlot {
    fn eq(&self, other: &Self) -> bool {
        self.description == other.description
    }
}
impl Eq for OutputSlot {}
impl Hash for OutputSlot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.description.hash(state);
    }
}

impl OutputSlot {
    /// The outputs for image `id` of table `table`, if some source has it.
    fn find(&self, table: u64, id: u64) -> Option<InlineOutput> {
        self.sources.iter().find_map(|s| match s {
            SlotSource::Cached {
                cache,
                checksum,
                format,
            } => {
                let key = OutputKey {
                    model: checksum.clone(),
                    format: *format,
                    table,
                    id,
                };
                cache.peek(&key).map(|v| InlineOutput {
                    key: raw_output_key(checksum, format.as_ref()),
                    value: OutputValue::Vector(v),
                })
            }
            SlotSource::View { column, key } => column.values.get(&id).map(|v| InlineOutput {
                key: *key,
                value: v.clone(),
            }),
        })
    }
}

/// The outputs that stand in for row `id`'s bands: `Some` when every slot
/// has one.
pub fn covered(slots: &[OutputSlot], table: u64, id: u64) -> Option<Vec<InlineOutput>> {
    slots.iter().map(|s| s.find(table, id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reuse::keys::result_key;

    #[test]
    fn a_row_is_covered_only_when_every_slot_has_its_output() {
        let cache = Arc::new(ModelCache::new(1 << 20));
        let checksum: Arc<str> = "c0ffee".into();
        cache.insert(
            OutputKey {
                model: checksum.clone(),
                format: None,
                table: 9,
                id: 1,
            },
            vec![1.0, 2.0].into(),
        );
        let mut view = ViewColumn::default();
        view.values.insert(1, OutputValue::Label("cat".into()));
        view.values.insert(2, OutputValue::Label("dog".into()));
        let cached = OutputSlot {
            description: "m".into(),
            sources: vec![SlotSource::Cached {
                cache,
                checksum: checksum.clone(),
                format: None,
            }],
        };
        let viewed = OutputSlot {
            description: "v".into(),
            sources: vec![SlotSource::View {
                column: Arc::new(view),
                key: result_key("m", &checksum, None),
            }],
        };
        let slots = [cached, viewed];
        let got = covered(&slots, 9, 1).expect("both have row 1");
        assert_eq!(got[0].key, raw_output_key("c0ffee", None));
        assert_eq!(got[1].value, OutputValue::Label("cat".into()));
        assert!(covered(&slots, 9, 2).is_none(), "the cache lacks row 2");
        assert!(covered(&slots, 8, 1).is_none(), "another table's row 1");
        assert_ne!(
            raw_output_key("c0ffee", None),
            result_key("m", "c0ffee", None)
        );
    }
}
