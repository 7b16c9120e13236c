//! `GET /api/examples`: the bundled example scripts with their sources.

use axum::{Json, extract::State};
use contract::api::ExampleList;

use crate::AppState;

pub async fn list(State(state): State<AppState>) -> Json<ExampleList> {
    Json(ExampleList {
        examples: state.examples.all().cloned().collect(),
    })
}
