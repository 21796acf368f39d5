//! The accuracy-against-cost chart of a profile, as an SVG string, so the
//! trade-off between a model's calibrated read formats can be seen at a
//! glance.
//!
//! Drawn with plotters' SVG backend and its built-in text estimate (no
//! `ttf` feature): text goes out as `<text>` elements that the viewer lays
//! out, so no system font is needed on the machine that draws.

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::error::Error;

/// One calibrated read format on the chart.
#[derive(Debug, Clone)]
pub struct ChartPoint {
    /// Format name, e.g. "ycc s4 224".
    pub label: String,
    /// Decode + model time per image, microseconds (x axis).
    pub cost_us: f64,
    /// Measured accuracy or agreement in 0..=1 (y axis).
    pub accuracy: f64,
    /// Confidence lower bound of the accuracy in 0..=1 (drawn as an error bar down from the point).
    pub lower_bound: f64,
    /// On the Pareto frontier (drawn highlighted, joined by a step/line in cost order, and labelled).
    pub frontier: bool,
}

const SIZE: (u32, u32) = (800, 500);
/// Costs are floored here (ms) so a zero cost still sits on a log axis.
const MIN_MS: f64 = 1e-3;
const FRONT: RGBColor = RGBColor(36, 113, 163);
const GREY: RGBColor = RGBColor(170, 170, 170);
const TARGET: RGBColor = RGBColor(192, 57, 43);

/// Renders the chart. `metric` names the y axis ("agreement with full quality" or "accuracy (label)").
/// `target` draws a horizontal dashed line at the accuracy target when set.
/// Errors are returned as a message (plotters' error types turned into text).
///
/// An empty `points` gives an empty chart that says "no formats calibrated"
/// (the caller still has a file to show); a non-finite value is an error.
pub fn render_svg(
    title: &str,
    metric: &str,
    points: &[ChartPoint],
    target: Option<f64>,
) -> Result<String, String> {
    let values = points
        .iter()
        .flat_map(|p| [p.cost_us, p.accuracy, p.lower_bound]);
    if values.chain(target).any(|v| !v.is_finite()) {
        return Err("chart: a cost, accuracy or target is not a finite number".into());
    }
    let ms: Vec<f64> = points
        .iter()
        .map(|p| (p.cost_us / 1e3).max(MIN_MS))
        .collect();
    let (lo, hi) = match ms.iter().copied().reduce(f64::min) {
        Some(lo) => (lo, ms.iter().copied().fold(lo, f64::max)),
        None => (0.1, 1.0),
    };
    // y in percent: fit the points, their bounds and the target, cap at 100.
    let pct = points.iter().flat_map(|p| [p.accuracy, p.lower_bound]);
    let (ymin, ymax) = pct
        .chain(target)
        .fold((1.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let y1 = (ymax.max(ymin) * 100.0 + 3.0).clamp(5.0, 100.0);
    let y = (ymin * 100.0 - 3.0).clamp(0.0, y1 - 5.0)..y1;
    let chart = Chart {
        title,
        metric,
        points,
        target,
        y,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let drawn = if hi / lo > 20.0 {
            chart.draw(
                &root,
                LogCoord::from((lo / 1.5..hi * 1.5).log_scale()),
                true,
            )
        } else {
            let pad = ((hi - lo) * 0.1).max(hi * 0.1);
            chart.draw(
                &root,
                RangedCoordf64::from((lo - pad).max(0.0)..hi + pad),
                false,
            )
        };
        drawn
            .and_then(|()| Ok(root.present()?))
            .map_err(|e| format!("chart: {e}"))?;
    }
    Ok(svg)
}

/// What one chart needs, so both x scales share one drawing routine.
struct Chart<'a> {
    title: &'a str,
    metric: &'a str,
    points: &'a [ChartPoint],
    target: Option<f64>,
    y: std::ops::Range<f64>,
}

impl Chart<'_> {
    fn draw<X>(
        &self,
        root: &DrawingArea<SVGBackend<'_>, Shift>,
        x: X,
        log: bool,
    ) -> Result<(), Box<dyn Error>>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        root.fill(&WHITE)?;
        let xr = x.range();
        // The caption under the title is the legend; then headroom for the
        // labels of points at 100 %.
        let note = match self.points.is_empty() {
            true => "no formats calibrated",
            false => "points: measured; bars: down to the lower bound; blue: Pareto frontier",
        };
        let body = root.titled(self.title, ("sans-serif", 20))?;
        let body = body.titled(note, ("sans-serif", 15).into_font().color(&BLACK.mix(0.6)))?;
        let mut chart = ChartBuilder::on(&body)
            .margin(20)
            .margin_top(28)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x, self.y.clone())?;
        let scale = if log { ", log scale" } else { "" };
        chart
            .configure_mesh()
            .x_desc(format!("decode + model time per image (ms{scale})"))
            .y_desc(format!("{} (%)", self.metric))
            .x_labels(if log { 20 } else { 10 })
            .x_label_formatter(&|v| tick_label(*v, log))
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
        if let Some(t) = self.target {
            let line = [(xr.start, t * 100.0), (xr.end, t * 100.0)];
            chart.draw_series(DashedLineSeries::new(line, 8, 5, TARGET.stroke_width(1)))?;
            let text = Text::new(
                format!("target {:.1}%", t * 100.0),
                (-4, -3),
                font(14, &TARGET, HPos::Right),
            );
            chart.draw_series([EmptyElement::at(line[1]) + text])?;
        }
        let at = |p: &ChartPoint| ((p.cost_us / 1e3).max(MIN_MS), p.accuracy * 100.0);
        let mut front: Vec<_> = self.points.iter().filter(|p| p.frontier).map(at).collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart.draw_series(LineSeries::new(front, FRONT.stroke_width(2)))?;
        // Grey first so the frontier is drawn on top; a frontier label goes
        // up and left of its point, where no dominated point can be.
        let mut order: Vec<&ChartPoint> = self.points.iter().collect();
        order.sort_by_key(|p| p.frontier);
        for p in order {
            let (colour, (x, y)) = (if p.frontier { FRONT } else { GREY }, at(p));
            let bar =
                PathElement::new([(x, y), (x, p.lower_bound * 100.0)], colour.stroke_width(1));
            chart.draw_series([bar])?;
            chart.draw_series([Circle::new((x, y), 4, colour.filled())])?;
            if p.frontier {
                let text = Text::new(p.label.clone(), (-6, -4), font(15, &FRONT, HPos::Right));
                chart.draw_series([EmptyElement::at((x, y)) + text])?;
            }
        }
        Ok(())
    }
}

