//! Parts of the `spectradb` binary: the shell, result printing, the
//! progress bar and the demo.

pub mod demo;
pub mod output;
pub mod progress;
pub mod shell;
