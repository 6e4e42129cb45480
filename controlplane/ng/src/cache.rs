//! Replies by cookie, so that a retransmitted command (Kamailio resends the same cookie every
//! second, up to five times, when no reply came) is answered with the first reply and never
//! executed twice. Bounded in count and time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a reply is kept: well beyond a sender's last retransmission.
pub const KEEP: Duration = Duration::from_secs(30);
/// Most replies kept (the oldest go first).
pub const MAX_ENTRIES: usize = 65_536;

/// The reply cache.
#[derive(Debug, Default)]
pub struct ReplyCache {
    map: HashMap<Vec<u8>, Vec<u8>>,
    order: VecDeque<(Instant, Vec<u8>)>,
}

impl ReplyCache {
    /// The reply once sent for `cookie`, if still kept.
    #[must_use]
    pub fn get(&self, cookie: &[u8]) -> Option<&[u8]> {
        self.map.get(cookie).map(Vec::as_slice)
    }

    /// Keeps `reply` for `cookie`, dropping expired and surplus entries.
    pub fn put(&mut self, now: Instant, cookie: &[u8], reply: Vec<u8>) {
        while let Some((t, _)) = self.order.front() {
            if now.duration_since(*t) < KEEP && self.order.len() < MAX_ENTRIES {
                break;
            }
            if let Some((_, c)) = self.order.pop_front() {
                self.map.remove(&c);
            }
        }
        if self.map.insert(cookie.to_vec(), reply).is_none() {
            self.order.push_back((now, cookie.to_vec()));
        }
    }

    /// Replies kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none are kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_repeats_then_forgets() {
        let t0 = Instant::now();
        let mut c = ReplyCache::default();
        c.put(t0, b"1_1", b"1_1 d6:result4:ponge".to_vec());
        assert_eq!(c.get(b"1_1"), Some(&b"1_1 d6:result4:ponge"[..]));
        assert_eq!(c.get(b"1_2"), None);
        c.put(t0 + KEEP + Duration::from_secs(1), b"1_2", b"x".to_vec());
        assert_eq!(c.get(b"1_1"), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut c = ReplyCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            c.put(t0, format!("{i}").as_bytes(), Vec::new());
        }
        assert!(c.len() <= MAX_ENTRIES);
        assert!(c.get(b"0").is_none());
        assert!(c.get(format!("{}", MAX_ENTRIES + 9).as_bytes()).is_some());
    }
}
