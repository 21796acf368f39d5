//! The keys outputs are handed over under inside an image value: a
//! model's raw output and a function's final result, each under the read
//! format its input was built with, so that a value carrying outputs
//! computed under one format never answers a call bound to another.

use crate::read_format::space::ReadFormat;

/// 64-bit FNV-1a: a stable key for names of outputs.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn format_name(format: Option<&ReadFormat>) -> String {
    format.map_or_else(|| "default".to_string(), |f| f.to_string())
}

/// The key of a model's raw output under `format` in a value.
pub fn raw_output_key(checksum: &str, format: Option<&ReadFormat>) -> u64 {
    fnv(&format!("raw|{checksum}|{}", format_name(format)))
}

/// The key of a function's final result (a label or class) in a value.
pub fn result_key(function: &str, checksum: &str, format: Option<&ReadFormat>) -> u64 {
    fnv(&format!(
        "result|{function}|{checksum}|{}",
        format_name(format)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_format::space::{Channels, Representation};

    #[test]
    fn keys_are_stable_and_differ_by_kind_model_function_and_format() {
        // Values carrying outputs are stored by CREATE TABLE AS, so a key
        // must not change between versions: pinned to FNV-1a of its text.
        assert_eq!(raw_output_key("c0ffee", None), 0x2ec6_1374_b0e7_db1b);
        let f = ReadFormat {
            channels: Channels::Ycc,
            repr: Representation::Pixels {
                scale: 4,
                prefix: None,
                size: 112,
            },
        };
        let raw = raw_output_key("c0ffee", None);
        assert_ne!(raw, result_key("m", "c0ffee", None));
        assert_ne!(raw, raw_output_key("beef", None));
        assert_ne!(raw, raw_output_key("c0ffee", Some(&f)));
        assert_ne!(
            result_key("m", "c0ffee", None),
            result_key("n", "c0ffee", None)
        );
    }
}
