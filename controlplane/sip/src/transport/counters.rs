//! SIP messages counted by direction, method and response class, for `GET /metrics`.
//!
//! The labels come from a fixed set ([`METHODS`], [`CLASSES`]): a method the set does not
//! name counts as `other`, so nothing from the wire becomes a label. A response counts under
//! its `CSeq` method (a `200` to an INVITE is an `INVITE` message and a `2xx` response).
//! Classification reads the first line and, for responses, the `CSeq` header of the raw
//! bytes, so the sending side needs no parsed message.

use std::sync::atomic::{AtomicU64, Ordering};

/// The method labels, in counter order; the last is every other method.
pub const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "UPDATE",
    "INFO",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "MESSAGE",
    "other",
];

/// The response class labels (`1xx` … `6xx`), in counter order.
pub const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received (after the parser accepted it).
    Rx,
    /// Handed to a socket or connection to send.
    Tx,
}

impl Direction {
    /// `"rx"` or `"tx"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rx => "rx",
            Self::Tx => "tx",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Rx => 0,
            Self::Tx => 1,
        }
    }
}

/// Messages by direction × method and responses by direction × class (relaxed atomics).
#[derive(Debug, Default)]
pub struct MessageCounters {
    messages: [[AtomicU64; METHODS.len()]; 2],
    responses: [[AtomicU64; CLASSES.len()]; 2],
}

impl MessageCounters {
    /// Counts one message from its raw bytes (one datagram or one framed stream message).
    pub fn count(&self, dir: Direction, data: &[u8]) {
        let (method, class) = classify(data);
        self.messages[dir.index()][method].fetch_add(1, Ordering::Relaxed);
        if let Some(c) = class {
            self.responses[dir.index()][c].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Messages so far with the method label [`METHODS`]`[method]`.
    #[must_use]
    pub fn messages(&self, dir: Direction, method: usize) -> u64 {
        self.messages[dir.index()]
            .get(method)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Responses so far of class [`CLASSES`]`[class]`.
    #[must_use]
    pub fn responses(&self, dir: Direction, class: usize) -> u64 {
        self.responses[dir.index()]
            .get(class)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// `(method index, response class index)`: a request's method from its first token, a
/// response's from its `CSeq`; `None` class for requests.
fn classify(data: &[u8]) -> (usize, Option<usize>) {
    let data = data.trim_ascii_start();
    let line_end = data
        .iter()
        .position(|&c| c == b'\r' || c == b'\n')
        .unwrap_or(data.len());
    let first = &data[..line_end];
    if let Some(rest) = first.strip_prefix(b"SIP/2.0 ") {
        let class = match rest.first() {
            Some(d @ b'1'..=b'6') => Some(usize::from(d - b'1')),
            _ => None,
        };
        let method = cseq_method(&data[line_end..]).map_or(METHODS.len() - 1, method_index);
        // A response with an odd status counts as a message (method) but in no class.
        return (method, class);
    }
    let token = first.split(|&c| c == b' ').next().unwrap_or_default();
    (method_index(token), None)
}

fn method_index(token: &[u8]) -> usize {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(token))
        .unwrap_or(METHODS.len() - 1)
}

/// The method of the first `CSeq` header in `rest`: what follows the first line, starting
/// with that line's end (stops at the blank line that ends the header section).
fn cseq_method(rest: &[u8]) -> Option<&[u8]> {
    for line in rest.split(|&c| c == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        if line[..colon].trim_ascii().eq_ignore_ascii_case(b"CSeq") {
            return line[colon + 1..]
                .split(|c| c.is_ascii_whitespace())
                .rfind(|t| !t.is_empty());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(m: &str) -> usize {
        METHODS.iter().position(|x| *x == m).unwrap()
    }

    #[test]
    fn requests_and_responses_by_method_and_class() {
        let c = MessageCounters::default();
        c.count(
            Direction::Rx,
            b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        c.count(
            Direction::Tx,
            b"SIP/2.0 180 Ringing\r\nVia: x\r\ncseq:  1   INVITE\r\n\r\nbody CSeq: 2 BYE",
        );
        c.count(Direction::Tx, b"SIP/2.0 200 OK\r\nCSeq: 2 bye\r\n\r\n");
        c.count(Direction::Rx, b"FOO sip:a@b SIP/2.0\r\n\r\n");
        c.count(Direction::Rx, b"prack sip:a@b SIP/2.0\r\n\r\n");
        c.count(Direction::Tx, b"SIP/2.0 999 Odd\r\n\r\n");
        assert_eq!(c.messages(Direction::Rx, idx("INVITE")), 1);
        assert_eq!(c.messages(Direction::Tx, idx("INVITE")), 1);
        assert_eq!(c.messages(Direction::Tx, idx("BYE")), 1);
        assert_eq!(c.messages(Direction::Rx, idx("other")), 1);
        assert_eq!(c.messages(Direction::Rx, idx("PRACK")), 1);
        // No CSeq: `other`, and no class for 999.
        assert_eq!(c.messages(Direction::Tx, idx("other")), 1);
        assert_eq!(c.responses(Direction::Tx, 0), 1);
        assert_eq!(c.responses(Direction::Tx, 1), 1);
        assert_eq!(
            (0..6).map(|i| c.responses(Direction::Rx, i)).sum::<u64>(),
            0
        );
        assert_eq!(c.messages(Direction::Rx, 99), 0);
    }
}
