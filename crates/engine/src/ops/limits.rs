//! Rate counters shared by every instance of a routing domain, so N instances do not mean N times
//! the limit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Engine, Result};

impl Engine {
    /// Counts one `kind` event for `subject` (e.g. a web chat message from an address) in the
    /// current window of length `window`, shared by every instance. Returns how many there have
    /// been in this window, this one included, and how long the window still runs. Fixed windows
    /// on each instance's clock: a boundary may let up to twice the limit through in a moment,
    /// which is what a limit against floods can afford for one round trip a call.
    pub async fn count_in_window(&self, kind: &str, subject: &str, window: Duration) -> Result<(u64, Duration)> {
        let w = (window.as_millis() as u64).max(1);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let key = self.keys().rate(kind, subject, now / w);
        let mut con = self.connection();
        let (count, _): (u64, i64) =
            redis::pipe().atomic().incr(&key, 1).pexpire(&key, (2 * w) as i64).query_async(&mut con).await?;
        Ok((count, Duration::from_millis(w - now % w)))
    }
}
