//! A session's runtime: scripts run one after another in it see what earlier ones left, each
//! has its own time limit and console caps, a timeout leaves the runtime usable, and the memory
//! limit covers what earlier scripts accumulated.

use std::{cell::RefCell, rc::Rc, sync::Arc, time::Duration};

use engine::{
    Assignment, EngineSettings, ErrorKind, HostAccess, Language, Limits, LogBuffer,
    NEVER_CANCELLED, Outcome, Script,
};

const MIB: usize = 1024 * 1024;

/// Runs `scripts` in one session runtime, each with `timeout`; their outcomes and logs.
fn session(scripts: &[&str], timeout: Duration, memory_limit: usize) -> Vec<(Outcome, String)> {
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    let mut queue = scripts.iter();
    let mut logs: Vec<Rc<LogBuffer>> = Vec::new();
    let recorded = outcomes.clone();
    engine::run_in_session_runtime(&EngineSettings::default(), || {
        let code = queue.next()?;
        let log = Rc::new(LogBuffer::default());
        logs.push(log.clone());
        let recorded = recorded.clone();
        Some(Assignment {
            script: Script {
                name: "session.js".into(),
                source: Arc::from(*code),
                language: Language::JavaScript,
                input: None,
            },
            limits: Limits {
                timeout,
                memory_limit,
            },
            cancel: &NEVER_CANCELLED,
            log,
            host: HostAccess::default(),
            bytecode: None,
            finished: Some(Box::new(move |outcome: &mut Outcome| {
                recorded.borrow_mut().push(outcome.clone());
            })),
        })
    })
    .unwrap();
    let outcomes = outcomes.borrow().clone();
    outcomes
        .into_iter()
        .zip(logs.iter().map(|log| log.json()))
        .collect()
}

#[test]
fn globals_functions_and_values_of_one_script_are_there_for_the_next() {
    let ran = session(
        &[
            "x = 1; var y = 2; let z = 3; function f(a) { return a * 10 }",
            "console.log('second'); [x + 1, y, z, f(4)]",
        ],
        Duration::from_secs(5),
        64 * MIB,
    );
    assert_eq!(ran.len(), 2);
    assert_eq!(ran[1].0.result, Ok("[2,2,3,40]".to_owned()));
    assert_eq!(ran[0].1, "[]");
    assert!(ran[1].1.contains("second"), "{}", ran[1].1);
}

#[test]
fn a_script_stopped_at_its_deadline_leaves_the_runtime_usable() {
    let ran = session(
        &["counter = 41", "while (true) {}", "counter + 1"],
        Duration::from_millis(200),
        64 * MIB,
    );
    assert_eq!(ran.len(), 3);
    assert_eq!(
        ran[1].0.result.as_ref().unwrap_err().kind,
        ErrorKind::Timeout
    );
    assert!(!ran[1].0.engine_fault);
    assert_eq!(ran[2].0.result, Ok("42".to_owned()));
}

#[test]
fn the_memory_limit_covers_what_earlier_scripts_left_and_a_fault_ends_the_session() {
    let ran = session(
        &[
            "kept = []; for (let i = 0; i < 6; i++) kept.push(new Array(64 * 1024).fill(i)); 1",
            // Alone, these 12 MiB would fit in 16; beside the 6 kept, they do not.
            "for (let i = 0; i < 12; i++) kept.push(new Array(64 * 1024).fill(9)); 2",
            "'never run'",
        ],
        Duration::from_secs(10),
        16 * MIB,
    );
    assert_eq!(ran[0].0.result, Ok("1".to_owned()));
    assert_eq!(
        ran[1].0.result.as_ref().unwrap_err().kind,
        ErrorKind::Memory
    );
    assert_eq!(ran.len(), 2, "nothing runs after an engine fault");
}
