//! Arbitrary text through the script splitter and spectradb's statement
//! parser, as the shell and `Database::sql` use them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spectradb::sql::statements::{parse_command, split_statements};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_command(text);
    let (statements, rest) = split_statements(text);
    for s in statements.iter().chain(std::iter::once(&rest)) {
        let _ = parse_command(s);
    }
});
