//! Key paths ([`Seg`]) and where they are in the TOML text: byte offset to line
//! ([`line_of`]), offset to key path ([`locate`]), key path to span ([`span_of`]), and a
//! best-effort key for syntax errors ([`syntax_key`]).

use std::ops::Range;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// A key path as written in errors: `agent[1].contact`; `(top level)` when empty.
pub(super) fn render_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() {
        "(top level)".into()
    } else {
        s
    }
}

/// A key step of a key path.
pub(super) fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

// ---- positions ---------------------------------------------------------------------------

/// 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `name` from a message like "missing field `name`".
pub(super) fn backticked<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = msg.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

fn contains(span: Option<Range<usize>>, off: usize) -> bool {
    span.is_some_and(|s| s.start <= off && off < s.end.max(s.start + 1))
}

/// The path of the deepest key or value whose text holds `off`.
pub(super) fn locate(item: &toml_edit::Item, off: usize) -> Option<Vec<Seg>> {
    use toml_edit::{Item, Value};
    let prefixed = |seg: Seg, mut p: Vec<Seg>| {
        p.insert(0, seg);
        p
    };
    match item {
        Item::Table(t) => {
            for (k, _) in t.iter() {
                let Some((kk, child)) = t.get_key_value(k) else {
                    continue;
                };
                if let Some(p) = locate(child, off) {
                    return Some(prefixed(key(k), p));
                }
                if contains(kk.span(), off) {
                    return Some(vec![key(k)]);
                }
            }
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                for (k, _) in t.iter() {
                    let Some((kk, child)) = t.get_key_value(k) else {
                        continue;
                    };
                    if let Some(p) = locate(child, off) {
                        return Some(vec![Seg::Index(i), key(k)].into_iter().chain(p).collect());
                    }
                    if contains(kk.span(), off) {
                        return Some(vec![Seg::Index(i), key(k)]);
                    }
                }
                if contains(t.span(), off) {
                    return Some(vec![Seg::Index(i)]);
                }
            }
        }
        Item::Value(Value::InlineTable(t)) => {
            for (k, _) in t.iter() {
                let Some((kk, child)) = t.get_key_value(k) else {
                    continue;
                };
                if let Some(p) = locate(child, off) {
                    return Some(prefixed(key(k), p));
                }
                if contains(kk.span(), off) {
                    return Some(vec![key(k)]);
                }
            }
        }
        Item::Value(Value::Array(arr)) => {
            for (i, v) in arr.iter().enumerate() {
                if contains(v.span(), off) {
                    return Some(vec![Seg::Index(i)]);
                }
            }
        }
        _ => {}
    }
    contains(item.span(), off).then(Vec::new)
}

/// The span of a key path: the last key's text (or the array item / table header). Falls
/// back to the nearest ancestor present in the text.
pub(super) fn span_of(root: &toml_edit::Item, path: &[Seg]) -> Option<Range<usize>> {
    (1..=path.len())
        .rev()
        .find_map(|n| span_exact(root, &path[..n]))
}

fn span_exact(item: &toml_edit::Item, path: &[Seg]) -> Option<Range<usize>> {
    use toml_edit::{Item, Value};
    let Some((seg, rest)) = path.split_first() else {
        return item.span();
    };
    match (seg, item) {
        (Seg::Key(k), Item::Table(t)) => span_key(t.get_key_value(k), rest),
        (Seg::Key(k), Item::Value(Value::InlineTable(t))) => span_key(t.get_key_value(k), rest),
        (Seg::Index(i), Item::ArrayOfTables(a)) => {
            let t = a.get(*i)?;
            match rest.split_first() {
                None => t.span(),
                Some((Seg::Key(k), tail)) => span_key(t.get_key_value(k), tail),
                Some(_) => None,
            }
        }
        (Seg::Index(i), Item::Value(Value::Array(a))) if rest.is_empty() => a.get(*i)?.span(),
        _ => None,
    }
}

fn span_key(kv: Option<(&toml_edit::Key, &toml_edit::Item)>, rest: &[Seg]) -> Option<Range<usize>> {
    let (k, child) = kv?;
    if rest.is_empty() {
        k.span().or_else(|| child.span())
    } else {
        span_exact(child, rest)
    }
}

/// A best-effort key path for a syntax error: the key on the error's line (or the table
/// header it is in), prefixed by the table it belongs to.
pub(super) fn syntax_key(text: &str, off: usize) -> String {
    let line_no = line_of(text, off);
    let mut table = String::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if n + 1 == line_no {
            if l.starts_with('[') {
                let name = l
                    .trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim();
                return if name.is_empty() {
                    "(table header)".into()
                } else {
                    name.into()
                };
            }
            if let Some((k, _)) = l.split_once('=') {
                let k = k.trim().trim_matches('"');
                if !k.is_empty() && !k.contains(char::is_whitespace) {
                    return if table.is_empty() {
                        k.into()
                    } else {
                        format!("{table}.{k}")
                    };
                }
            }
            return if table.is_empty() {
                "(top level)".into()
            } else {
                table
            };
        }
        if l.starts_with('[') {
            table = l
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
        }
    }
    "(end of file)".into()
}
