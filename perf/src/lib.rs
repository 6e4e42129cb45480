//! callbridge's benchmark suite (`scripts/perf <scenario> [--quick]`, `scripts/perf all`).
//! The binaries in `src/bin/` are the scenarios; this library holds what they share: the
//! report every scenario writes ([`report`]) and what the end-to-end scenarios (`cps`,
//! `announce`) need to run callbridge and SIPp ([`harness`]).
#![forbid(unsafe_code)]

pub mod harness;
pub mod report;
