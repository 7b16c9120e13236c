//! The turn order: capacity, ceilings, turns between tiers and between clients, the last worker
//! kept for others, and waiters that give up.

use super::*;

const SHARE: TenantShare = TenantShare {
    max_running: 2,
    max_waiting: 8,
};

/// A keyed tenant: a tier of its own, with one client, limited only by the capacity.
fn keyed(name: &str, share: TenantShare) -> Turn<'_> {
    Turn {
        tier: name,
        client: name,
        tier_max_running: usize::MAX,
        share,
    }
}

/// One client of the anonymous tier, which may hold `tier_max_running` workers in all.
fn anonymous(client: &str, tier_max_running: usize) -> Turn<'_> {
    Turn {
        tier: "anonymous",
        client,
        tier_max_running,
        share: SHARE,
    }
}

async fn reason(scheduler: &Arc<Scheduler>, turn: Turn<'_>) -> Option<&'static str> {
    scheduler
        .acquire(turn, 1)
        .await
        .err()
        .map(|rejection| rejection.reason())
}

/// Lets spawned tasks run until each has queued or finished.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn grants_up_to_capacity_then_queues() {
    let scheduler = Scheduler::new(2, 16, usize::MAX, Duration::from_millis(50));
    let _a = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
    let _b = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
    assert_eq!(
        reason(&scheduler, keyed("a", SHARE)).await,
        Some("queue_timeout")
    );
    assert_eq!(scheduler.running(), 2);
}

#[tokio::test(start_paused = true)]
async fn tenant_ceiling_holds_even_with_free_workers() {
    let scheduler = Scheduler::new(4, 16, usize::MAX, Duration::from_millis(50));
    let one = TenantShare {
        max_running: 1,
        max_waiting: 4,
    };
    let _a = scheduler.acquire(keyed("a", one), 1).await.unwrap();
    assert_eq!(
        reason(&scheduler, keyed("a", one)).await,
        Some("queue_timeout")
    );
    assert!(scheduler.acquire(keyed("b", one), 1).await.is_ok());
}

