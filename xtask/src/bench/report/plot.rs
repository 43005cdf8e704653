//! docs/benchmarks.svg: the six [`Chart`]s drawn with plotters on its SVG
//! backend, two per row under a title line. A log-scale chart is drawn on a
//! linear axis of log10 values, labelled in the values themselves.

use anyhow::{Result, anyhow};
use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};
use serde_json::Value;

use super::charts::{
    Chart, aggregation_chart, balance_chart, cost_chart, failover_chart, scale_chart,
    throughput_chart,
};

/// One chart's panel, in pixels.
const PANEL: (u32, u32) = (490, 300);
const GAP: u32 = 10;
const HEADER: u32 = 30;
const FONT: &str = "sans-serif";

/// The whole figure as SVG text.
pub(super) fn svg(doc: &Value) -> Result<String> {
    let charts = [
        cost_chart(doc),
        throughput_chart(doc),
        aggregation_chart(doc),
        failover_chart(doc),
        scale_chart(doc),
        balance_chart(doc),
    ];
    let rows = u32::try_from(charts.len().div_ceil(2))?;
    let size = (2 * PANEL.0 + 3 * GAP, HEADER + rows * (PANEL.1 + GAP) + GAP);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&RGBColor(0xf7, 0xf7, 0xf7)).map_err(plot_error)?;
        let meta = &doc["meta"];
        let title = format!(
            "alb benchmarks — {} — commit {} — {}",
            meta["date"].as_str().unwrap_or("?"),
            meta["commit"].as_str().unwrap_or("?"),
            meta["cpu"].as_str().unwrap_or("?"),
        );
        root.draw(&Text::new(title, (GAP as i32, 10), (FONT, 13))).map_err(plot_error)?;
        let body = root.margin(HEADER, GAP / 2, GAP / 2, GAP / 2);
        let panels = body.split_evenly((usize::try_from(rows)?, 2));
        for (chart, panel) in charts.iter().zip(&panels) {
            draw(chart, &panel.margin(GAP / 2, GAP / 2, GAP / 2, GAP / 2))?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(
    error: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow!("cannot draw the benchmark figure: {error}")
}

/// The x axis: where a value goes and how a tick is labelled.
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn new(chart: &Chart) -> Self {
        let values = chart.rows.iter().flat_map(|r| r.bars.iter().map(|b| b.value));
        let max = values
            .chain(chart.lines.iter().map(|l| l.0))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
            .max(1e-9);
        // Headroom right of the bars for their value labels and the legend.
        if chart.log {
            Self { log: true, lo: -1.0, hi: (max * 40.0).max(1.0).log10().ceil() }
        } else {
            Self { log: false, lo: 0.0, hi: max * 1.9 }
        }
    }

    /// A value's position on the axis (infinite: the far end).
    fn at(&self, value: f64) -> f64 {
        let x = if !value.is_finite() {
            self.hi
        } else if self.log {
            value.max(1e-9).log10()
        } else {
            value
        };
        x.clamp(self.lo, self.hi)
    }

    fn label(&self, x: f64) -> String {
        let value = if self.log { 10f64.powf(x) } else { x };
        if value >= 1000.0 { format!("{}k", round(value / 1000.0)) } else { round(value) }
    }
}

/// A tick label without float noise.
fn round(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// One chart: rows top to bottom, bars side by side within a row, the
/// value beside each bar, dashed reference lines and a legend.
fn draw(chart: &Chart, area: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<()> {
    area.fill(&WHITE).map_err(plot_error)?;
    let axis = Axis::new(chart);
    let rows = chart.rows.len().max(1);
    let height = rows as f64;
    // Row i (from the top) spans [rows - i - 1, rows - i] on the y axis;
    // its label is drawn left of the plot at its centre.
    let mut plot = ChartBuilder::on(area)
        .caption(&chart.title, (FONT, 13))
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(140)
        .build_cartesian_2d(axis.lo..axis.hi, 0.0..height)
        .map_err(plot_error)?;
    let ticks = if axis.log { (axis.hi - axis.lo).ceil() as usize + 1 } else { 6 };
    plot.configure_mesh()
        .disable_y_mesh()
        .x_desc(chart.unit.as_str())
        .x_labels(ticks)
        .x_label_formatter(&|x| axis.label(*x))
        .y_labels(0)
        .label_style((FONT, 11))
        .axis_desc_style((FONT, 11))
        .draw()
        .map_err(plot_error)?;

    let value_style = TextStyle::from((FONT, 10)).pos(Pos::new(HPos::Left, VPos::Center));
    let row_style = TextStyle::from((FONT, 11)).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, row) in chart.rows.iter().enumerate() {
        let bottom = height - i as f64 - 1.0;
        let label = EmptyElement::at((axis.lo, bottom + 0.5))
            + Text::new(row.label.clone(), (-6, 0), row_style.clone());
        plot.draw_series(std::iter::once(label)).map_err(plot_error)?;
        let count = row.bars.len().max(1) as f64;
        // Bars share the middle 80 % of the row, the first on top.
        let thickness = 0.8 / count;
        for (j, bar) in row.bars.iter().enumerate() {
            let top = bottom + 0.9 - thickness * j as f64;
            let end = axis.at(bar.value);
            let rectangle =
                Rectangle::new([(axis.lo, top - thickness * 0.9), (end, top)], bar.color.filled());
            let middle = top - thickness * 0.45;
            let label = EmptyElement::at((end, middle))
                + Text::new(bar.label.clone(), (3, 0), value_style.clone());
            plot.draw_series(std::iter::once(rectangle)).map_err(plot_error)?;
            plot.draw_series(std::iter::once(label)).map_err(plot_error)?;
        }
    }
    for (value, label, color) in &chart.lines {
        if !value.is_finite() {
            continue;
        }
        let x = axis.at(*value);
        let color = *color;
        plot.draw_series(DashedLineSeries::new(
            [(x, 0.0), (x, height)],
            4,
            3,
            color.stroke_width(1),
        ))
        .map_err(plot_error)?
        .label(label.as_str())
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2)));
    }
    for (color, label) in &chart.legend {
        let color = *color;
        plot.draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(plot_error)?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 10, y + 4)], color.filled()));
    }
    if !chart.lines.is_empty() || !chart.legend.is_empty() {
        plot.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xdd, 0xdd, 0xdd))
            .label_font((FONT, 10))
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}
