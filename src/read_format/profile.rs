//! Model/table profiles: what `CALIBRATE` measured for every read format,
//! and the choice the planner makes from them.
//!
//! The choice uses a Wilson score lower bound on accuracy, not the point
//! estimate, so a small sample cannot promise what it cannot keep.

use serde::{Deserialize, Serialize};

use super::space::ReadFormat;

/// What a profile's accuracy is measured against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Metric {
    /// Same top-1 (or, for embeddings, cosine >= 0.95) as the full-quality format.
    Agreement,
    /// Top-1 equals this label column.
    Labels { column: String },
}

impl Metric {
    pub fn name(&self) -> String {
        match self {
            Metric::Agreement => "agreement".into(),
            Metric::Labels { column } => format!("accuracy ({column})"),
        }
    }
}

/// One format's measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormatStats {
    pub format: ReadFormat,
    /// Band columns read per image.
    pub bands: u32,
    /// Compressed bytes of those columns per image (from the files' metadata).
    pub bytes_per_image: f64,
    /// Reading, entropy decoding and building the input tensor, per image.
    pub decode_us: f64,
    /// Inference per image (batched).
    pub model_us: f64,
    /// Images whose output matched (the metric), out of `n`.
    pub correct: u64,
    pub n: u64,
}

impl FormatStats {
    /// What the planner minimises: time per image.
    pub fn cost_us(&self) -> f64 {
        self.decode_us + self.model_us
    }

    pub fn accuracy(&self) -> f64 {
        share(self.correct, self.n)
    }

    /// Wilson lower bound at confidence `level`.
    pub fn lower_bound(&self, level: f64) -> f64 {
        wilson_lower_bound(self.correct, self.n, level)
    }
}

/// A model's profile on one table version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub model: String,
    pub table: String,
    /// SHA-256 of the model file it was measured with.
    pub model_checksum: String,
    /// The table's version (catalog version of its last change).
    pub table_version: u64,
    pub metric: Metric,
    /// Images in the sample.
    pub sample: u64,
    /// The full-quality format the others are compared with.
    pub reference: ReadFormat,
    /// Every calibrated format, the reference first.
    pub formats: Vec<FormatStats>,
    /// Compressed materialized views measured as sources of the model's
    /// input (a head's backbone output) or output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<ViewStats>,
}

/// A compressed view column measured by CALIBRATE: the model's results
/// from the column's decoded vectors against its results from the exact
/// vectors (or against the labels), on the sample's rows the view holds.
/// Compressed values are near the model's, not equal, so the planner uses
/// one only where this says it meets the accuracy target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewStats {
    pub view: String,
    pub column: String,
    /// How the column is stored (`f16`, `int8`).
    pub compression: String,
    /// The view's data files when measured: a refresh writes new ones, and
    /// the measurement no longer describes the view.
    pub files: Vec<String>,
    /// Stored bytes per row of the view (all its columns).
    pub bytes_per_image: f64,
    /// Sample rows whose result matched (the metric), out of `n`.
    pub correct: u64,
    pub n: u64,
}

impl ViewStats {
    pub fn accuracy(&self) -> f64 {
        share(self.correct, self.n)
    }

    /// Wilson lower bound at confidence `level`.
    pub fn lower_bound(&self, level: f64) -> f64 {
        wilson_lower_bound(self.correct, self.n, level)
    }
}

impl Profile {
    /// Why this profile no longer describes `model`/`table`, if it does not.
    pub fn staleness(&self, model_checksum: &str, table_version: u64) -> Option<String> {
        if self.model_checksum != model_checksum {
            Some(format!(
                "the profile of {} on {} is stale (the model changed since CALIBRATE)",
                self.model, self.table
            ))
        } else if self.table_version != table_version {
            Some(format!(
                "the profile of {} on {} is stale (the table changed since CALIBRATE at version {}, now {})",
                self.model, self.table, self.table_version, table_version
            ))
        } else {
            None
        }
    }

    /// Indices of the Pareto frontier in cost order: formats no other
    /// format beats on both cost and accuracy. Accuracy rises strictly
    /// along it.
    pub fn frontier(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.formats.len()).collect();
        order.sort_by(|&a, &b| {
            let (fa, fb) = (&self.formats[a], &self.formats[b]);
            fa.cost_us()
                .total_cmp(&fb.cost_us())
                .then(fb.accuracy().total_cmp(&fa.accuracy()))
        });
        let mut out = Vec::new();
        let mut best = f64::NEG_INFINITY;
        for i in order {
            let acc = self.formats[i].accuracy();
            if acc > best {
                out.push(i);
                best = acc;
            }
        }
        out
    }

    /// The measurement of `column` of view `view` whose data files are
    /// `files`, if CALIBRATE took one of the view as it is.
    pub fn view_stats(&self, view: &str, column: &str, files: &[String]) -> Option<&ViewStats> {
        self.views
            .iter()
            .find(|v| v.view == view && v.column == column && v.files == files)
    }

    /// The cheapest format whose lower bound meets `target`, or `None`.
    pub fn cheapest_meeting(&self, target: f64, level: f64) -> Option<&FormatStats> {
        self.formats
            .iter()
            .filter(|f| f.lower_bound(level) >= target)
            .min_by(|a, b| a.cost_us().total_cmp(&b.cost_us()))
    }
}

