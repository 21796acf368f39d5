//! The format planner: per query, which bands each model's input is built
//! from.
//!
//! Read formats, the design space and profiles live in [`crate::read_format`]
//! (the model functions and the catalog use them too).
//!
//! - [`calibrate`]: runs a model under every format on a sample;
//! - `rule`: the DataFusion optimizer rule that binds each model call to
//!   a format and pushes the union of their bands into the image scan;
//! - `chart`: the accuracy/cost chart `SHOW FORMATS` draws.
//!
//! Settings (`SET spectradb.<name> = <value>`, `RESET` to clear) are in
//! [`PlannerOptions`].

pub mod calibrate;
pub(crate) mod chart;
pub(crate) mod rule;

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;

extensions_options! {
    /// spectradb's session settings.
    pub struct PlannerOptions {
        /// Accuracy a model's read format must keep, as a Wilson lower bound
        /// on the profile's metric (0..1). Unset: every model gets the
        /// smallest scale that yields its native input size.
        pub accuracy_target: Option<f64>, default = None
        /// Two-sided confidence level of that lower bound.
        pub confidence: f64, default = 0.95
        /// Forces one read format on every model (what-if runs), e.g.
        /// 'ycc s2 112'; 'auto' lets the planner choose.
        pub read_format: String, default = "auto".to_string()
        /// Bytes of model outputs the database keeps in memory between
        /// queries ('256MiB', '1GB', bytes; 0 turns the cache off). Shared by
        /// every session of the database; a new size starts an empty cache.
        pub cache_size: String, default = "256MiB".to_string()
    }
}

impl ConfigExtension for PlannerOptions {
    const PREFIX: &'static str = "spectradb";
}

impl PlannerOptions {
    /// Checks the values (SET accepts any number).
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| crate::Error::InvalidArgument(m);
        if let Some(t) = self.accuracy_target {
            if !(0.0..=1.0).contains(&t) {
                return Err(bad(format!(
                    "spectradb.accuracy_target = {t}: expected a fraction in 0..1 (e.g. 0.95)"
                )));
            }
        }
        if !(0.5..1.0).contains(&self.confidence) {
            return Err(bad(format!(
                "spectradb.confidence = {}: expected a level in 0.5..1 (e.g. 0.95)",
                self.confidence
            )));
        }
        Ok(())
    }

    /// The cache bound in bytes.
    pub fn cache_bytes(&self) -> crate::Result<u64> {
        crate::reuse::cache::parse_size(&self.cache_size)
    }

    /// The forced format, if one is set.
    pub fn forced_format(&self) -> crate::Result<Option<crate::read_format::ReadFormat>> {
        let v = self.read_format.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("auto") {
            Ok(None)
        } else {
            v.parse().map(Some)
        }
    }
}
