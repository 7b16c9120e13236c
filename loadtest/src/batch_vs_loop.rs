//! One batch against a loop of requests, as issue 23 promises it: the same inputs sent as one
//! `POST /api/batch`, and as one `POST /api/execute` after another from one client over one
//! keep-alive connection, timed in the same run, round after round, for a trivial script and
//! for one that takes a few milliseconds of CPU (and allocates) per item. Every answer is
//! checked: each item must succeed, and the batch's results must be the loop's, in order.

use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::error::Error;

/// A script the comparison runs over its inputs `0, 1, ...`.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub name: &'static str,
    pub code: &'static str,
}

/// `input * 2`: an item's cost is nearly all the service's own (admission, a worker's turn, a
/// fresh runtime), which is what a batch saves.
pub const TRIVIAL: Workload = Workload {
    name: "trivial",
    code: "input * 2",
};

/// Builds and sums 20 000 objects: a few milliseconds of CPU per item in a release build, and
/// a heap of a few MB for the worker to free afterwards.
pub const HEAVY: Workload = Workload {
    name: "heavy",
    code: "const rows = []; for (let i = 0; i < 20000; i++) rows.push({ i, v: (i * (input + 1)) % 97 }); rows.reduce((sum, row) => sum + row.v, 0)",
};

/// One round's two timings of the same inputs.
#[derive(Clone, Copy, Debug)]
pub struct Round {
    pub items: usize,
    /// The requests one after another.
    pub sequential: Duration,
    /// The one batch.
    pub batch: Duration,
}

impl Round {
    /// How many times faster the batch was.
    pub fn ratio(&self) -> f64 {
        self.sequential.as_secs_f64() / self.batch.as_secs_f64()
    }

    /// Items per second: (sequential, batch).
    pub fn items_per_second(&self) -> (f64, f64) {
        let rate = |duration: Duration| self.items as f64 / duration.as_secs_f64();
        (rate(self.sequential), rate(self.batch))
    }
}

/// Sends the comparison to the ingress (or sandbox) at `base_url`.
pub struct Comparison {
    client: reqwest::Client,
    base_url: String,
}

impl Comparison {
    /// One client that keeps one connection: its requests go one after another, each on the
    /// connection the last one left idle.
    pub fn new(base_url: &str) -> Result<Comparison, Error> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| Error::Comparison(format!("HTTP client: {error}")))?;
        Ok(Comparison {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Times `items` inputs of `workload` sent one request after another, then as one batch,
    /// after one warm-up request.
    pub async fn round(&self, workload: Workload, items: usize) -> Result<Round, Error> {
        self.execute(workload, 0).await?;
        let started = Instant::now();
        let mut sequential = Vec::with_capacity(items);
        for input in 0..items {
            sequential.push(self.execute(workload, input).await?);
        }
        let sequential_time = started.elapsed();

        let started = Instant::now();
        let batch = self.batch(workload, items).await?;
        let batch_time = started.elapsed();
        if batch != sequential {
            let first = batch.iter().zip(&sequential).position(|(a, b)| a != b);
            return Err(Error::Comparison(format!(
                "{}: the batch's results differ from the requests' (first at item {first:?})",
                workload.name
            )));
        }
        Ok(Round {
            items,
            sequential: sequential_time,
            batch: batch_time,
        })
    }

    /// The result of one `POST /api/execute` of `workload` with `input`, which must succeed.
    async fn execute(&self, workload: Workload, input: usize) -> Result<Value, Error> {
        let answer = self
            .post(
                "/api/execute",
                json!({"code": workload.code, "input": input}),
            )
            .await?;
        success_result(workload, input, &answer)
    }

    /// The results of one `POST /api/batch` of `workload` over `0..items`, each of which must
    /// succeed.
    async fn batch(&self, workload: Workload, items: usize) -> Result<Vec<Value>, Error> {
        let inputs: Vec<usize> = (0..items).collect();
        let answer = self
            .post(
                "/api/batch",
                json!({"code": workload.code, "inputs": inputs}),
            )
            .await?;
        let results = answer["results"].as_array().ok_or_else(|| {
            Error::Comparison(format!("{}: the batch answered {answer}", workload.name))
        })?;
        if results.len() != items {
            return Err(Error::Comparison(format!(
                "{}: {} results for {items} inputs",
                workload.name,
                results.len()
            )));
        }
        results
            .iter()
            .enumerate()
            .map(|(input, answer)| success_result(workload, input, answer))
            .collect()
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Error> {
        let failed = |what: String| Error::Comparison(format!("POST {path}: {what}"));
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|error| failed(error.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| failed(error.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!(
                "{status}: {}",
                crate::answer::example_body(&body)
            )));
        }
        serde_json::from_slice(&body).map_err(|error| failed(error.to_string()))
    }
}

fn success_result(workload: Workload, input: usize, answer: &Value) -> Result<Value, Error> {
    if answer["status"] != "success" {
        return Err(Error::Comparison(format!(
            "{} of input {input} answered {answer}",
            workload.name
        )));
    }
    Ok(answer["result"].clone())
}