/// `k` out of `n` as a fraction (0 when there were none).
fn share(k: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        k as f64 / n as f64
    }
}

/// Lower end of the Wilson score interval for `k` successes in `n` trials
/// at two-sided confidence `level` (e.g. 0.95).
pub fn wilson_lower_bound(k: u64, n: u64, level: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let z = normal_quantile(0.5 + level.clamp(0.0, 0.999_999) / 2.0);
    let n = n as f64;
    let p = k as f64 / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).clamp(0.0, 1.0)
}

/// The standard normal quantile (Acklam's rational approximation,
/// relative error below 1.2e-9), for `p` in (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn stats(name: &str, cost: f64, correct: u64, n: u64) -> FormatStats {
        FormatStats {
            format: name.parse().unwrap(),
            bands: 0,
            bytes_per_image: 0.0,
            decode_us: cost / 2.0,
            model_us: cost / 2.0,
            correct,
            n,
        }
    }

    pub(crate) fn synthetic_profile() -> Profile {
        Profile {
            model: "m".into(),
            table: "t".into(),
            model_checksum: "abc".into(),
            table_version: 7,
            metric: Metric::Agreement,
            sample: 300,
            reference: "ycc s8 224".parse().unwrap(),
            formats: vec![
                stats("ycc s8 224", 100.0, 300, 300),
                stats("ycc s4 224", 60.0, 297, 300),
                stats("y s4 224", 55.0, 280, 300),
                stats("ycc s2 112", 20.0, 270, 300),
                stats("y s1 56", 5.0, 150, 300),
                // Dominated: dearer than s2 and worse.
                stats("y s2 k3 112", 25.0, 200, 300),
            ],
            views: Vec::new(),
        }
    }

    #[test]
    fn a_view_measurement_describes_only_the_files_it_was_taken_on() {
        let mut p = synthetic_profile();
        // A catalog written before views were measured has no `views`.
        let mut json = serde_json::to_value(&p).unwrap();
        assert!(json.get("views").is_none(), "empty lists are not written");
        json.as_object_mut().unwrap().remove("views");
        assert_eq!(serde_json::from_value::<Profile>(json).unwrap(), p);
        let files = vec!["views/v/1.parquet".to_string()];
        p.views.push(ViewStats {
            view: "v".into(),
            column: "f".into(),
            compression: "int8".into(),
            files: files.clone(),
            bytes_per_image: 1228.0,
            correct: 299,
            n: 300,
        });
        let found = p.view_stats("v", "f", &files).expect("measured");
        assert!((found.accuracy() - 299.0 / 300.0).abs() < 1e-12);
        assert!(found.lower_bound(0.95) < found.accuracy());
        let refreshed = vec!["views/v/2.parquet".to_string()];
        assert!(p.view_stats("v", "f", &refreshed).is_none());
        assert!(p.view_stats("v", "g", &files).is_none());
        let back: Profile = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn normal_quantiles_match_tables() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.01) + 2.326_348).abs() < 1e-5);
    }

    #[test]
    fn wilson_bounds_match_published_values() {
        // 300/300 at 95 %: 1 - 3.84/303.84.
        assert!((wilson_lower_bound(300, 300, 0.95) - 0.98736).abs() < 1e-4);
        assert!((wilson_lower_bound(81, 100, 0.95) - 0.7222).abs() < 1e-3);
        // Newcombe (1998), Statistics in Medicine 17:857, table II, method 3.
        for (k, n, lower) in [
            (81, 263, 0.2553),
            (15, 148, 0.0624),
            (0, 20, 0.0),
            (1, 29, 0.0061),
        ] {
            let got = wilson_lower_bound(k, n, 0.95);
            assert!((got - lower).abs() < 5e-5, "{k}/{n}: {got}");
        }
        assert_eq!(wilson_lower_bound(0, 0, 0.95), 0.0);
    }

    #[test]
    fn picks_the_cheapest_format_whose_bound_meets_the_target() {
        let p = synthetic_profile();
        let pick = |t: f64| p.cheapest_meeting(t, 0.95).map(|f| f.format.to_string());
        // 297/300 has a bound of about 0.971; 270/300 about 0.861.
        assert_eq!(pick(0.95).as_deref(), Some("ycc s4 224"));
        assert_eq!(pick(0.85).as_deref(), Some("ycc s2 112"));
        assert_eq!(pick(0.4).as_deref(), Some("y s1 56"));
        // Even 300/300 cannot promise 0.99 from 300 images.
        assert_eq!(pick(0.99), None);
    }

    #[test]
    fn frontier_is_monotone_and_skips_dominated_formats() {
        let p = synthetic_profile();
        let names: Vec<String> = p
            .frontier()
            .iter()
            .map(|&i| p.formats[i].format.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "y s1 56",
                "ycc s2 112",
                "y s4 224",
                "ycc s4 224",
                "ycc s8 224"
            ]
        );
    }

    #[test]
    fn stale_profiles_say_why() {
        let p = synthetic_profile();
        assert_eq!(p.staleness("abc", 7), None);
        assert!(p.staleness("abd", 7).unwrap().contains("model changed"));
        assert!(p.staleness("abc", 8).unwrap().contains("table changed"));
    }
}
