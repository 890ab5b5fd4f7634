//! The textbook the simulator is checked against: Erlang C (M/M/c, nobody leaves) and Erlang A
//! (M/M/c+M, exponential patience; Garnett, Mandelbaum & Reiman 2002).

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

/// Erlang A's figures for one queue, served first come, first served.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErlangA {
    /// An arrival finds every agent busy: P(W > 0), of all arrivals (0..1).
    pub wait_prob: f64,
    /// An arrival leaves before an agent takes it (0..1).
    pub abandon_prob: f64,
    /// Mean wait of all arrivals, until served or gone (seconds).
    pub mean_wait_secs: f64,
    /// Mean wait of those served (seconds): the report's ASA.
    pub asa_secs: f64,
}

/// Erlang A for `c` agents, `a` erlangs offered, mean handle and mean (exponential) patience in
/// seconds. Infinite patience gives Erlang C (then `a` must be below `c`); any patience makes
/// every load stable, overload included.
pub fn erlang_a(c: u32, a: f64, handle_secs: f64, patience_secs: f64) -> ErlangA {
    let (lambda, mu, theta) = (a / handle_secs, 1.0 / handle_secs, 1.0 / patience_secs);
    let pi = stationary(c, lambda, mu, theta);
    let c_mu = f64::from(c) * mu;
    let (mut wait_prob, mut queue_len, mut served_wait, mut served) = (0.0, 0.0, 0.0, 0.0);
    // Ahead-of-me sojourns: with j waiting ahead, the line moves at cμ + jθ and I leave at θ, so
    // each step's mean time is 1 / (cμ + (j+1)θ), and I am served with cμ / (cμ + (j+1)θ).
    let mut time_to_front = 0.0;
    for (j, p) in pi.iter().skip(c as usize).enumerate() {
        let rate = c_mu + (j + 1) as f64 * theta;
        time_to_front += 1.0 / rate;
        wait_prob += p;
        queue_len += j as f64 * p;
        let serve = c_mu / rate;
        served += p * serve;
        served_wait += p * serve * time_to_front;
    }
    served += 1.0 - wait_prob;
    ErlangA {
        wait_prob,
        // Little's law on the queue, whose customers leave at θ each.
        abandon_prob: theta * queue_len / lambda,
        mean_wait_secs: queue_len / lambda,
        asa_secs: served_wait / served,
    }
}

