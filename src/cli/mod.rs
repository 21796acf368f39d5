//! Parts of the `spectradb` binary: the shell, result printing, the
//! progress bar, the demo and `spectradb serve`.

pub mod demo;
pub mod output;
pub mod progress;
#[cfg(feature = "serve")]
pub mod serve;
pub mod shell;
