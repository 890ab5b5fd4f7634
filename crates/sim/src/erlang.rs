//! The textbook the simulator is checked against: Erlang C (M/M/c, nobody leaves).

/// Probability that an arrival waits, for `c` agents and `a` erlangs of offered load (a < c).
pub fn erlang_c(c: u32, a: f64) -> f64 {
    // Erlang B by its stable recursion, then C from B.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let rho = a / f64::from(c);
    b / (1.0 - rho * (1.0 - b))
}

/// Mean wait (seconds) of M/M/c: P(wait) × handle / (c − a).
pub fn erlang_c_asa(c: u32, a: f64, handle_secs: f64) -> f64 {
    erlang_c(c, a) * handle_secs / (f64::from(c) - a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_published_values() {
        // 10 agents, 8 erlangs: P(wait) 0.409 (the standard tables' value).
        assert!((erlang_c(10, 8.0) - 0.4092).abs() < 1e-3);
        // One agent: M/M/1, P(wait) = rho.
        assert!((erlang_c(1, 0.7) - 0.7).abs() < 1e-12);
        assert!((erlang_c_asa(1, 0.5, 100.0) - 100.0).abs() < 1e-9);
    }
}
