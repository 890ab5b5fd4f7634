//! The report: per queue, each configuration side by side (Markdown for people, CSV for tools).

use crate::figures::Figures;

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
    out.push_str("\nAgents: handling time over the run's length (chats handled at once each count).\n\n");
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
