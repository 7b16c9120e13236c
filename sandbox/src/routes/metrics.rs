//! `GET /metrics`: the Prometheus exposition (see [`crate::metrics`]). It is on the sandbox's
//! own port, which only the ingress reaches; the ingress forwards `/api/*` and nothing else.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use crate::{
    AppState,
    metrics::{CONTENT_TYPE, Holdings, MemoryShares},
    resources,
};

pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.encode(Holdings {
        workers_busy: state.scheduler.running(),
        workers: state.pool.alive(),
        supervisor_resident_bytes: resources::resident_bytes("self").unwrap_or(0),
        workers_resident_bytes: resident_bytes(&state.pool.pids()),
        sessions_resident_bytes: resident_bytes(&state.sessions.worker_pids()),
        open_fds: resources::open_descriptors(),
        sessions_open: state.sessions.open(),
        memory: MemoryShares {
            total: state.memory_plan.total,
            workers: state.memory_plan.workers,
            supervisor_reserve: state.memory_plan.supervisor_reserve,
            requests: state.memory_plan.request_budget,
            requests_charged: state.memory.used() as u64,
        },
    });
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Resident memory of the processes `pids`, together.
fn resident_bytes(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| resources::resident_bytes(&pid.to_string()))
        .sum()
}
