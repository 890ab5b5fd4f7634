//! `sweep.svg`: latency against scale.

use crate::row::Row;

/// p50 and p99 of the paced phases against each series' scale, one panel per series.
pub fn plot(rows: &[Row], path: &std::path::Path, rate: u32) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1500, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&format!("Routing latency against scale (paced at {rate}/s)"), ("sans-serif", 22))?;
    let series = ["agents", "waiting", "skill combinations"];
    let panels = root.split_evenly((1, series.len()));
    let lines: [(&str, &str, bool, RGBColor); 4] = [
        ("created → offered p99", "created → offered at", true, RGBColor(200, 60, 40)),
        ("created → offered p50", "created → offered at", false, RGBColor(240, 150, 120)),
        ("freed → next offer p99", "freed → next offer at", true, RGBColor(40, 90, 200)),
        ("freed → next offer p50", "freed → next offer at", false, RGBColor(120, 160, 240)),
    ];
    for (panel, name) in panels.iter().zip(series) {
        let pts: Vec<&Row> = rows.iter().filter(|r| r.series == name).collect();
        if pts.is_empty() {
            continue;
        }
        let xmin = pts.iter().map(|r| r.x).min().unwrap_or(1).max(1) as f64;
        let xmax = pts.iter().map(|r| r.x).max().unwrap_or(10).max(2) as f64;
        let ymax = pts.iter().filter(|r| r.phase.contains(" at ")).map(|r| r.p99_ms).fold(1.0_f64, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(panel)
            .margin(18)
            .caption(format!("as {name} grow"), ("sans-serif", 18))
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d((xmin * 0.8..xmax * 1.25).log_scale(), 0.0..ymax)?;
        chart.configure_mesh().x_desc(name).y_desc("latency, ms").draw()?;
        for (label, phase, p99, color) in lines {
            let data: Vec<(f64, f64)> = pts
                .iter()
                .filter(|r| r.phase.starts_with(phase))
                .map(|r| (r.x as f64, if p99 { r.p99_ms } else { r.p50_ms }))
                .collect();
            chart
                .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart.draw_series(data.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    root.present()?;
    Ok(())
}
