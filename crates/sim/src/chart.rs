//! A line chart as plain SVG: panels in a grid, each with its axes, ticks and one line per series
//! sharing one legend. Hand-written, as a chart of a few hundred points needs no drawing crate.

use std::fmt::Write as _;

/// One line: a value per interval, None where there is nothing to show (the line breaks there).
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub points: Vec<Option<f64>>,
}

#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    /// Appended to tick labels and tooltips: " %", " s".
    pub unit: &'static str,
    /// A fixed top (100 for a percentage); None: from the data.
    pub y_max: Option<f64>,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    /// A line under the legend saying what is shown.
    pub caption: String,
    /// Clock time of the first interval's start (ms since midnight), for the time axis.
    pub day_start_ms: u64,
    pub interval_ms: u64,
    pub intervals: usize,
    pub columns: usize,
    pub panels: Vec<Panel>,
}

const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 230.0;
/// Left, right, top, bottom margins inside a panel's cell.
const ML: f64 = 58.0;
const MR: f64 = 16.0;
const MT: f64 = 28.0;
const MB: f64 = 36.0;
const HEADER: f64 = 78.0;
/// Distinguishable for the colour-blind (Okabe–Ito), each line also dashed differently.
const COLOURS: [&str; 4] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7"];
const DASHES: [&str; 4] = ["", "6 3", "2 2", "8 3 2 3"];

pub fn svg(c: &Chart) -> String {
    let columns = c.columns.max(1);
    let rows = c.panels.len().div_ceil(columns).max(1);
    let (w, h) = (PANEL_W * columns as f64, HEADER + PANEL_H * rows as f64);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" font-weight="bold" text-anchor="middle">{}</text>"#,
        w / 2.0,
        escape(&c.title)
    );
    legend(&mut s, c, w);
    let _ =
        writeln!(s, r##"<text x="{}" y="66" fill="#555" text-anchor="middle">{}</text>"##, w / 2.0, escape(&c.caption));
    for (i, p) in c.panels.iter().enumerate() {
        let x0 = PANEL_W * (i % columns) as f64;
        let y0 = HEADER + PANEL_H * (i / columns) as f64;
        panel(&mut s, c, p, x0, y0);
    }
    s.push_str("</svg>\n");
    s
}

/// The series' names, from the first panel (every panel shows the same ones).
fn legend(s: &mut String, c: &Chart, w: f64) {
    let Some(first) = c.panels.first() else { return };
    let item = 130.0;
    let mut x = w / 2.0 - item * first.lines.len() as f64 / 2.0;
    for (k, l) in first.lines.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="44" x2="{}" y2="44" stroke="{}" stroke-width="2.5" stroke-dasharray="{}"/>"#,
            x + 28.0,
            COLOURS[k % COLOURS.len()],
            DASHES[k % DASHES.len()]
        );
        let _ = writeln!(s, r#"<text x="{}" y="48">{}</text>"#, x + 34.0, escape(&l.label));
        x += item;
    }
}

