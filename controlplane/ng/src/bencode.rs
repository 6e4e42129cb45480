//! Bencode, as the ng protocol uses it: byte strings, integers, lists and dictionaries.
//!
//! [`decode`] borrows from the datagram (no copies of strings, the SDP included) and checks
//! every length against what is left, the nesting against [`MAX_DEPTH`] and the number of
//! items against [`MAX_ITEMS`], so a hostile or truncated message is an error, never a panic
//! or an unbounded allocation. Dictionary keys are kept in the order they came in (rtpengine
//! neither requires nor sends sorted keys); [`Value::get`] finds a key wherever it is.
//! [`Encoder`] writes replies.

use std::fmt::Write as _;

use crate::NgError;

/// Deepest nesting accepted (the ng protocol uses three or four levels).
pub const MAX_DEPTH: usize = 16;
/// Most values in one message (strings, integers, lists and dictionaries together).
pub const MAX_ITEMS: usize = 4096;

/// One decoded value, borrowing its strings from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i<n>e`
    Int(i64),
    /// `<len>:<bytes>`
    Bytes(&'a [u8]),
    /// `l…e`
    List(Vec<Self>),
    /// `d…e`, keys in arrival order.
    Dict(Vec<(&'a [u8], Self)>),
}

impl<'a> Value<'a> {
    /// The value of `key` in a dictionary (the first, if repeated).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Dict(d) => d.iter().find(|(k, _)| *k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A byte string as UTF-8 text.
    #[must_use]
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Self::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// An integer, or a byte string holding a decimal integer (Kamailio sends some numbers
    /// as strings).
    #[must_use]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(n) => Some(*n),
            Self::Bytes(_) => self.as_str()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// The elements of a list.
    #[must_use]
    pub fn as_list(&self) -> Option<&[Self]> {
        match self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }
}

/// Decodes exactly one value filling all of `input`.
///
/// # Errors
/// [`NgError::Bencode`] with what is wrong and where.
pub fn decode(input: &[u8]) -> Result<Value<'_>, NgError> {
    let mut d = Decoder {
        buf: input,
        pos: 0,
        items: 0,
        at_end_error: false,
    };
    let v = d.value(0)?;
    if d.pos != input.len() {
        return Err(d.err("trailing bytes after the dictionary"));
    }
    Ok(v)
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    items: usize,
    /// Set when decoding stopped only because the input ended (more may come).
    at_end_error: bool,
}

impl<'a> Decoder<'a> {
    fn err(&self, what: &str) -> NgError {
        NgError::Bencode(format!("{what} at byte {}", self.pos))
    }

    fn peek(&mut self) -> Result<u8, NgError> {
        match self.buf.get(self.pos) {
            Some(&b) => Ok(b),
            None => {
                self.at_end_error = true;
                Err(self.err("unexpected end of message"))
            }
        }
    }

    fn truncated(&mut self, what: &str) -> NgError {
        self.at_end_error = true;
        self.err(what)
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, NgError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.items += 1;
        if self.items > MAX_ITEMS {
            return Err(self.err("too many values"));
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let n = self.number(b'e')?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(self.err("dictionary key is not a string"));
                    }
                    let k = self.bytes()?;
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                }
                self.pos += 1;
                Ok(Value::Dict(items))
            }
            _ => Err(self.err("not a bencode value")),
        }
    }

    /// Digits (optionally one leading `-`) up to `end`, consumed.
    fn number(&mut self, end: u8) -> Result<i64, NgError> {
        let start = self.pos;
        let rest = &self.buf[start..];
        let Some(len) = rest.iter().position(|&b| b == end) else {
            // Unterminated: more may come, unless what is there can never be a number.
            let plausible = rest.len() <= 20
                && rest
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b.is_ascii_digit() || (i == 0 && b == b'-'));
            return Err(if plausible {
                self.truncated("unterminated number")
            } else {
                self.err("bad number")
            });
        };
        let text = std::str::from_utf8(&rest[..len]).map_err(|_| self.err("bad number"))?;
        let ok = !text.is_empty()
            && text.len() <= 20
            && text
                .strip_prefix('-')
                .unwrap_or(text)
                .bytes()
                .all(|b| b.is_ascii_digit());
        let n = if ok { text.parse().ok() } else { None };
        let n = n.ok_or_else(|| self.err("bad number"))?;
        self.pos = start + len + 1;
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], NgError> {
        let len = self.number(b':')?;
        let len = usize::try_from(len).map_err(|_| self.err("negative string length"))?;
        let Some(end) = self.pos.checked_add(len) else {
            return Err(self.err("string length overflows"));
        };
        if end > self.buf.len() {
            return Err(self.truncated("string longer than the message"));
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

/// The length of the one complete value at the start of `input`: `Ok(None)` while more
/// bytes are needed (a stream transport), an error when it can never become valid.
///
/// # Errors
/// [`NgError::Bencode`], as [`decode`].
pub fn complete_len(input: &[u8]) -> Result<Option<usize>, NgError> {
    let mut d = Decoder {
        buf: input,
        pos: 0,
        items: 0,
        at_end_error: false,
    };
    match d.value(0) {
        Ok(_) => Ok(Some(d.pos)),
        Err(_) if d.pos >= input.len() || d.at_end_error => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes bencode into a buffer: `dict_begin`, then key/value pairs, `end`.
#[derive(Debug, Default)]
pub struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    /// An encoder whose output starts with `prefix` (the cookie and its space).
    #[must_use]
    pub fn with_prefix(prefix: &[u8]) -> Self {
        let mut out = Vec::with_capacity(prefix.len() + 256);
        out.extend_from_slice(prefix);
        Self { out }
    }

    /// `d`
    pub fn dict(&mut self) -> &mut Self {
        self.out.push(b'd');
        self
    }

    /// `l`
    pub fn list(&mut self) -> &mut Self {
        self.out.push(b'l');
        self
    }

    /// `e`: ends the innermost dictionary or list.
    pub fn end(&mut self) -> &mut Self {
        self.out.push(b'e');
        self
    }

    /// A byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let mut len = String::new();
        let _ = write!(len, "{}:", b.len());
        self.out.extend_from_slice(len.as_bytes());
        self.out.extend_from_slice(b);
        self
    }

    /// A text string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// An integer.
    pub fn int(&mut self, n: i64) -> &mut Self {
        let mut t = String::new();
        let _ = write!(t, "i{n}e");
        self.out.extend_from_slice(t.as_bytes());
        self
    }

    /// A key and a text value (inside a dictionary).
    pub fn kv(&mut self, key: &str, value: &str) -> &mut Self {
        self.str(key).str(value)
    }

    /// A key and an integer value (inside a dictionary).
    pub fn ki(&mut self, key: &str, value: i64) -> &mut Self {
        self.str(key).int(value)
    }

    /// The bytes written.
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_kamailio_offer_with_keys_in_any_order() {
        let msg = b"d3:sdp5:v=0\r\n7:call-id3:abc8:from-tag2:ft5:flagsl13:trust-addresse7:replacel6:origin18:session-connectione13:received-froml3:IP49:127.0.0.1e7:command5:offere";
        let v = decode(msg).unwrap();
        assert_eq!(v.get("command").and_then(Value::as_str), Some("offer"));
        assert_eq!(v.get("sdp").and_then(Value::as_str), Some("v=0\r\n"));
        let rf = v.get("received-from").and_then(Value::as_list).unwrap();
        assert_eq!(rf[1].as_str(), Some("127.0.0.1"));
        assert_eq!(v.get("nope"), None);
    }

    #[test]
    fn integers_and_numeric_strings() {
        let v = decode(b"d1:ai-42e1:b2:17e").unwrap();
        assert_eq!(v.get("a").and_then(Value::as_int), Some(-42));
        assert_eq!(v.get("b").and_then(Value::as_int), Some(17));
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        for bad in [
            &b""[..],
            b"d",
            b"d3:abc",
            b"d3:abci1",
            b"99999999999999999999999:x",
            b"5:abc",
            b"i12",
            b"i1-2e",
            b"ie",
            b"-1:x",
            b"di1ei2ee",
            b"x",
            b"d1:a1:be trailing",
            b"lllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "l".repeat(MAX_DEPTH + 2) + &"e".repeat(MAX_DEPTH + 2);
        assert!(decode(deep.as_bytes()).is_err());
        let many = format!("l{}e", "i1e".repeat(MAX_ITEMS + 1));
        assert!(decode(many.as_bytes()).is_err());
    }

    #[test]
    fn every_prefix_of_a_message_fails_cleanly() {
        let msg = b"d7:command5:offer3:sdp3:v=04:listli1e2:abee";
        assert!(decode(msg).is_ok());
        for n in 0..msg.len() {
            assert!(decode(&msg[..n]).is_err());
        }
    }

    #[test]
    fn complete_len_waits_for_more_and_finds_the_end() {
        let msg = b"d7:command4:pinge";
        for n in 0..msg.len() {
            assert_eq!(complete_len(&msg[..n]).unwrap(), None, "{n}");
        }
        assert_eq!(complete_len(msg).unwrap(), Some(msg.len()));
        let mut two = msg.to_vec();
        two.extend_from_slice(b"5323_2 d");
        assert_eq!(complete_len(&two).unwrap(), Some(msg.len()));
        assert!(complete_len(b"dx").is_err());
        assert!(complete_len(b"d3:abcxe").is_err());
    }

    #[test]
    fn encodes_what_it_decodes() {
        let mut e = Encoder::with_prefix(b"c1 ");
        e.dict()
            .kv("result", "ok")
            .ki("n", -3)
            .str("l")
            .list()
            .str("x")
            .end()
            .end();
        let out = e.finish();
        assert_eq!(out, b"c1 d6:result2:ok1:ni-3e1:ll1:xee");
        let v = decode(&out[3..]).unwrap();
        assert_eq!(v.get("result").and_then(Value::as_str), Some("ok"));
    }
}