/// A text style set above its anchor point.
fn font(size: i32, colour: &RGBColor, h: HPos) -> TextStyle<'static> {
    ("sans-serif", size)
        .into_font()
        .color(colour)
        .pos(Pos::new(h, VPos::Bottom))
}

/// Tick labels in ms with a few significant digits; a log axis names only
/// 1, 2 and 5 of each decade (the other ticks stay as unlabelled marks).
fn tick_label(v: f64, log: bool) -> String {
    let mantissa = v / 10f64.powf((v.log10() + 1e-9).floor());
    if log && ![1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6) {
        return String::new();
    }
    let decimals = (3.0 - v.abs().log10().floor()).clamp(0.0, 6.0) as usize;
    let s = format!("{v:.decimals$}");
    match s.contains('.') {
        true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, cost_us: f64, accuracy: f64, frontier: bool) -> ChartPoint {
        let (label, lower_bound) = (label.to_string(), (accuracy - 0.03).max(0.0));
        ChartPoint {
            label,
            cost_us,
            accuracy,
            lower_bound,
            frontier,
        }
    }

    /// Renders, and checks what every chart must be: one whole SVG document.
    fn svg(points: &[ChartPoint], target: Option<f64>) -> String {
        let svg = render_svg("<m> on t", "accuracy (label)", points, target).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(
            svg.contains("&lt;m&gt; on t") && !svg.contains("NaN"),
            "{svg}"
        );
        svg
    }

    #[test]
    fn draws_points_frontier_labels_and_target() {
        let pts = [
            point("y s1 56", 500.0, 0.6, true),
            point("y s2 k3 112", 3000.0, 0.5, false),
            point("ycc s4 224", 12000.0, 0.97, true),
        ];
        let s = svg(&pts, Some(0.95));
        assert!(s.contains("y s1 56\n") && s.contains("ycc s4 224\n"));
        assert!(!s.contains("y s2 k3 112"), "only the frontier is labelled");
        assert!(s.contains("target 95.0%") && s.matches("#C0392B").count() > 10);
        assert!(s.contains("log scale"), "costs span 24x");
        assert!(s.contains("points: measured; bars: down to the lower bound"));
        assert_eq!(s.matches("<circle").count(), 3);
        assert!(!svg(&pts, None).contains("C0392B"));
    }

    #[test]
    fn edge_cases_do_not_panic() {
        assert!(svg(&[], None).contains("no formats calibrated"));
        assert!(svg(&[], Some(0.9)).contains("target 90.0%"));
        let one = svg(&[point("only one", 0.0, 1.0, true)], None);
        assert!(one.contains("only one\n") && !one.contains("log scale"));
        svg(
            &[point("a", 10.0, 0.9, true), point("b", 10.0, 0.9, false)],
            None,
        );
        let flat = [point("a", 0.0, 0.5, true), point("b", 9e6, 0.5, true)];
        assert!(svg(&flat, Some(0.0)).contains("log scale"));
        svg(
            &[point("a", 0.0, 0.0, true), point("b", 0.0, 0.0, false)],
            Some(1.0),
        );
        let nan = [point("a", f64::NAN, 0.9, true)];
        assert!(render_svg("t", "m", &nan, None).is_err());
    }
}
