//! callbridge's benchmark suite (`scripts/perf <scenario> [--quick]`, `scripts/perf all`).
//! The binaries in `src/bin/` are the scenarios; this library holds what they share: the
//! report every scenario writes ([`report`]), what the end-to-end scenarios (`cps`,
//! `announce`) need to run callbridge and SIPp ([`harness`]), an rtpengine ng-protocol
//! client ([`ng`]) and the DPDK scenarios' traffic ([`dpdkgen`]).
#![forbid(unsafe_code)]

pub mod dpdkgen;
pub mod harness;
pub mod ng;
pub mod report;
