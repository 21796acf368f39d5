//! TEMPORARY stub until the chart module lands.
#[derive(Debug, Clone)]
pub struct ChartPoint {
    pub label: String,
    pub cost_us: f64,
    pub accuracy: f64,
    pub lower_bound: f64,
    pub frontier: bool,
}
pub fn render_svg(
    _title: &str,
    _metric: &str,
    _points: &[ChartPoint],
    _target: Option<f64>,
) -> Result<String, String> {
    Ok("<svg></svg>".into())
}
