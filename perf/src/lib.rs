//! benchmarks
#![forbid(unsafe_code)]