/// The stationary distribution of the number in system: a birth-death chain with births at λ and
/// deaths at min(n, c)μ + max(n − c, 0)θ, cut where the rest weighs nothing. Worked in logs, as
/// aⁿ/n! overflows a double for a few hundred agents.
fn stationary(c: u32, lambda: f64, mu: f64, theta: f64) -> Vec<f64> {
    let death = |n: usize| (n.min(c as usize) as f64) * mu + (n.saturating_sub(c as usize) as f64) * theta;
    assert!(theta > 0.0 || lambda < f64::from(c) * mu, "without patience the load must be below the agents");
    let mut log_p = vec![0.0f64];
    let mut top = 0.0f64;
    loop {
        let n = log_p.len();
        let ratio = lambda / death(n);
        let next = log_p[n - 1] + ratio.ln();
        top = top.max(next);
        log_p.push(next);
        // Past the peak the terms fall at least geometrically (ratio < 1 and falling); stop when
        // that tail, even weighted by queue length, is below 1e-18 of the peak.
        let r = lambda / death(n + 1);
        if n > c as usize && r < 1.0 && next + (r / (1.0 - r)).ln() + (n as f64).ln() < top - 41.0 {
            break;
        }
        assert!(n < 50_000_000, "Erlang A: the chain does not settle");
    }
    let w: Vec<f64> = log_p.iter().map(|l| (l - top).exp()).collect();
    let z: f64 = w.iter().sum();
    w.into_iter().map(|x| x / z).collect()
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

    #[test]
    fn erlang_a_without_patience_is_erlang_c() {
        for (c, a) in [(1, 0.7), (10, 8.0), (10, 9.5), (500, 480.0)] {
            let x = erlang_a(c, a, 180.0, f64::INFINITY);
            assert!((x.wait_prob - erlang_c(c, a)).abs() < 1e-9, "{c} {a}: {x:?}");
            assert!((x.asa_secs - erlang_c_asa(c, a, 180.0)).abs() < 1e-6 * x.asa_secs, "{c} {a}: {x:?}");
            assert_eq!(x.abandon_prob, 0.0);
            // Very patient customers: nearly Erlang C.
            let y = erlang_a(c, a, 180.0, 1e9);
            assert!((y.wait_prob - x.wait_prob).abs() < 1e-4 && y.abandon_prob < 1e-4, "{y:?}");
        }
    }

    #[test]
    fn erlang_a_with_patience_as_long_as_handling_is_the_infinite_server_queue() {
        // θ = μ: the chain is M/M/∞'s, so the number in system is Poisson(a). With a = c = 10,
        // P(W > 0) = P(N ≥ 10) = 1 − 0.4579297 (Poisson tables), and the queue's mean is
        // E[(N − c)⁺] = Σ_{n<c} (c − n) P(N = n), as E[N] = c.
        let x = erlang_a(10, 10.0, 60.0, 60.0);
        assert!((x.wait_prob - (1.0 - 0.4579297)).abs() < 1e-6, "{x:?}");
        let mut pmf = (-10.0f64).exp();
        let mut queue = 0.0;
        for n in 0..10 {
            queue += (10 - n) as f64 * pmf;
            pmf *= 10.0 / f64::from(n + 1);
        }
        // λ = 1/6 a second, θ = 1/60: P(Ab) = θ E[Q] / λ = E[Q] / 10.
        assert!((x.abandon_prob - queue / 10.0).abs() < 1e-9, "{x:?}");
        assert!((x.mean_wait_secs - queue * 6.0).abs() < 1e-6, "{x:?}");
        // One agent, λ = μ = θ = 1: Poisson(1), so P(W > 0) = 1 − 1/e and E[Q] = 1/e.
        let y = erlang_a(1, 1.0, 1.0, 1.0);
        let e = (-1.0f64).exp();
        assert!((y.wait_prob - (1.0 - e)).abs() < 1e-12 && (y.abandon_prob - e).abs() < 1e-12, "{y:?}");
    }

    #[test]
    fn erlang_a_by_little_and_by_following_one_customer_agree() {
        // Little's law gives P(Ab) and the mean wait from the queue's length; following one
        // customer through the line gives them again. Finding j waiting, with i still ahead it
        // leaves state i at r_i = cμ + (i+1)θ and reaches it with (cμ + (i+1)θ) / (cμ + (j+1)θ),
        // so each state adds 1 / (cμ + (j+1)θ) to the mean wait. Overload too: patience keeps
        // it finite.
        for (c, a, handle, patience) in [(10, 8.5, 180.0, 120.0), (10, 11.0, 180.0, 120.0), (300, 330.0, 240.0, 90.0)] {
            let x = erlang_a(c, a, handle, patience);
            let (mu, theta) = (1.0 / handle, 1.0 / patience);
            let pi = stationary(c, a * mu, mu, theta);
            let (mut gone, mut wait, mut gone_wait, mut front) = (0.0, 0.0, 0.0, 0.0);
            for (j, p) in pi.iter().skip(c as usize).enumerate() {
                let rate = f64::from(c) * mu + (j + 1) as f64 * theta;
                front += 1.0 / rate;
                let serve = f64::from(c) * mu / rate;
                let wait_j = (j + 1) as f64 / rate;
                gone += p * (1.0 - serve);
                wait += p * wait_j;
                gone_wait += p * (wait_j - serve * front);
            }
            assert!((x.abandon_prob - gone).abs() < 1e-9, "{x:?} {gone}");
            assert!((x.mean_wait_secs - wait).abs() < 1e-6 * wait, "{x:?} {wait}");
            // Everyone's wait is the served's and the gone's, weighted.
            let parts = x.asa_secs * (1.0 - x.abandon_prob) + gone_wait;
            assert!((x.mean_wait_secs - parts).abs() < 1e-6 * wait, "{x:?} {parts}");
            assert!(x.wait_prob > 0.0 && x.wait_prob < 1.0, "{x:?}");
            assert!((pi.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        // Overload at 110 % leaves at least the excess: 1 − 1/1.1.
        assert!(erlang_a(10, 11.0, 180.0, 120.0).abandon_prob > 1.0 - 1.0 / 1.1);
    }
}
