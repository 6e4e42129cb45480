//! The failure reason names live in four places: [`FailReason::as_str`] (with
//! [`FailReason::ALL`]), the module docs' endings table, the README and the status page's
//! texts. This checks that the three others list exactly [`FailReason::ALL`]'s names.
//!
//! `interrupted` is a fifth reason the service writes for a call cut short by a restart (never
//! an outcome of the machine); the README and the page list it too.

use std::collections::BTreeSet;

use super::*;

/// Reasons the service writes besides the machine's.
const SERVICE_ONLY: &[&str] = &["interrupted"];

fn names() -> BTreeSet<String> {
    FailReason::ALL
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect()
}

/// `failed/NAME` occurrences in a text.
fn failed_names(text: &str) -> BTreeSet<String> {
    text.split("failed/")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// The keys of the JavaScript object literal `var REASON = { key: "…", … };`.
fn js_reason_keys(src: &str) -> BTreeSet<String> {
    let start = src
        .find("var REASON = {")
        .expect("the page has a REASON map");
    let body = &src[start + "var REASON = {".len()..];
    let body = &body[..body.find("};").expect("REASON map closes")];
    body.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, _)| k.trim().to_owned())
        .collect()
}

#[test]
fn every_reason_is_distinct_and_all_lists_every_variant() {
    assert_eq!(names().len(), FailReason::ALL.len());
    // A new variant without an ALL entry fails to compile here.
    for r in FailReason::ALL {
        match r {
            FailReason::CustomerBusy
            | FailReason::CustomerNoAnswer
            | FailReason::CustomerRejected
            | FailReason::CustomerHungUp
            | FailReason::CustomerUnreachable
            | FailReason::NoAgent
            | FailReason::AgentNoAnswer
            | FailReason::AgentUnreachable
            | FailReason::MediaTimeout
            | FailReason::Internal => {}
        }
    }
}

#[test]
fn the_module_docs_table_lists_every_reason() {
    let src = include_str!("../../click_to_call.rs");
    let table: String = src
        .lines()
        .filter(|l| l.starts_with("//! |"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(failed_names(&table), names());
}

#[test]
fn the_readme_lists_every_reason() {
    let readme = include_str!("../../../../../README.md");
    // The list after "`reason` (when failed) one of".
    let at = readme
        .find("`reason` (when failed) one of")
        .expect("README lists the reasons");
    let list = &readme[at..];
    let list = &list[..list.find(';').expect("the list ends with ';'")];
    let listed: BTreeSet<String> = list
        .split('`')
        .skip(3)
        .step_by(2)
        .flat_map(|chunk| chunk.split(',').map(|n| n.trim().to_owned()))
        .filter(|n| !n.is_empty())
        .collect();
    let mut want = names();
    want.extend(SERVICE_ONLY.iter().map(|s| (*s).to_owned()));
    assert_eq!(listed, want, "README: the reason list");
    // The endings table (## Failure reasons … next heading): every machine reason once.
    let table = &readme[readme
        .find("| customer busy (486/600) |")
        .expect("endings table")..];
    let table = &table[..table.find("\n\n").unwrap_or(table.len())];
    assert_eq!(failed_names(table), names(), "README: the endings table");
}

#[test]
fn the_status_pages_explain_every_reason() {
    let mut want = names();
    want.extend(SERVICE_ONLY.iter().map(|s| (*s).to_owned()));
    let page = include_str!("../../../../http/src/page.rs");
    assert_eq!(js_reason_keys(page), want, "http/src/page.rs");
    let widget = include_str!("../../../../http/assets/widget.js");
    assert_eq!(js_reason_keys(widget), want, "http/assets/widget.js");
}
