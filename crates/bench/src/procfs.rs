//! This process's and the machine's counters, from /proc.

/// This process's CPU time so far (daemon and benchmark desktops), in microseconds.
pub fn own_cpu_us() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0 };
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    // Clock ticks are 100 Hz on Linux.
    f.iter().sum::<u64>() * 10_000
}

/// The machine's CPU time so far, from /proc/stat: (stolen, all) in clock ticks. On a shared
/// virtual machine, time stolen by the hypervisor shows up as latency the code did not cause.
pub fn machine_ticks() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return (0, 0) };
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return (0, 0) };
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let f: Vec<u64> = cpu.split_whitespace().take(8).filter_map(|v| v.parse().ok()).collect();
    (f.get(7).copied().unwrap_or(0), f.iter().sum())
}

pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().to_string()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
