//! Parts of the `spectradb` binary: the shell, result printing, the
//! progress bar, the demo, `spectradb serve` and the cluster roles.

#[cfg(feature = "distributed")]
pub mod cluster;
pub mod demo;
pub mod output;
pub mod progress;
#[cfg(feature = "serve")]
pub mod serve;
pub mod shell;
