//! Estimated waiting time from a bounded history of recent handle times.

use std::collections::VecDeque;
use std::time::Duration;

/// The last handle times (talk + wrap-up) of one business, at most `cap` of them.
#[derive(Debug, Default)]
pub(super) struct HandleTimes {
    recent: VecDeque<Duration>,
    sum: Duration,
}

impl HandleTimes {
    /// Adds one, forgetting the oldest past `cap`.
    pub(super) fn record(&mut self, d: Duration, cap: usize) {
        self.recent.push_back(d);
        self.sum = self.sum.saturating_add(d);
        while self.recent.len() > cap.max(1) {
            if let Some(old) = self.recent.pop_front() {
                self.sum = self.sum.saturating_sub(old);
            }
        }
    }

    /// The mean, or `default` with no history.
    pub(super) fn mean(&self, default: Duration) -> Duration {
        match u32::try_from(self.recent.len()) {
            Ok(0) | Err(_) => default,
            Ok(n) => self.sum / n,
        }
    }

    /// How many are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.recent.len()
    }
}

/// The wait of the call at 0-based `position`: the calls ahead of it and itself, each taking
/// `mean`, shared among `agents` working in parallel.
pub(super) fn wait(mean: Duration, position: usize, agents: u32) -> Duration {
    let calls = u32::try_from(position.saturating_add(1)).unwrap_or(u32::MAX);
    mean.saturating_mul(calls) / agents.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn mean_of_a_bounded_history() {
        let mut h = HandleTimes::default();
        assert_eq!(h.mean(180 * S), 180 * S);
        h.record(60 * S, 3);
        h.record(120 * S, 3);
        assert_eq!(h.mean(180 * S), 90 * S);
        h.record(30 * S, 3);
        h.record(90 * S, 3); // 60 s forgotten
        assert_eq!(h.len(), 3);
        assert_eq!(h.mean(180 * S), 80 * S);
    }

    #[test]
    fn wait_is_shared_among_agents() {
        assert_eq!(wait(120 * S, 0, 1), 120 * S);
        assert_eq!(wait(120 * S, 3, 2), 240 * S);
        assert_eq!(wait(120 * S, 2, 4), 90 * S);
    }
}
