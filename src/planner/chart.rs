//! The accuracy-against-cost chart of a profile, as a standalone SVG file,
//! so the trade-off between read formats can be seen at a glance.
//!
//! Written by hand rather than with a plotting crate: a scatter plot with
//! axes is a few dozen SVG elements, and the plotting crates' SVG backends
//! need system fonts to lay out text, which a fresh machine may lack (the
//! viewer renders the text here).

use std::fmt::Write;

/// One calibrated read format on the chart.
#[derive(Debug, Clone)]
pub struct ChartPoint {
    /// Format name, e.g. "ycc s4 224".
    pub label: String,
    /// Decode + model time per image, microseconds (x axis).
    pub cost_us: f64,
    /// Measured accuracy or agreement in 0..=1 (y axis).
    pub accuracy: f64,
    /// Confidence lower bound of the accuracy (drawn as a bar down from the point).
    pub lower_bound: f64,
    /// On the Pareto frontier (highlighted, joined in cost order, labelled).
    pub frontier: bool,
}

const W: f64 = 760.0;
const H: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the chart. `metric` names the y axis; `target` draws a dashed
/// line at the accuracy target. An empty `points` gives an empty chart
/// that says so.
pub fn render_svg(
    title: &str,
    metric: &str,
    points: &[ChartPoint],
    target: Option<f64>,
) -> Result<String, String> {
    let finite = |v: f64| v.is_finite();
    if points
        .iter()
        .any(|p| !finite(p.cost_us) || !finite(p.accuracy) || !finite(p.lower_bound))
    {
        return Err("a format has a cost or accuracy that is not a number".into());
    }
    // x: milliseconds per image, log scale when costs span more than 20x.
    let ms: Vec<f64> = points.iter().map(|p| (p.cost_us / 1e3).max(1e-3)).collect();
    let (lo, hi) = ms
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if points.is_empty() {
        (0.1, 1.0)
    } else {
        (lo, hi)
    };
    let log = hi / lo > 20.0;
    let (x0, x1) = if log {
        (lo.log10() - 0.1, hi.log10() + 0.1)
    } else {
        let pad = ((hi - lo) * 0.08).max(hi * 0.05).max(1e-3);
        ((lo - pad).max(0.0), hi + pad)
    };
    let fx = |v: f64| {
        let v = if log { v.log10() } else { v };
        LEFT + (v - x0) / (x1 - x0) * (W - LEFT - RIGHT)
    };
    // y: percent, fitted to the data (lower bounds and target included).
    let ymin = points
        .iter()
        .map(|p| p.lower_bound.min(p.accuracy))
        .chain(target)
        .fold(1.0f64, f64::min);
    let y0 = ((ymin - 0.02).max(0.0) * 20.0).floor() / 20.0;
    let y1 = 1.0;
    let y0 = if y1 - y0 < 0.05 { y1 - 0.05 } else { y0 };
    let fy = |v: f64| TOP + (y1 - v) / (y1 - y0) * (H - TOP - BOTTOM);

    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(w, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        w,
        r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // Axes, grid and ticks.
    let (bx, by) = (H - BOTTOM, W - RIGHT);
    let _ = writeln!(
        w,
        r##"<path d="M{LEFT} {TOP} V{bx} H{by}" fill="none" stroke="#333"/>"##
    );
    let steps = 5;
    for i in 0..=steps {
        let v = y0 + (y1 - y0) * i as f64 / steps as f64;
        let y = fy(v);
        let _ = writeln!(
            w,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{by}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{:.1}%</text>"##,
            LEFT - 6.0,
            y + 4.0,
            v * 100.0
        );
        let xv = x0 + (x1 - x0) * i as f64 / steps as f64;
        let ms_at = if log { 10f64.powf(xv) } else { xv };
        let x = LEFT + (W - LEFT - RIGHT) * i as f64 / steps as f64;
        let _ = writeln!(
            w,
            r##"<line x1="{x:.1}" y1="{bx}" x2="{x:.1}" y2="{}" stroke="#333"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            bx + 5.0,
            bx + 18.0,
            if ms_at >= 10.0 {
                format!("{ms_at:.0}")
            } else {
                format!("{ms_at:.2}")
            }
        );
    }
    let _ = writeln!(
        w,
        r#"<text x="{}" y="{}" text-anchor="middle">decode + model time per image (ms{})</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 22.0,
        if log { ", log scale" } else { "" }
    );
    let _ = writeln!(
        w,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (TOP + H - BOTTOM) / 2.0,
        escape(metric)
    );
    if let Some(t) = target {
        let y = fy(t);
        let _ = writeln!(
            w,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{by}" y2="{y:.1}" stroke="#c0392b" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" fill="#c0392b" text-anchor="end">target {:.1}%</text>"##,
            by - 4.0,
            y - 4.0,
            t * 100.0
        );
    }
    // The frontier as a line in cost order, then every point with its bar.
    let mut front: Vec<(f64, f64)> = points
        .iter()
        .zip(&ms)
        .filter(|(p, _)| p.frontier)
        .map(|(p, &m)| (fx(m), fy(p.accuracy)))
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    if front.len() > 1 {
        let d: Vec<String> = front
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            w,
            r##"<polyline points="{}" fill="none" stroke="#2471a3" stroke-width="1.5"/>"##,
            d.join(" ")
        );
    }
    for (p, &m) in points.iter().zip(&ms) {
        let (x, y, yl) = (fx(m), fy(p.accuracy), fy(p.lower_bound));
        let colour = if p.frontier { "#2471a3" } else { "#aaa" };
        let _ = writeln!(
            w,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{x:.1}" y2="{yl:.1}" stroke="{colour}"/><circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{colour}"><title>{} : {:.2} ms, {:.1}% (lower bound {:.1}%)</title></circle>"#,
            escape(&p.label),
            m,
            p.accuracy * 100.0,
            p.lower_bound * 100.0
        );
        if p.frontier {
            let _ = writeln!(
                w,
                r##"<text x="{:.1}" y="{:.1}" fill="#2471a3">{}</text>"##,
                x + 6.0,
                y - 6.0,
                escape(&p.label)
            );
        }
    }
    let caption = if points.is_empty() {
        "no formats calibrated".to_string()
    } else {
        "points: measured; bars: down to the lower bound; blue: Pareto frontier".to_string()
    };
    let _ = writeln!(
        w,
        r##"<text x="{}" y="{}" fill="#555" text-anchor="end">{caption}</text>"##,
        W - RIGHT,
        TOP - 8.0
    );
    s.push_str("</svg>\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, cost_us: f64, accuracy: f64, frontier: bool) -> ChartPoint {
        ChartPoint {
            label: label.into(),
            cost_us,
            accuracy,
            lower_bound: accuracy - 0.03,
            frontier,
        }
    }

    #[test]
    fn draws_points_frontier_labels_and_target() {
        let pts = vec![
            point("y s1 56", 500.0, 0.6, true),
            point("y s2 k3 112", 3000.0, 0.5, false),
            point("ycc s4 224", 12000.0, 0.97, true),
        ];
        let svg = render_svg("m on t", "agreement", &pts, Some(0.95)).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains(">y s1 56</text>") && svg.contains(">ycc s4 224</text>"));
        assert!(
            !svg.contains(">y s2 k3 112</text>"),
            "only the frontier is labelled"
        );
        assert!(svg.contains("target 95.0%"));
        assert!(svg.contains("log scale"), "costs span 24x");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn edge_cases_do_not_panic() {
        let empty = render_svg("t", "m", &[], None).unwrap();
        assert!(empty.contains("no formats calibrated"));
        let one = render_svg("t", "m", &[point("a", 0.0, 1.0, true)], None).unwrap();
        assert!(one.contains(">a</text>"));
        let same = vec![point("a", 10.0, 0.9, true), point("b", 10.0, 0.9, false)];
        assert!(!render_svg("t", "m", &same, None).unwrap().contains("NaN"));
        let bad = vec![point("a", f64::NAN, 0.9, true)];
        assert!(render_svg("t", "m", &bad, None).is_err());
        assert!(render_svg("<&>", "m", &[], None)
            .unwrap()
            .contains("&lt;&amp;&gt;"));
    }
}
