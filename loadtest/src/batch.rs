//! What one answer to `POST /api/batch` was. A batch is answered when its `results` hold one
//! well-formed execution answer per input: its items that succeeded must each have the result
//! their input should give (the input doubled), in the inputs' order, and those that failed
//! (an item not run in the batch's time, say) are counted as failed items. A batch whose
//! results are not one per input, not in order or not the expected answers is lost. Refusals
//! and rejections of the whole batch are judged as an execution's are.

use serde_json::Value;

use crate::answer::{LostReason, Outcome, example_body, execution_kind};

/// What became of the items of an answered batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchItems {
    /// Inputs in the batch.
    pub items: usize,
    /// Items that succeeded with their expected result.
    pub succeeded: usize,
    /// Items answered with an error (not lost: each an answer of its own).
    pub failed: usize,
}

/// Judges the answer (`status`, `body`) to a batch of `items` inputs `0, 1, ...`, whose item
/// `i` must succeed with `2 * i` or fail with a well-formed error; the items' counts come with
/// an answered batch. The batch's outcome is `success` when every item succeeded, else the
/// first failed item's error kind.
pub fn judge(status: u16, body: &[u8], items: usize) -> (Outcome, Option<BatchItems>) {
    if status != 200 {
        return (Outcome::classify(status, body), None);
    }
    let lost = |reason, detail: String| {
        let outcome = Outcome::Lost {
            reason,
            detail: format!("{detail}: {}", example_body(body)),
        };
        (outcome, None)
    };
    let document: Option<Value> = serde_json::from_slice(body).ok();
    let Some(results) = document
        .as_ref()
        .and_then(|document| document.get("results")?.as_array())
    else {
        return lost(LostReason::Malformed { status }, "no results array".into());
    };
    if results.len() != items {
        return lost(
            LostReason::WrongAnswer,
            format!("{} results for {items} inputs", results.len()),
        );
    }
    let mut counts = BatchItems {
        items,
        ..BatchItems::default()
    };
    let mut first_failure = None;
    for (index, answer) in results.iter().enumerate() {
        match execution_kind(answer).as_deref() {
            None => {
                return lost(
                    LostReason::Malformed { status },
                    format!("item {index} is not an execution's answer"),
                );
            }
            Some("success") if answer["result"] == 2 * index => counts.succeeded += 1,
            Some("success") => {
                return lost(
                    LostReason::WrongAnswer,
                    format!(
                        "item {index} answered {}, not {} (out of order?)",
                        answer["result"],
                        2 * index
                    ),
                );
            }
            Some(kind) => {
                counts.failed += 1;
                first_failure.get_or_insert_with(|| kind.to_owned());
            }
        }
    }
    let kind = first_failure.unwrap_or_else(|| "success".to_owned());
    (Outcome::Executed { kind }, Some(counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn success(result: usize) -> String {
        format!(
            r#"{{"status":"success","result":{result},"error":false,"log":[],"executionTime":0.1}}"#
        )
    }

    const NOT_RUN: &str = r#"{"status":"error","result":null,"error":{"kind":"timeout","name":"TimeoutError","message":"not run","stack":null},"log":[],"executionTime":0}"#;

    fn batch(results: &[String]) -> Vec<u8> {
        format!(r#"{{"results":[{}]}}"#, results.join(",")).into_bytes()
    }

    #[test]
    fn a_batch_whose_items_all_doubled_their_inputs_in_order_succeeded() {
        let body = batch(&[success(0), success(2), success(4)]);
        let (outcome, items) = judge(200, &body, 3);
        assert_eq!(outcome.label(), "success");
        assert_eq!(
            items,
            Some(BatchItems {
                items: 3,
                succeeded: 3,
                failed: 0
            })
        );
    }

    #[test]
    fn failed_items_are_counted_and_name_the_batch_outcome_without_losing_it() {
        let body = batch(&[success(0), NOT_RUN.to_owned(), NOT_RUN.to_owned()]);
        let (outcome, items) = judge(200, &body, 3);
        assert_eq!(outcome.label(), "timeout");
        assert_eq!(
            items.map(|items| (items.succeeded, items.failed)),
            Some((1, 2))
        );
    }

    #[test]
    fn results_out_of_order_too_few_or_malformed_lose_the_batch() {
        for (body, label) in [
            (batch(&[success(2), success(0)]), "lost: wrong answer"),
            (batch(&[success(0)]), "lost: wrong answer"),
            (
                batch(&[success(0), "{}".to_owned()]),
                "lost: malformed answer (status 200)",
            ),
            (b"{}".to_vec(), "lost: malformed answer (status 200)"),
        ] {
            let (outcome, items) = judge(200, &body, 2);
            assert_eq!(outcome.label(), label, "{}", String::from_utf8_lossy(&body));
            assert_eq!(items, None);
        }
    }

    #[test]
    fn a_refused_batch_is_refused_as_an_execution_is() {
        let body = br#"{"status":"error","error":{"kind":"rate_limited","message":"m"}}"#;
        let (outcome, items) = judge(429, body, 50);
        assert_eq!(outcome.label(), "429 rate_limited");
        assert_eq!(items, None);
    }
}
