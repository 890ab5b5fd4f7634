//! What the SMS point's tasks share: each conversation's customer and our number, when its texts
//! left the provider and its reply left the desktop, the latency histograms and the counts.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::shared::{hist, record};

/// Customers are German mobiles `+4915112` and six digits (valid E.164: the channel refuses
/// numbers that are not), one per conversation, so each first text is a new interaction.
const CUSTOMER_PREFIX: &str = "+4915112";
pub const MAX_CONVERSATIONS: usize = 1_000_000;

/// Every `JOIN_EVERY`-th conversation, the customer texts again once an agent has it: that text
/// joins the open conversation (a message on the agent's desktop, no new interaction).
pub const JOIN_EVERY: usize = 4;

pub fn customer(idx: usize) -> String {
    format!("{CUSTOMER_PREFIX}{idx:06}")
}

/// The conversation a customer's number (as the daemon writes it, E.164) belongs to.
pub fn conversation_of(number: &str) -> Option<usize> {
    number.strip_prefix(CUSTOMER_PREFIX)?.parse().ok()
}

/// Whether the customer of conversation `idx` texts a second time.
pub fn joins(idx: usize) -> bool {
    idx % JOIN_EVERY == JOIN_EVERY - 1
}

/// Our number reaching the `i`-th served queue (a Berlin number of the contact center's).
pub fn our_number(i: usize) -> String {
    format!("+4930555{i:05}")
}

/// One conversation's moments, µs since `epoch` (0: not yet).
#[derive(Default)]
struct Moments {
    first_text: AtomicU64,
    second_text: AtomicU64,
    reply: AtomicU64,
}

/// Counts that only grow; a phase's are the difference of two readings.
#[derive(Clone, Copy, Default, Debug)]
pub struct Counts {
    /// Webhook requests sent (first texts and texts joining open conversations).
    pub texts: u64,
    pub joining: u64,
    /// Answered 200 (stored).
    pub stored: u64,
    /// Answered otherwise, or not at all.
    pub not_stored: u64,
    pub offers: u64,
    /// Texts joining open conversations that reached the agent's desktop.
    pub joined: u64,
    /// REST sends the provider received (agents' replies).
    pub replies: u64,
    /// Conversations the desktop is done with (completed, or given up after an error).
    pub done: u64,
    /// Desktop requests refused, REST calls with wrong credentials, texts with no conversation.
    pub errors: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, a: Counts) -> Counts {
        Counts {
            texts: self.texts - a.texts,
            joining: self.joining - a.joining,
            stored: self.stored - a.stored,
            not_stored: self.not_stored - a.not_stored,
            offers: self.offers - a.offers,
            joined: self.joined - a.joined,
            replies: self.replies - a.replies,
            done: self.done - a.done,
            errors: self.errors - a.errors,
        }
    }
}

