//! A JSON body extractor whose rejections use the API's error shape, and which reads the body
//! within `MAX_BODY_BYTES` and `BODY_READ_TIMEOUT_MS` (see `connections::read_body`).

use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::{HeaderMap, header},
};
use connections::BodyError;
use serde::de::DeserializeOwned;

use crate::{AppState, error::ApiError};

/// Like `axum::Json`, but a bad or slow body becomes an [`ApiError`].
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !declares_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let (parts, body) = request.into_parts();
        let config = &state.config;
        let bytes = connections::read_body(
            body,
            &parts.headers,
            config.max_body_bytes,
            config.connections.body_read_timeout,
        )
        .await
        .map_err(|error| match error {
            BodyError::TooLarge(limit) => ApiError::PayloadTooLarge(limit),
            BodyError::TooSlow(deadline) => ApiError::BodyTimeout(deadline),
            BodyError::Unreadable(error) => ApiError::MalformedBody(error.to_string()),
        })?;
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(Self(value)),
            Err(JsonRejection::JsonDataError(error)) => Err(ApiError::Invalid(error.body_text())),
            Err(rejection) => Err(ApiError::MalformedBody(rejection.body_text())),
        }
    }
}

/// `Content-Type: application/json`, or another JSON media type (`application/*+json`).
fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(contract::api::is_json_content_type)
}
