//! The vocabulary the model functions, the format planner and the catalog
//! share, kept in one leaf module so that none of them depends on another
//! for it:
//!
//! - [`model_spec`]: what a model expects and returns (`CREATE MODEL`
//!   options)
//! - [`space`]: read formats (which bands, scale, channels and size a
//!   model's input is built from) and the design space of a model on a table
//! - [`profile`]: what `CALIBRATE` measured per format, the Pareto frontier
//!   and the choice by a confidence lower bound

pub mod model_spec;
pub mod profile;
pub mod space;

pub use model_spec::{ModelSpec, OutputKind};
pub use profile::{FormatStats, Metric, Profile};
pub use space::{Channels, ReadFormat, Representation};