pub struct Texts {
    pub epoch: Instant,
    moments: Vec<Moments>,
    /// Our number each conversation's texts go to (the queue drawn for it).
    to: Vec<String>,
    /// Webhook sent → answered 200, µs.
    pub stored: Mutex<Histogram<u64>>,
    /// First text's webhook sent → the offer on an agent's desktop, µs.
    pub offered: Mutex<Histogram<u64>>,
    /// Second text's webhook sent → the message on the agent's desktop, µs.
    pub joined: Mutex<Histogram<u64>>,
    /// SendReply leaving the desktop → the provider receiving the REST send, µs.
    pub to_provider: Mutex<Histogram<u64>>,
    /// SendReply leaving the desktop → its ack (the daemon acks once the provider took it), µs.
    pub reply_acked: Mutex<Histogram<u64>>,
    /// µs since `epoch` of the latest 200 and the latest offer.
    pub last_stored_us: AtomicU64,
    pub last_offer_us: AtomicU64,
    texts: AtomicU64,
    joining: AtomicU64,
    stored_n: AtomicU64,
    not_stored: AtomicU64,
    offers: AtomicU64,
    joined_n: AtomicU64,
    replies: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Texts {
    /// Room for `conversations`, conversation `i` texting `to(i)`; moments are counted from
    /// `epoch` (the desktops' own, so a decision can be split where its function call ran).
    pub fn new(epoch: Instant, conversations: usize, to: impl Fn(usize) -> String) -> Texts {
        Texts {
            epoch,
            moments: (0..conversations).map(|_| Moments::default()).collect(),
            to: (0..conversations).map(to).collect(),
            stored: Mutex::new(hist()),
            offered: Mutex::new(hist()),
            joined: Mutex::new(hist()),
            to_provider: Mutex::new(hist()),
            reply_acked: Mutex::new(hist()),
            last_stored_us: AtomicU64::new(0),
            last_offer_us: AtomicU64::new(0),
            texts: AtomicU64::new(0),
            joining: AtomicU64::new(0),
            stored_n: AtomicU64::new(0),
            not_stored: AtomicU64::new(0),
            offers: AtomicU64::new(0),
            joined_n: AtomicU64::new(0),
            replies: AtomicU64::new(0),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_errors: Mutex::default(),
        }
    }

    pub fn us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn to(&self, idx: usize) -> &str {
        self.to.get(idx).map_or("", String::as_str)
    }

    pub fn counts(&self) -> Counts {
        Counts {
            texts: self.texts.load(Relaxed),
            joining: self.joining.load(Relaxed),
            stored: self.stored_n.load(Relaxed),
            not_stored: self.not_stored.load(Relaxed),
            offers: self.offers.load(Relaxed),
            joined: self.joined_n.load(Relaxed),
            replies: self.replies.load(Relaxed),
            done: self.done.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }

    /// Empties the histograms for a new phase.
    pub fn reset(&self) {
        for h in [&self.stored, &self.offered, &self.joined, &self.to_provider, &self.reply_acked] {
            h.lock().expect("lock").reset();
        }
    }

    fn moments(&self, idx: usize) -> Option<&Moments> {
        self.moments.get(idx)
    }

    /// When conversation `idx`'s first text left (0: not yet).
    pub fn first_text_at(&self, idx: usize) -> u64 {
        self.moments(idx).map_or(0, |m| m.first_text.load(Relaxed))
    }

    /// A text of conversation `idx` leaves the provider now (`second`: the one joining it).
    pub fn text_sent(&self, idx: usize, second: bool) -> u64 {
        let now = self.us();
        self.texts.fetch_add(1, Relaxed);
        if second {
            self.joining.fetch_add(1, Relaxed);
        }
        if let Some(m) = self.moments(idx) {
            (if second { &m.second_text } else { &m.first_text }).store(now, Relaxed);
        }
        now
    }

    /// Its webhook was answered: 200 (stored) or not.
    pub fn text_answered(&self, sent_us: u64, stored: bool) {
        let now = self.us();
        if stored {
            self.stored_n.fetch_add(1, Relaxed);
            record(&self.stored, now.saturating_sub(sent_us));
            self.last_stored_us.fetch_max(now, Relaxed);
        } else {
            self.not_stored.fetch_add(1, Relaxed);
        }
    }

    /// Conversation `idx` was offered to an agent at `now_us`.
    pub fn offered(&self, idx: Option<usize>, now_us: u64) {
        self.offers.fetch_add(1, Relaxed);
        self.last_offer_us.fetch_max(now_us, Relaxed);
        match idx.map(|i| self.first_text_at(i)) {
            Some(sent) if sent > 0 => record(&self.offered, now_us.saturating_sub(sent)),
            _ => self.error("an offer for a conversation the benchmark did not start"),
        }
    }

    /// Conversation `idx`'s second text reached its agent at `now_us`.
    pub fn joined(&self, idx: usize, now_us: u64) {
        self.joined_n.fetch_add(1, Relaxed);
        if let Some(sent) = self.moments(idx).map(|m| m.second_text.load(Relaxed)).filter(|&s| s > 0) {
            record(&self.joined, now_us.saturating_sub(sent));
        }
    }

    /// The agent of conversation `idx` sends the reply now.
    pub fn reply_sent(&self, idx: usize) -> u64 {
        let now = self.us();
        if let Some(m) = self.moments(idx) {
            m.reply.store(now, Relaxed);
        }
        now
    }

    /// The provider received a REST send to `to`; `auth_ok`: with the account's credentials.
    pub fn reply_at_provider(&self, to: &str, auth_ok: bool) {
        let now = self.us();
        self.replies.fetch_add(1, Relaxed);
        if !auth_ok {
            self.error(format!("a REST send to {to} without the account's credentials"));
        }
        match conversation_of(to).and_then(|i| self.moments(i)).map(|m| m.reply.load(Relaxed)) {
            Some(sent) if sent > 0 => record(&self.to_provider, now.saturating_sub(sent)),
            _ => self.error(format!("a REST send to {to}, whose conversation has no reply")),
        }
    }

    pub fn reply_acked(&self, sent_us: u64) {
        record(&self.reply_acked, self.us().saturating_sub(sent_us));
    }

    pub fn done(&self) {
        self.done.fetch_add(1, Relaxed);
    }

    pub fn error(&self, what: impl std::fmt::Display) {
        self.errors.fetch_add(1, Relaxed);
        let mut first = self.first_errors.lock().expect("lock");
        if first.len() < 5 {
            first.push(what.to_string());
        }
    }

    /// The errors' words so far (the first few), emptied.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.first_errors.lock().expect("lock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_are_valid_mobile_numbers_that_name_their_conversation() {
        for idx in [0, 3, 999_999] {
            let n = customer(idx);
            let e164 = switchboard_crm::identity::normalize(switchboard::model::Channel::Sms, &n, None)
                .unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(e164, n, "already E.164");
            assert_eq!(conversation_of(&e164), Some(idx));
        }
        assert_eq!(conversation_of("+4930555000001"), None);
        assert!((0..8).filter(|&i| joins(i)).eq([3, 7]));
    }

    #[test]
    fn a_phase_reads_the_difference_of_its_counts() {
        let t = Texts::new(Instant::now(), 4, |_| our_number(0));
        let a = t.counts();
        let sent = t.text_sent(1, false);
        t.text_answered(sent, true);
        t.offered(Some(1), t.us());
        t.offered(Some(2), t.us());
        let d = t.counts() - a;
        assert_eq!((d.texts, d.stored, d.offers, d.errors), (1, 1, 2, 1), "conversation 2 sent no text");
        assert_eq!(t.offered.lock().unwrap().len(), 1);
        assert_eq!(t.take_errors().len(), 1);
        t.reply_at_provider(&customer(1), true);
        assert_eq!(t.counts().errors, 2, "a REST send before its reply left");
    }
}
