//! callbridge's HTTP API and web page (axum 0.7).
//!
//! ```text
//!  browser / CRM ──HTTP──► router(state) ──validated Submit / Bridge / Sale──► dyn CallService (service::Service)
//!                                  ◄──────── RequestView / CallRecord (from the store) ──┘
//! ```
//!
//! Contract: the JSON field names, status names and failure reasons are public contracts
//! (see [`routes::router`] for the routes, [`view_json`] for the call document). Every
//! error, including JSON rejections, is `{"error": "human sentence", "field": "name" | null}`
//! ([`ApiError`], [`AppJson`]). Handlers do no I/O besides calling [`CallService`], on tokio's
//! blocking pool (its methods commit to the store).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod auth;
mod calls;
mod desktop;
pub mod error;
mod live;
pub mod model;
mod openapi;
pub mod page;
pub mod routes;
mod sip_trace;
pub mod state;

pub use error::{ApiError, AppJson};
pub use model::{
    format_time, record_json, records_csv, view_json, AgentRef, BridgeRequest, BusinessInfo,
    CallKind, CallRequest, PageInfo, SaleRequest, CSV_COLUMNS,
};
pub use routes::{openapi, router};
pub use service::ServiceError;
pub use state::{AppState, CallService};

#[cfg(test)]
mod tests;
