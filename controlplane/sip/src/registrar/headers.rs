//! The header values the registrar reads and writes: the AOR user of `To`, a Contact's identity
//! (RFC 3261 19.1.4 comparison), the `Date` value. Pure functions.

use std::time::SystemTime;

use crate::msg::{NameAddr, Request};

/// Whether `uri` is a `sip:` or `sips:` URI.
pub(super) fn is_sip_uri(uri: &str) -> bool {
    uri.split_once(':').is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
    })
}

/// The user part of the To URI (`sip:` or `sips:`), percent-decoded; `None` without one.
pub(super) fn aor_user(req: &Request) -> Option<String> {
    let to = NameAddr::parse("To", req.headers.get("To")?).ok()?;
    if !is_sip_uri(&to.uri) {
        return None;
    }
    let (_, rest) = to.uri.split_once(':')?;
    let (userinfo, _) = rest.split_once('@')?;
    let user = userinfo.split(':').next().unwrap_or("");
    let user = percent_decode(user)?;
    (!user.is_empty()).then_some(user)
}

pub(super) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A Contact URI reduced to what RFC 3261 19.1.4 compares here: scheme and host
/// case-insensitively, user and port exactly, and the `transport`, `user`, `ttl`, `method` and
/// `maddr` parameters (other parameters, and URI headers, are ignored).
pub(super) fn uri_key(uri: &str) -> String {
    let uri = uri.split('?').next().unwrap_or("");
    let (scheme, rest) = uri.split_once(':').unwrap_or(("sip", uri));
    let mut parts = rest.split(';');
    let hostpart = parts.next().unwrap_or("");
    let (userinfo, hostport) = match hostpart.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, hostpart),
    };
    let mut params: Vec<String> = parts
        .filter_map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            let n = n.trim().to_ascii_lowercase();
            ["transport", "user", "ttl", "method", "maddr"]
                .contains(&n.as_str())
                .then(|| format!("{n}={}", v.trim().to_ascii_lowercase()))
        })
        .collect();
    params.sort();
    format!(
        "{}:{}{}{};{}",
        scheme.to_ascii_lowercase(),
        userinfo.unwrap_or(""),
        if userinfo.is_some() { "@" } else { "" },
        hostport.to_ascii_lowercase(),
        params.join(";")
    )
}

/// An RFC 1123 date in GMT (`Sun, 06 Nov 1994 08:49:37 GMT`), as the `Date` header carries
/// (RFC 3261 20.17).
pub(super) fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // civil-from-days (H. Hinnant), for days since 1970-01-01
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
