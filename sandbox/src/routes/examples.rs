//! `GET /api/examples`: the bundled example scripts with their sources.

use axum::{Json, extract::State};
use serde::Serialize;

use crate::{AppState, examples::Example};

#[derive(Serialize)]
pub struct ExampleList {
    examples: Vec<Example>,
}

pub async fn list(State(state): State<AppState>) -> Json<ExampleList> {
    Json(ExampleList {
        examples: state.examples.all().cloned().collect(),
    })
}
