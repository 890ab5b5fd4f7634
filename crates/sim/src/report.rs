//! The report: per queue, each configuration side by side (Markdown for people, CSV for tools,
//! and the day in a chart).

use crate::chart::{self, Chart, Line, Panel};
use crate::figures::{Day, Figures, INTERVAL_MS, Interval};
use crate::run::START_MS;

/// `runs`: (label, figures), e.g. ("today", ..), ("proposed", ..).
pub fn markdown(title: &str, runs: &[(&str, &Figures)]) -> String {
    let mut out = format!("# {title}\n\n");
    out.push_str(
        "| queue | config | arrivals | answered | abandoned | service level | ASA | waited | longest wait |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    let mut names: Vec<&str> = runs.iter().flat_map(|(_, f)| f.queues.iter().map(|q| q.queue.as_str())).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        for (label, f) in runs {
            if let Some(q) = f.queues.iter().find(|q| q.queue == name) {
                out.push_str(&format!(
                    "| {} | {label} | {} | {} | {} ({:.1} %) | {:.1} % in {} s | {:.1} s | {:.1} % | {:.0} s |\n",
                    q.queue,
                    q.arrivals,
                    q.answered,
                    q.abandoned,
                    q.abandon_pct,
                    q.service_level_pct,
                    q.service_level_secs,
                    q.asa_secs,
                    q.waited_pct,
                    q.longest_wait_secs
                ));
            }
        }
    }
    out.push_str("\nOver the day, by half hour of arrival, the warm-up included:\n\n");
    out.push_str("![Service level and ASA over the day](chart.svg)\n");
    out.push_str("\nAgents: handling time over their time on shift, the whole run for an agent named in no shift (chats handled at once each count).\n\n");
    out.push_str("| config | mean | least used agent | most used agent |\n|---|---|---|---|\n");
    for (label, f) in runs {
        let min = f.utilisation.iter().min_by(|a, b| a.1.total_cmp(b.1));
        let max = f.utilisation.iter().max_by(|a, b| a.1.total_cmp(b.1));
        let show = |e: Option<(&String, &f64)>| e.map_or("-".to_string(), |(a, u)| format!("{a} {u:.1} %"));
        out.push_str(&format!("| {label} | {:.1} % | {} | {} |\n", f.occupancy_pct, show(min), show(max)));
    }
    out
}

/// One row per (config, queue).
pub fn csv(runs: &[(&str, &Figures)]) -> String {
    let mut out = String::from(
        "config,queue,arrivals,answered,abandoned,service_level_pct,service_level_secs,asa_secs,asa_ci,waited_pct,waited_ci,abandon_pct,longest_wait_secs,occupancy_pct\n",
    );
    for (label, f) in runs {
        for q in &f.queues {
            out.push_str(&format!(
                "{label},{},{},{},{},{:.3},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3}\n",
                q.queue,
                q.arrivals,
                q.answered,
                q.abandoned,
                q.service_level_pct,
                q.service_level_secs,
                q.asa_secs,
                q.asa_ci,
                q.waited_pct,
                q.waited_ci,
                q.abandon_pct,
                q.longest_wait_secs,
                f.occupancy_pct
            ));
        }
    }
    out
}

/// `chart.svg`: service level and ASA per interval, all queues and (with more than one) each,
/// one line per configuration.
pub fn chart(title: &str, runs: &[(&str, &Day)]) -> String {
    let Some((_, first)) = runs.first() else { return chart::svg(&empty(title)) };
    let pair = |name: &str, queue: Option<&str>| {
        let lines = |f: fn(&Interval) -> Option<f64>| -> Vec<Line> {
            runs.iter()
                .map(|(label, d)| Line {
                    label: label.to_string(),
                    points: series(d, queue).map_or_else(Vec::new, |xs| xs.iter().map(f).collect()),
                })
                .collect()
        };
        [
            Panel {
                title: format!("{name}: service level"),
                unit: " %",
                y_max: Some(100.0),
                lines: lines(|x| x.service_level_pct),
            },
            Panel { title: format!("{name}: ASA"), unit: " s", y_max: None, lines: lines(|x| x.asa_secs) },
        ]
    };
    let mut panels = pair("All queues", None).to_vec();
    if first.queues.len() > 1 {
        for (q, _) in &first.queues {
            panels.extend(pair(q, Some(q)));
        }
    }
    chart::svg(&Chart {
        title: title.to_string(),
        caption: CAPTION.to_string(),
        day_start_ms: first.start_ms % 86_400_000,
        interval_ms: INTERVAL_MS,
        intervals: first.all.len(),
        columns: 2,
        panels,
    })
}

/// One queue's intervals, or all queues' (None).
fn series<'a>(d: &'a Day, queue: Option<&str>) -> Option<&'a [Interval]> {
    match queue {
        None => Some(&d.all),
        Some(q) => d.queues.iter().find(|(n, _)| n == q).map(|(_, xs)| xs.as_slice()),
    }
}

const CAPTION: &str = "By half hour of arrival. Service level: answered within the queue's threshold, of those \
                       answered or gone; ASA: mean wait of the answered.";

fn empty(title: &str) -> Chart {
    Chart {
        title: title.to_string(),
        caption: CAPTION.to_string(),
        day_start_ms: START_MS % 86_400_000,
        interval_ms: INTERVAL_MS,
        intervals: 1,
        columns: 2,
        panels: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(i: u64, sl: Option<f64>, asa: Option<f64>) -> Interval {
        Interval {
            start_ms: i * INTERVAL_MS,
            arrivals: 1,
            answered: 1,
            abandoned: 0,
            service_level_pct: sl,
            asa_secs: asa,
        }
    }

    #[test]
    fn the_chart_shows_every_configuration_for_all_queues_and_each() {
        // 16 half hours; queue b has nothing in its first hour.
        let xs = |skip: u64| (0..16).map(move |i| interval(i, (i >= skip).then_some(80.0), (i >= skip).then_some(9.0)));
        let day = Day {
            start_ms: START_MS,
            all: xs(0).collect(),
            queues: vec![("a".into(), xs(0).collect()), ("b".into(), xs(2).collect())],
        };
        let svg = chart("t", &[("today", &day), ("proposed", &day)]);
        // Three panel pairs (all, a, b), two lines each: 2 × 2 × (16 + 16 + 14) points.
        assert_eq!(svg.matches("<circle").count(), 184);
        for t in ["All queues: service level", "a: ASA", "b: service level"] {
            assert!(svg.contains(&format!(">{t}<")), "{t}");
        }
        assert_eq!(svg.matches(">proposed 08:30–09:00: 80.0 %<").count(), 2, "all and a, not b");
        // One queue: its panels would repeat the total's.
        let one = Day { start_ms: START_MS, all: xs(0).collect(), queues: vec![("a".into(), xs(0).collect())] };
        let svg = chart("t", &[("today", &one)]);
        assert_eq!(svg.matches("<circle").count(), 32);
        assert!(!svg.contains(">a: ASA<"));
        assert!(chart("t", &[]).ends_with("</svg>\n"));
    }
}
