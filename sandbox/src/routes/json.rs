//! A JSON body extractor whose rejections use the API's error shape.

use axum::{
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use crate::{AppState, error::ApiError};

/// Like `axum::Json`, but a bad body becomes an [`ApiError`].
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
                JsonRejection::JsonDataError(error) => ApiError::Invalid(error.body_text()),
                JsonRejection::JsonSyntaxError(error) => ApiError::MalformedBody(error.body_text()),
                rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge(state.config.max_body_bytes)
                }
                rejection => ApiError::MalformedBody(rejection.body_text()),
            }),
        }
    }
}