fn panel(s: &mut String, c: &Chart, p: &Panel, x0: f64, y0: f64) {
    let (left, top) = (x0 + ML, y0 + MT);
    let (pw, ph) = (PANEL_W - ML - MR, PANEL_H - MT - MB);
    let data_max = p.lines.iter().flat_map(|l| l.points.iter().flatten()).fold(0.0f64, |m, v| m.max(*v));
    let (y_max, y_step) = match p.y_max {
        Some(m) => (m, m / 5.0),
        None => nice_axis(data_max),
    };
    let n = c.intervals.max(1) as f64;
    let x_of = |i: f64| left + pw * i / n;
    let y_of = |v: f64| top + ph * (1.0 - (v / y_max).clamp(0.0, 1.0));
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="12" font-weight="bold" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        y0 + 18.0,
        escape(&p.title)
    );
    // Grid and y ticks.
    let mut v = 0.0;
    while v <= y_max + y_step / 1000.0 {
        let y = y_of(v);
        let _ = writeln!(s, r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##, left + pw);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}{}</text>"#,
            left - 4.0,
            y + 4.0,
            fmt_tick(v),
            escape(p.unit)
        );
        v += y_step;
    }
    // Time ticks on interval boundaries, a few hours apart.
    let hours = n * c.interval_ms as f64 / 3_600_000.0;
    let step_h = [1.0, 2.0, 3.0, 4.0, 6.0, 12.0, 24.0, 48.0, 96.0, 168.0]
        .into_iter()
        .find(|st| hours / st <= 8.0)
        .unwrap_or(336.0);
    let mut t_h = 0.0;
    while t_h <= hours + 1e-9 {
        let x = left + pw * t_h / hours;
        let _ =
            writeln!(s, r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#333"/>"##, top + ph, top + ph + 4.0);
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            top + ph + 16.0,
            clock(c.day_start_ms + (t_h * 3_600_000.0) as u64)
        );
        t_h += step_h;
    }
    let _ = writeln!(s, r##"<path d="M{left} {top} V{} H{}" fill="none" stroke="#333"/>"##, top + ph, left + pw);
    // The lines, broken where an interval has nothing, each point with its value on hover.
    for (k, l) in p.lines.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let mut d = String::new();
        let mut pen_down = false;
        for (i, pt) in l.points.iter().enumerate() {
            match pt {
                Some(v) => {
                    let _ =
                        write!(d, "{}{:.1} {:.1} ", if pen_down { "L" } else { "M" }, x_of(i as f64 + 0.5), y_of(*v));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = writeln!(
            s,
            r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{}"/>"#,
            d.trim_end(),
            DASHES[k % DASHES.len()]
        );
        for (i, pt) in l.points.iter().enumerate() {
            if let Some(v) = pt {
                let start = c.day_start_ms + i as u64 * c.interval_ms;
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"><title>{} {}–{}: {:.1}{}</title></circle>"#,
                    x_of(i as f64 + 0.5),
                    y_of(*v),
                    escape(&l.label),
                    clock(start),
                    clock(start + c.interval_ms),
                    v,
                    escape(p.unit)
                );
            }
        }
    }
}

/// A round top and tick step covering `max` with about five ticks.
fn nice_axis(max: f64) -> (f64, f64) {
    if !max.is_finite() || max <= 0.0 {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * mag).find(|st| *st >= raw).unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn fmt_tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// "08:30", with the day counted past the first ("d2 08:30").
fn clock(ms: u64) -> String {
    let (day, in_day) = (ms / 86_400_000, ms % 86_400_000);
    let hm = format!("{:02}:{:02}", in_day / 3_600_000, in_day % 3_600_000 / 60_000);
    if day == 0 { hm } else { format!("d{} {hm}", day + 1) }
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well-formed enough for any SVG reader: every tag closed in order, attribute values quoted,
    /// no bare `<` or `&` in text. Returns the count of each element.
    fn check_xml(doc: &str) -> std::collections::BTreeMap<String, usize> {
        let mut open: Vec<String> = Vec::new();
        let mut counts = std::collections::BTreeMap::new();
        let mut rest = doc;
        while let Some(lt) = rest.find('<') {
            let text = &rest[..lt];
            assert!(!text.contains('>'), "bare > in {text:?}");
            for (i, _) in text.match_indices('&') {
                let ent = &text[i..];
                assert!(["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| ent.starts_with(e)), "bare & in {text:?}");
            }
            let gt = rest[lt..].find('>').expect("tag closed") + lt;
            let tag = &rest[lt + 1..gt];
            assert!(tag.matches('"').count().is_multiple_of(2) && !tag.contains('<'), "{tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name), "closing {name}");
            } else {
                let name: String = tag.chars().take_while(|ch| !ch.is_whitespace() && *ch != '/').collect();
                *counts.entry(name.clone()).or_insert(0) += 1;
                if !tag.ends_with('/') {
                    open.push(name);
                }
            }
            rest = &rest[gt + 1..];
        }
        assert!(open.is_empty(), "left open: {open:?}");
        assert_eq!(rest.trim(), "");
        counts
    }

    fn chart(intervals: usize) -> Chart {
        let line = |label: &str, f: fn(usize) -> Option<f64>| Line {
            label: label.into(),
            points: (0..intervals).map(f).collect(),
        };
        Chart {
            title: "Sales & <billing>".into(),
            caption: "per half hour".into(),
            day_start_ms: 8 * 3_600_000,
            interval_ms: 1_800_000,
            intervals,
            columns: 2,
            panels: vec![
                Panel {
                    title: "Service level".into(),
                    unit: " %",
                    y_max: Some(100.0),
                    lines: vec![
                        line("today", |i| Some(50.0 + i as f64)),
                        line("proposed", |i| (i != 3).then_some(90.0)),
                    ],
                },
                Panel {
                    title: "ASA".into(),
                    unit: " s",
                    y_max: None,
                    lines: vec![line("today", |i| Some(i as f64 * 3.0)), line("proposed", |_| None)],
                },
                Panel { title: "empty".into(), unit: " s", y_max: None, lines: vec![] },
            ],
        }
    }

    #[test]
    fn the_svg_is_well_formed_with_a_point_per_value() {
        let doc = svg(&chart(16));
        let counts = check_xml(&doc);
        assert_eq!(counts["svg"], 1);
        // 16 + 15 + 16 + 0 points, each with its tooltip.
        assert_eq!(counts["circle"], 47);
        assert_eq!(counts["title"], 47);
        assert!(doc.contains("Sales &amp; &lt;billing&gt;"), "escaped title");
        // Eight hours by the hour on each of three panels: 08:00 … 16:00.
        assert_eq!(doc.matches(">08:00<").count(), 3);
        assert_eq!(doc.matches(">16:00<").count(), 3);
        // The proposed line breaks at the missing interval: two pieces.
        let path = doc.lines().find(|l| l.starts_with("<path") && l.contains(COLOURS[1])).unwrap();
        assert_eq!(path.matches('M').count(), 2, "{path}");
        // A week: ticks a day apart, days counted.
        let week = svg(&chart(7 * 48));
        check_xml(&week);
        assert!(week.contains(">d8 08:00<"), "the week's end labelled");
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
        assert_eq!(nice_axis(43.0), (50.0, 10.0));
        assert_eq!(nice_axis(7.2), (8.0, 2.0));
        assert_eq!(nice_axis(240.0), (250.0, 50.0));
        assert_eq!(clock(8 * 3_600_000 + 30 * 60_000), "08:30");
    }
}
