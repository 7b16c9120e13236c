//! The engine's host-function API in-process: synchronous functions called directly,
//! asynchronous ones through a channel answered by a thread standing in for the supervisor.

use std::{
    rc::Rc,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use engine::{
    EngineSettings, HostAccess, HostChannel, HostError, HostFunctions, Json, Language, Limits,
    Script,
    host::{HostAnswer, HostCall, HostGrant},
};
use serde_json::json;

/// Answers each call on a thread after `delay`: the value of `answer` for its arguments.
struct ThreadChannel {
    calls: mpsc::Sender<HostCall>,
    answers: mpsc::Receiver<HostAnswer>,
}

impl ThreadChannel {
    fn new(delay: Duration, answer: fn(&str, Vec<Json>) -> Result<Json, HostError>) -> Self {
        let (calls, incoming) = mpsc::channel::<HostCall>();
        let (outgoing, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for call in incoming {
                std::thread::sleep(delay);
                let arguments = serde_json::from_str(&call.arguments).unwrap();
                let result = answer(&call.name, arguments)
                    .map(|value| serde_json::to_string(&value).unwrap());
                if outgoing
                    .send(HostAnswer {
                        id: call.id,
                        result,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
        Self { calls, answers }
    }
}

impl HostChannel for ThreadChannel {
    fn send(&self, call: HostCall) -> Result<(), HostError> {
        self.calls.send(call).map_err(|_| HostError::new("gone"))
    }

    fn wait(&self, until: Instant) -> Option<HostAnswer> {
        self.answers
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .ok()
    }
}

fn functions() -> HostFunctions {
    HostFunctions::new()
        .sync("add", |arguments| {
            let sum: f64 = arguments.iter().filter_map(Json::as_f64).sum();
            Ok(json!(sum))
        })
        .sync("billing.rate", |arguments| match arguments.first() {
            Some(Json::String(plan)) if plan == "pro" => Ok(json!({"plan": "pro", "rate": 0.2})),
            _ => Err(HostError::type_error("unknown plan")),
        })
        .asynchronous("lookup", |arguments, _| async move { Ok(json!(arguments)) })
}

fn run(code: &str, access: HostAccess, timeout: Duration) -> engine::Outcome {
    let settings = EngineSettings::default();
    let script = Script {
        name: "script.js".into(),
        source: Arc::from(code),
        language: Language::JavaScript,
        input: None,
    };
    let limits = Limits {
        timeout,
        memory_limit: 32 << 20,
    };
    engine::execute_with_host(&settings, script, limits, access)
        .unwrap()
        .0
}

fn access(names: &[&str], max_calls: u32, channel: Option<Rc<dyn HostChannel>>) -> HostAccess {
    HostAccess {
        functions: functions(),
        grant: HostGrant {
            functions: names.iter().map(|name| name.to_string()).collect(),
            max_calls,
        },
        channel,
    }
}

#[test]
fn synchronous_functions_take_and_return_json_and_throw_their_errors() {
    let outcome = run(
        "const r = billing.rate('pro'); \
         let caught; try { billing.rate('free') } catch (e) { caught = [e instanceof TypeError, e.message] } \
         [add(1, 2, 3.5), r, caught, typeof lookup]",
        access(&["add", "billing.rate"], 10, None),
        Duration::from_secs(5),
    );
    assert_eq!(
        outcome.result.unwrap(),
        r#"[6.5,{"plan":"pro","rate":0.2},[true,"unknown plan"],"undefined"]"#
    );
}

#[test]
fn functions_not_granted_are_not_installed() {
    let outcome = run(
        "[typeof add, typeof billing]",
        access(&[], 10, None),
        Duration::from_secs(5),
    );
    assert_eq!(outcome.result.unwrap(), r#"["undefined","undefined"]"#);
}

#[test]
fn asynchronous_functions_settle_their_promises_in_the_event_loop() {
    let channel = ThreadChannel::new(Duration::from_millis(20), |name, arguments| {
        if arguments.first() == Some(&json!("missing")) {
            return Err(HostError::named(
                "NotFoundError",
                format!("{name}: no such key"),
            ));
        }
        Ok(json!({"echo": arguments}))
    });
    let outcome = run(
        "(async () => { \
           const [a, b] = await Promise.all([lookup('x', {n: 1}), lookup(undefined)]); \
           let error; try { await lookup('missing') } catch (e) { error = [e.name, e.message] } \
           return [a, b, error]; \
         })()",
        access(&["lookup"], 10, Some(Rc::new(channel))),
        Duration::from_secs(5),
    );
    assert_eq!(
        outcome.result.unwrap(),
        r#"[{"echo":["x",{"n":1}]},{"echo":[null]},["NotFoundError","lookup: no such key"]]"#
    );
}

#[test]
fn the_call_budget_is_charged_across_functions() {
    let outcome = run(
        "let n = 0; try { for (;;) { add(1); n++ } } catch (e) { [n, e.name, e.message] }",
        access(&["add"], 5, None),
        Duration::from_secs(5),
    );
    let result = outcome.result.unwrap();
    assert!(
        result.starts_with(r#"[5,"RangeError","add: this execution made its 5"#),
        "{result}"
    );
}

#[test]
fn an_answer_that_never_comes_ends_in_a_timeout_at_the_deadline() {
    let channel = ThreadChannel::new(Duration::from_secs(30), |_, _| Ok(Json::Null));
    let started = Instant::now();
    let outcome = run(
        "lookup('slow')",
        access(&["lookup"], 10, Some(Rc::new(channel))),
        Duration::from_millis(200),
    );
    let error = outcome.result.unwrap_err();
    assert_eq!(error.kind, engine::ErrorKind::Timeout, "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
