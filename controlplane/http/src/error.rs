//! [`ApiError`]: every error the API returns, as `{"error": "human sentence", "field": …}`,
//! and [`AppJson`], the JSON extractor whose rejections use the same format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

/// An API error; converts into its HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: bad input. `field` names the offending JSON field (`None` when the body as a
    /// whole is unusable, e.g. malformed JSON).
    #[error("{message}")]
    BadRequest {
        /// The offending field, e.g. `"customer"` or `"page.url"`.
        field: Option<String>,
        /// A human sentence saying what is wrong and how to fix it.
        message: String,
    },
    /// 404: no such call (`field: "id"`) or no such route (`field: null`).
    #[error("{message}")]
    NotFound {
        /// `Some("id")` for an unknown id.
        field: Option<String>,
        /// A human sentence.
        message: String,
    },
    /// 422: well-formed but refused, e.g. a reused `Idempotency-Key` with another body.
    #[error("{message}")]
    Unprocessable {
        /// The offending field (or header).
        field: Option<String>,
        /// A human sentence.
        message: String,
    },
    /// 409: the request conflicts with the resource's state, e.g. cancelling a call that
    /// already ended.
    #[error("{message}")]
    Conflict {
        /// What it is about (`id`), if one thing.
        field: Option<String>,
        /// A human sentence.
        message: String,
    },
    /// 429: a rate limit; the response carries `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        /// Seconds until a retry may succeed.
        retry_after_s: u64,
        /// Which limit.
        limit: String,
        /// A human sentence.
        message: String,
    },
    /// 401: no credential, or an unknown one.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a valid credential for something else.
    #[error("{message}")]
    Forbidden {
        /// What it is about (`business`, `Origin`, `id`), if one thing.
        field: Option<String>,
        /// A human sentence.
        message: String,
    },
    /// 405: the path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 415: the body is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 413: the body is too large.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 503: the service cannot take calls now.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with `Retry-After`: the request cannot be carried now (body `"reason"`:
    /// `max_calls`, `descriptors`, `media_ports` or `max_setups_per_second`).
    #[error("{message}")]
    Overloaded {
        /// The limit that is short.
        reason: String,
        /// Seconds until a retry may be carried.
        retry_after_s: u64,
        /// A human sentence.
        message: String,
    },
    /// 503 with `Retry-After`: the process drains for a restart (body `"reason": "draining"`).
    #[error("{message}")]
    Draining {
        /// Seconds until a retry may succeed.
        retry_after_s: u64,
        /// A human sentence.
        message: String,
    },
    /// 500: something failed on our side.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) | Self::Draining { .. } | Self::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The field the error is about, if any.
    #[must_use]
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::BadRequest { field, .. }
            | Self::NotFound { field, .. }
            | Self::Unprocessable { field, .. }
            | Self::Conflict { field, .. }
            | Self::Forbidden { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(msg) = &self {
            tracing::error!(error = %msg, "internal error answering an API request");
        }
        let mut body = json!({ "error": self.to_string(), "field": self.field() });
        if let Self::Unauthorized(_) = &self {
            return (
                self.status(),
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                Json(body),
            )
                .into_response();
        }
        let shed = match &self {
            Self::Draining { retry_after_s, .. } => Some(("draining", *retry_after_s)),
            Self::Overloaded {
                reason,
                retry_after_s,
                ..
            } => Some((reason.as_str(), *retry_after_s)),
            _ => None,
        };
        if let Some((reason, retry_after_s)) = shed {
            body["reason"] = json!(reason);
            body["retry_after_s"] = json!(retry_after_s);
            let retry = retry_after_s.to_string();
            return (
                self.status(),
                [(axum::http::header::RETRY_AFTER, retry)],
                Json(body),
            )
                .into_response();
        }
        if let Self::TooManyRequests {
            retry_after_s,
            limit,
            ..
        } = &self
        {
            body["limit"] = json!(limit);
            body["retry_after_s"] = json!(retry_after_s);
            let retry = retry_after_s.to_string();
            return (
                self.status(),
                [(axum::http::header::RETRY_AFTER, retry)],
                Json(body),
            )
                .into_response();
        }
        (self.status(), Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonSyntaxError(e) => Self::BadRequest {
                field: None,
                message: format!("the request body is not valid JSON: {}", e.body_text()),
            },
            JsonRejection::JsonDataError(e) => Self::BadRequest {
                field: None,
                message: format!("the request body has the wrong shape: {}", e.body_text()),
            },
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType(
                "send the request body as JSON with Content-Type: application/json".into(),
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge("the request body is too large".into())
            }
            other => Self::BadRequest {
                field: None,
                message: other.body_text(),
            },
        }
    }
}

/// `axum::Json` with [`ApiError`] as its rejection, so that malformed bodies get the API's
/// error format. Also a response: serializes `T` as JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

#[axum::async_trait]
impl<S, T> FromRequest<S> for AppJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_overload_is_503_with_retry_after_and_its_reason() {
        let e = ApiError::Overloaded {
            reason: "max_calls".into(),
            retry_after_s: 3,
            message: "cannot take calls now".into(),
        };
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[axum::http::header::RETRY_AFTER], "3");
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["reason"], "max_calls");
        assert_eq!(v["retry_after_s"], 3);
        assert_eq!(v["error"], "cannot take calls now");
    }
}
