//! `[store]`: `path` (SQLite, the default) or `url` (PostgreSQL), never both.

use super::*;

#[test]
fn url_selects_postgresql_and_path_keeps_its_default() {
    let c = parse(&format!(
        "{FULL}[store]\nurl = \"postgres://cb@127.0.0.1:5432/callbridge\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.store.url.as_deref(),
        Some("postgres://cb@127.0.0.1:5432/callbridge")
    );
    let c = parse(FULL).unwrap();
    assert_eq!(c.store.url, None);
    assert_eq!(c.store.path, Path::new("/etc/callbridge/callbridge.db"));
    let c = parse(&format!("{FULL}[store]\npath = \"data/cb.db\"\n")).unwrap();
    assert_eq!(c.store.path, Path::new("/etc/callbridge/data/cb.db"));
}

#[test]
fn a_bad_url_is_an_error_at_its_line() {
    let e = assert_prefix(
        &format!("{FULL}[store]\nurl = \"mysql://cb@db/cb\"\n"),
        "20: store.url: ",
    );
    assert!(e.contains("not a PostgreSQL URL"), "{e}");
    let e = assert_prefix(
        &format!("{FULL}[store]\nurl = \"postgres://127.0.0.1:5432/cb\"\n"),
        "20: store.url: ",
    );
    assert!(e.contains("no user"), "{e}");
    assert_prefix(
        &format!("{FULL}[store]\nurl = \"postgres://cb@127.0.0.1:port/cb\"\n"),
        "20: store.url: ",
    );
}

#[test]
fn url_and_path_are_exclusive() {
    let e = assert_prefix(
        &format!("{FULL}[store]\npath = \"cb.db\"\nurl = \"postgres://cb@127.0.0.1/cb\"\n"),
        "21: store.url: ",
    );
    assert!(e.contains("exclusive"), "{e}");
}