/// One waiting request for each of `requests` (a keyed tenant's name, or an anonymous
/// client's with `anonymous` true), queued in that order behind `held` on a one-worker
/// scheduler, each holding the worker for 5 ms; the names in the order they ran.
async fn order_of_turns(
    scheduler: &Arc<Scheduler>,
    held: Permit,
    requests: Vec<(String, bool)>,
) -> Vec<String> {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (name, is_anonymous) in requests {
        let scheduler = scheduler.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let turn = if is_anonymous {
                anonymous(&name, 1)
            } else {
                keyed(&name, SHARE)
            };
            let permit = scheduler.acquire(turn, 1).await.unwrap();
            order.lock().unwrap().push(name.clone());
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(permit);
        }));
        settle().await;
    }
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    order.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn waiting_tenants_take_turns() {
    let scheduler = Scheduler::new(1, 64, usize::MAX, Duration::from_secs(5));
    let held = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
    // Tenant a queues three requests before tenant b queues one.
    let requests = ["a", "a", "a", "b"].map(|name| (name.to_owned(), false));
    let order = order_of_turns(&scheduler, held, requests.into()).await;
    assert_eq!(
        order[..2],
        ["a", "b"],
        "b is served second, not after all of a: {order:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lone_tenant_uses_every_worker() {
    let scheduler = Scheduler::new(2, 16, usize::MAX, Duration::from_millis(50));
    let _first = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
    assert!(scheduler.acquire(keyed("a", SHARE), 1).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_last_worker_stays_free_while_another_tenant_is_active() {
    let scheduler = Scheduler::new(2, 16, usize::MAX, Duration::from_millis(50));
    let _a = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
    drop(scheduler.acquire(keyed("b", SHARE), 1).await.unwrap());
    // b was active just now: a, already running one script, may not take the last worker...
    assert_eq!(
        reason(&scheduler, keyed("a", SHARE)).await,
        Some("queue_timeout")
    );
    // ...which b gets at once.
    assert!(scheduler.acquire(keyed("b", SHARE), 1).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn full_tenant_queue_rejects_at_once_without_affecting_others() {
    let scheduler = Scheduler::new(1, 64, usize::MAX, Duration::from_secs(5));
    let small = TenantShare {
        max_running: 1,
        max_waiting: 1,
    };
    let held = scheduler.acquire(keyed("a", small), 1).await.unwrap();
    let queued = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move { scheduler.acquire(keyed("a", small), 1).await.map(drop) })
    };
    settle().await;
    assert_eq!(
        reason(&scheduler, keyed("a", small)).await,
        Some("queue_full")
    );
    let other = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move { scheduler.acquire(keyed("b", small), 1).await.map(drop) })
    };
    settle().await;
    drop(held);
    assert!(queued.await.unwrap().is_ok());
    assert!(other.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn abandoned_waiters_leave_no_trace() {
    let scheduler = Scheduler::new(1, 64, usize::MAX, Duration::from_secs(5));
    let held = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
    let waiter = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move { scheduler.acquire(anonymous("b", 1), 1).await.map(drop) })
    };
    settle().await;
    assert_eq!(scheduler.lock().waiting_total, 1);
    waiter.abort();
    let _ = waiter.await;
    drop(held);
    assert_eq!(scheduler.running(), 0);
    {
        let state = scheduler.lock();
        assert!(state.tiers.is_empty());
        assert_eq!((state.waiting_total, state.waiting_bytes), (0, 0));
    }
    assert!(scheduler.acquire(keyed("c", SHARE), 1).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_anonymous_tier_as_a_whole_holds_at_most_its_share_of_the_workers() {
    let scheduler = Scheduler::new(3, 64, usize::MAX, Duration::from_millis(50));
    // Two anonymous addresses may hold two of the three workers between them, not three...
    let _one = scheduler
        .acquire(anonymous("192.0.2.1", 2), 1)
        .await
        .unwrap();
    let _two = scheduler
        .acquire(anonymous("192.0.2.2", 2), 1)
        .await
        .unwrap();
    assert_eq!(
        reason(&scheduler, anonymous("192.0.2.3", 2)).await,
        Some("queue_timeout")
    );
    // ...and the third is there for a keyed tenant at once.
    assert!(scheduler.acquire(keyed("acme", SHARE), 1).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn tiers_take_turns_before_clients_so_a_crowd_gets_one_tiers_share() {
    let scheduler = Scheduler::new(1, 256, usize::MAX, Duration::from_secs(60));
    let held = scheduler.acquire(keyed("acme", SHARE), 1).await.unwrap();
    // Thirty anonymous addresses queue one request each, then the keyed tenant queues two.
    let requests = (0..30)
        .map(|n| (format!("198.51.100.{n}"), true))
        .chain([("acme".to_owned(), false), ("acme".to_owned(), false)])
        .collect();
    let order = order_of_turns(&scheduler, held, requests).await;
    // The tiers alternate: anonymous, acme, anonymous, acme; the crowd's size does not
    // push the keyed tenant back.
    assert_eq!(
        order[..4],
        ["198.51.100.0", "acme", "198.51.100.1", "acme"],
        "{order:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_flood_in_one_tier_leaves_room_in_the_queue_for_the_others() {
    let scheduler = Scheduler::new(1, 8, usize::MAX, Duration::from_secs(60));
    let held = scheduler.acquire(keyed("acme", SHARE), 1).await.unwrap();
    let mut queued = Vec::new();
    for n in 0..4 {
        let scheduler = scheduler.clone();
        queued.push(tokio::spawn(async move {
            let client = format!("203.0.113.{n}");
            scheduler.acquire(anonymous(&client, 1), 1).await.map(drop)
        }));
    }
    settle().await;
    // Half the queue is the anonymous tier's at most.
    assert_eq!(
        reason(&scheduler, anonymous("203.0.113.99", 1)).await,
        Some("queue_full")
    );
    let keyed_waiter = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move { scheduler.acquire(keyed("beta", SHARE), 1).await.map(drop) })
    };
    settle().await;
    drop(held);
    assert!(keyed_waiter.await.unwrap().is_ok());
    for waiter in queued {
        assert!(waiter.await.unwrap().is_ok());
    }
}
