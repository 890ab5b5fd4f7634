//! The SMS phase, at each rate: everyone ready and free; `--interactions` customers each text a
//! number of ours (a new conversation), every `JOIN_EVERY`-th texting again into it once an agent
//! has it; the desktops accept, reply and complete. Unpaced (`max`), `--concurrency` senders each
//! send the next first text once the last one's webhook is answered; paced, first texts leave on
//! a schedule (open loop) over as many senders.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::figures::{Lat, SmsFigures};
use super::{SmsPhases, wait_for};
use crate::row::{Decider, Row, Split};
use crate::sample::snap;

/// How long a phase's last conversations may take to finish once every first text is in.
const DRAIN_PATIENCE: Duration = Duration::from_secs(120);

impl SmsPhases<'_> {
    /// One row per rate (0: unpaced), in the order given.
    pub async fn texts(&mut self, rates: &[u32]) -> anyhow::Result<Vec<Row>> {
        let n = self.args.interactions;
        let mut rows = Vec::new();
        for &rate in rates {
            let label = if rate == 0 {
                "SMS text → offered, max".to_string()
            } else {
                format!("SMS text → offered at {rate}/s")
            };
            self.texts.reset();
            self.shared.split.lock().expect("lock").clear();
            let first = self.next;
            self.next += n;
            let ca = self.texts.counts();
            let a = snap(self.con, self.shared).await?;
            self.send(first..first + n, rate).await?;
            let texts = self.texts.clone();
            wait_for(|| (texts.counts() - ca).done >= n as u64, DRAIN_PATIENCE).await;
            let counts = self.texts.counts() - ca;
            let b = snap(self.con, self.shared).await?;
            let at = |us: u64| self.texts.epoch + Duration::from_micros(us);
            let last_offer = at(self.texts.last_offer_us.load(Relaxed));
            let last_stored = at(self.texts.last_stored_us.load(Relaxed));
            let mut row =
                Row::between(label.clone(), Decider::Sms, &a, &b, Some(last_offer), Some(&self.texts.offered));
            row.split = Split::of(&self.shared.split.lock().expect("lock"));
            let secs = last_stored.saturating_duration_since(a.at).as_secs_f64().max(1e-6);
            let lat = |h: &std::sync::Mutex<hdrhistogram::Histogram<u64>>| Lat::of(&h.lock().expect("lock"));
            row.sms = Some(SmsFigures {
                counts,
                stored_per_s: counts.stored as f64 / secs,
                stored: lat(&self.texts.stored),
                offered: lat(&self.texts.offered),
                joined: lat(&self.texts.joined),
                to_provider: lat(&self.texts.to_provider),
                reply_acked: lat(&self.texts.reply_acked),
            });
            if counts.done < n as u64 {
                println!("{label}: {} of {n} conversations finished within {DRAIN_PATIENCE:?}", counts.done);
            }
            for e in self.texts.take_errors() {
                println!("{label}: error: {e}");
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// The first texts of conversations `range`, at `rate` per second (0: each sender sends its
    /// next once the last is answered).
    async fn send(&self, range: std::ops::Range<usize>, rate: u32) -> anyhow::Result<()> {
        let next = Arc::new(AtomicUsize::new(range.start));
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..self.args.concurrency.max(1) {
            let (provider, texts, next) = (self.provider.clone(), self.texts.clone(), next.clone());
            let (first, end) = (range.start, range.end);
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Relaxed);
                    if i >= end {
                        return;
                    }
                    if rate > 0 {
                        let at = Duration::from_secs_f64((i - first) as f64 / f64::from(rate));
                        tokio::time::sleep_until(start + at).await;
                    }
                    provider.text(&texts, i, false).await;
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        Ok(())
    }
}
