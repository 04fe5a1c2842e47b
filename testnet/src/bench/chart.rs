//! The benchmark chart: latency against delivered rate, saturation against validators.

use super::*;

/// Where the chart's font is read from (Debian's fonts-dejavu-core; `scripts/deps.sh`
/// installs it).
pub const CHART_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Draws the latency percentiles against delivered rate (saturation steps, 4 validators) and
/// the saturation (delivered) rate against the number of validators, side by side, into a PNG.
pub fn chart(
    path: &std::path::Path,
    steps: &[RunResult],
    scaling: &[(usize, f64)],
) -> eyre::Result<()> {
    use plotters::prelude::*;
    let font = std::fs::read(CHART_FONT).map_err(|e| eyre!("chart font {CHART_FONT}: {e}"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| eyre!("{CHART_FONT} is not a usable font"))?;
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| eyre!("{e}"))?;
    let (left, right) = root.split_horizontally(760);

    let max_rate = steps
        .iter()
        .map(|r| r.delivered_bundles_per_s)
        .fold(1.0, f64::max)
        * 1.1;
    let max_lat = steps.iter().map(|r| r.latency_ms.p99).fold(1.0, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&left)
        .caption(
            "Latency to a verifying subscriber vs delivered rate",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_rate, 0.0..max_lat)
        .map_err(|e| eyre!("{e}"))?;
    c.configure_mesh()
        .x_desc("delivered bundles/s")
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| eyre!("{e}"))?;
    type Series = (&'static str, RGBColor, fn(&RunResult) -> f64);
    let series: [Series; 3] = [
        ("p50", BLUE, |r| r.latency_ms.p50),
        ("p90", GREEN, |r| r.latency_ms.p90),
        ("p99", RED, |r| r.latency_ms.p99),
    ];
    for (name, color, f) in series {
        let mut pts: Vec<(f64, f64)> = steps
            .iter()
            .map(|r| (r.delivered_bundles_per_s, f(r)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| eyre!("{e}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        c.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| eyre!("{e}"))?;
    }
    c.configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| eyre!("{e}"))?;

    let max_v = scaling.iter().map(|(v, _)| *v).max().unwrap_or(10) as f64 + 1.0;
    let max_s = scaling.iter().map(|(_, s)| *s).fold(1.0, f64::max) * 1.2;
    let mut c2 = ChartBuilder::on(&right)
        .caption("Saturation (delivered) vs validators", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_v, 0.0..max_s)
        .map_err(|e| eyre!("{e}"))?;
    c2.configure_mesh()
        .x_desc("validators")
        .y_desc("delivered bundles/s at saturation")
        .draw()
        .map_err(|e| eyre!("{e}"))?;
    let pts: Vec<(f64, f64)> = scaling.iter().map(|(v, s)| (*v as f64, *s)).collect();
    c2.draw_series(LineSeries::new(pts.clone(), BLUE.stroke_width(2)))
        .map_err(|e| eyre!("{e}"))?;
    c2.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, BLUE.filled())))
        .map_err(|e| eyre!("{e}"))?;
    root.present().map_err(|e| eyre!("{e}"))?;
    Ok(())
}
