//! callbridge's benchmark suite (`scripts/perf <scenario> [--quick]`, `scripts/perf all`).
//! The binaries in `src/bin/` are the scenarios; this library holds what they share: the
//! report every scenario writes ([`report`]) and the DPDK scenarios' traffic ([`dpdkgen`]).
#![forbid(unsafe_code)]

pub mod dpdkgen;
pub mod report;
