//! Admission by time: refusals from each client's own pace, and the bounds on waiting requests
//! and bytes.

use super::*;

const WIDE: TenantShare = TenantShare {
    max_running: 2,
    max_waiting: 1024,
};

fn turn(name: &str) -> Turn<'_> {
    Turn {
        tier: name,
        client: name,
        tier_max_running: usize::MAX,
        share: WIDE,
    }
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

// The clock is tokio's paused clock: the executions' durations below are exact, whatever
// the machine's load.
#[tokio::test(start_paused = true)]
async fn a_request_that_would_wait_past_the_timeout_is_refused_at_once_with_its_estimate() {
    let scheduler = Scheduler::new(1, 4096, usize::MAX, Duration::from_millis(100));
    // Teach the scheduler that this tenant's scripts hold a worker for 60 ms.
    for _ in 0..20 {
        let permit = scheduler.acquire(turn("slow"), 1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        drop(permit);
    }
    let running = scheduler.acquire(turn("slow"), 1).await.unwrap();
    // One waiter fits in 100 ms (about 60 ms); a second would start after about 120 ms.
    let queued = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move { scheduler.acquire(turn("slow"), 1).await.map(drop) })
    };
    settle().await;
    let started = Instant::now();
    let Err(refused) = scheduler.acquire(turn("slow"), 1).await else {
        panic!("admitted");
    };
    assert_eq!(started.elapsed(), Duration::ZERO, "refused at once");
    assert_eq!(refused.reason(), "wait_estimate", "{refused}");
    assert!(refused.retry_after() > Duration::ZERO);
    drop(running);
    queued.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_quick_tenant_is_judged_by_its_own_pace_after_an_idle_moment_beside_a_slow_one() {
    let scheduler = Scheduler::new(2, 4096, usize::MAX, Duration::from_millis(30));
    // The slow tenant's scripts hold a worker for 150 ms, the quick one's for 1 ms, and
    // between its requests the quick tenant has nothing running or waiting.
    for _ in 0..3 {
        let permit = scheduler.acquire(turn("slow"), 1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(permit);
    }
    for _ in 0..3 {
        let permit = scheduler.acquire(turn("quick"), 1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        drop(permit);
    }
    // Both workers busy: one with the slow tenant, one with a quick request. The next quick
    // request waits about a millisecond, not the slow tenant's 150 ms.
    let slow = scheduler.acquire(turn("slow"), 1).await.unwrap();
    let quick = scheduler.acquire(turn("quick"), 1).await.unwrap();
    let next = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move { scheduler.acquire(turn("quick"), 1).await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(quick);
    next.await.unwrap().expect("admitted at its own pace");
    drop(slow);
}

#[tokio::test(start_paused = true)]
async fn many_quick_requests_wait_their_turn_instead_of_being_refused() {
    let scheduler = Scheduler::new(2, 4096, usize::MAX, Duration::from_secs(2));
    // Sixty-four requests at once, each holding a worker for a millisecond: all run.
    let requests: Vec<_> = (0..64)
        .map(|_| {
            let scheduler = scheduler.clone();
            tokio::spawn(async move {
                let permit = scheduler.acquire(turn("batch"), 1).await?;
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(permit);
                Ok::<(), Rejection>(())
            })
        })
        .collect();
    for request in requests {
        request.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn the_bytes_of_waiting_scripts_are_bounded() {
    let scheduler = Scheduler::new(1, 4096, 100, Duration::from_secs(2));
    let running = scheduler.acquire(turn("a"), 10).await.unwrap();
    let mut queued = Vec::new();
    for (name, bytes) in [("a", 40), ("c", 40)] {
        let scheduler = scheduler.clone();
        queued.push(tokio::spawn(async move {
            scheduler.acquire(turn(name), bytes).await.map(drop)
        }));
    }
    settle().await;
    // 80 bytes wait; 30 more would pass the 100 allowed.
    let Err(refused) = scheduler.acquire(turn("b"), 30).await else {
        panic!("admitted");
    };
    assert_eq!(refused.reason(), "queue_full");
    // One tier alone may fill at most half.
    let Err(refused) = scheduler.acquire(turn("a"), 11).await else {
        panic!("admitted");
    };
    assert_eq!(refused.reason(), "queue_full");
    drop(running);
    for waiter in queued {
        waiter.await.unwrap().unwrap();
    }
}
