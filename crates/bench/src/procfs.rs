//! This process's and the machine's counters, from /proc.

/// This process's CPU time so far (daemon and benchmark desktops), in microseconds.
pub fn own_cpu_us() -> u64 {
    cpu_us_of("self")
}

/// Process `pid`'s CPU time so far (all its threads), in microseconds; 0 once it is gone.
pub fn pid_cpu_us(pid: u32) -> u64 {
    cpu_us_of(&pid.to_string())
}

fn cpu_us_of(proc_dir: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{proc_dir}/stat")) else { return 0 };
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    // Clock ticks are 100 Hz on Linux.
    f.iter().sum::<u64>() * 10_000
}

/// The machine's CPU time so far, from /proc/stat: (stolen, all) in clock ticks. On a shared
/// virtual machine, time stolen by the hypervisor shows up as latency the code did not cause.
pub fn machine_ticks() -> (u64, u64) {
    let f = cpu_ticks();
    (f.get(7).copied().unwrap_or(0), f.iter().sum())
}

/// The machine's CPU time so far: (idle, all) in clock ticks, all cores together.
pub fn idle_ticks() -> (u64, u64) {
    let f = cpu_ticks();
    (f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0), f.iter().sum())
}

/// /proc/stat's first line: user nice system idle iowait irq softirq steal (guest time is
/// already in user).
fn cpu_ticks() -> Vec<u64> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return Vec::new() };
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return Vec::new() };
    cpu.split_whitespace().take(8).filter_map(|v| v.parse().ok()).collect()
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
