//! callbridge's HTTP API and web page (axum 0.7).
//!
//! ```text
//!  browser / CRM ──HTTP──► router(state) ──validated CallRequest / BridgeRequest──► dyn CallService (orchestrator)
//!                                  ◄──────────────── CallView ───────────────────────┘
//! ```
//!
//! Contract: the JSON field names, status names and failure reasons are public contracts
//! (see [`routes::router`] for the routes, [`CallView::to_json`] for the call document). Every
//! error, including JSON rejections, is `{"error": "human sentence", "field": "name" | null}`
//! ([`ApiError`], [`AppJson`]). Handlers do no I/O besides calling [`CallService`], whose
//! methods never block.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod model;
pub mod page;
pub mod routes;
pub mod state;

pub use error::{ApiError, AppJson};
pub use model::{
    format_time, AgentRef, BridgeRequest, BusinessInfo, CallKind, CallRequest, CallView, LegMedia,
    MediaView, PageInfo, StatusEvent,
};
pub use routes::router;
pub use state::{AppState, CallService, ServiceError};

#[cfg(test)]
mod tests;
