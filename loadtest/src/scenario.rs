//! The named scenarios: who sends what, with how many users, for how long, and what else runs
//! beside them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;
use crate::scripts::{self, Script};
use crate::tenants::TenantKey;

/// The tenants of the `tenants` scenario.
const MANY_TENANTS: [&str; 8] = [
    "tenant-1", "tenant-2", "tenant-3", "tenant-4", "tenant-5", "tenant-6", "tenant-7", "tenant-8",
];
const HOSTILE_TENANT: &str = "hostile";
const POLITE_TENANT: &str = "polite";
/// The tenant of the `batch` scenario: a key with generous rate limits, as a batch of
/// [`scripts::BATCH_ITEMS`] takes that many requests of its caller's rate limit (more than the
/// anonymous tier's burst).
const BATCH_TENANT: &str = "batcher";
/// The tenant of the `sessions` scenario, with a key, as sessions belong to their creator.
const SESSIONS_TENANT: &str = "sessions";
/// Its cap of open sessions (`max_sessions` in the tenants file): far above the instance's
/// (`SESSION_MAX_OPEN`), so that the instance's cap and the memory budget are what refuse.
const SESSIONS_TENANT_MAX_SESSIONS: u32 = 10_000;
/// The keyed tenant of the `crowd` scenario.
const KEYED_TENANT: &str = "keyed";
/// Loopback addresses the `crowd` scenario's anonymous users send from (127.0.0.2 and up):
/// each is one anonymous client to the ingress, with its own rate limit and turns.
pub const CROWD_ADDRESSES: u8 = 30;
/// Requests per second each crowd address sends: its rate limit as the ingress enforces it by
/// default (`RATE_LIMIT_RPS`, written into the run's tenants file for the anonymous tier), so
/// that each address stays inside its own rate limit, as a crowd of free clients can. The
/// flood that ignores every limit is the `hostile` scenario's.
pub const CROWD_RATE_PER_ADDRESS: usize = 5;
/// The polite tenant's steady rate: a tenant well within its share, whose latency is what a
/// flood must not spoil. (A tenant that alone saturates every worker loses half of them to the
/// flood's fair share, and its latency at least doubles whatever the scheduler does.)
const POLITE_RATE: usize = 200;

/// The shortest hold of one ramp step: shorter ones measure the step change, not the step.
const MIN_RAMP_STEP: Duration = Duration::from_secs(3);
/// How long the focus group runs alone before a scenario's load, as a share of its duration
/// and within these bounds.
const ALONE_SHARE: u32 = 10;
const MIN_ALONE: Duration = Duration::from_secs(5);
const MAX_ALONE: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Trivial scripts at a steady rate.
    Steady,
    /// Every kind of answer: trivial, console-heavy, pi.js, timeouts, memory bombs, stack
    /// overflows, syntax errors.
    Mixed,
    /// Trivial scripts spread over many tenants, each with its own key.
    Tenants,
    /// A tenant flooding endless loops beside a polite one sending trivial scripts.
    Hostile,
    /// Idle, half-sent and never-reading raw connections beside users sending trivial scripts.
    SlowClients,
    /// Users stepped up until throughput stops growing.
    Ramp,
    /// Many anonymous addresses flooding endless loops, each within its own limits, beside one
    /// keyed tenant sending trivial scripts.
    Crowd,
    /// Scripts that log on a timer, their answers asked for as streams of events.
    Stream,
    /// TypeScript: a typed script whose answer is checked, and an `enum` it must refuse.
    Typescript,
    /// Batches of 50 trivial inputs (`POST /api/batch`), each item's answer checked in order.
    Batch,
    /// Sessions created, used by executions that depend on the earlier ones' state, then
    /// deleted or abandoned, and the sandbox back at its baseline once the abandoned expire.
    Sessions,
}

impl Scenario {
    pub const ALL: [Scenario; 11] = [
        Scenario::Steady,
        Scenario::Mixed,
        Scenario::Tenants,
        Scenario::Hostile,
        Scenario::SlowClients,
        Scenario::Ramp,
        Scenario::Crowd,
        Scenario::Stream,
        Scenario::Typescript,
        Scenario::Batch,
        Scenario::Sessions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Mixed => "mixed",
            Scenario::Tenants => "tenants",
            Scenario::Hostile => "hostile",
            Scenario::SlowClients => "slow-clients",
            Scenario::Ramp => "ramp",
            Scenario::Crowd => "crowd",
            Scenario::Stream => "stream",
            Scenario::Typescript => "typescript",
            Scenario::Batch => "batch",
            Scenario::Sessions => "sessions",
        }
    }

    /// The tenants the scenario's stack must know, each of which gets a fresh key.
    pub fn tenant_ids(self) -> &'static [&'static str] {
        match self {
            Scenario::Tenants => &MANY_TENANTS,
            Scenario::Hostile => &[HOSTILE_TENANT, POLITE_TENANT],
            Scenario::Crowd => &[KEYED_TENANT],
            Scenario::Batch => &[BATCH_TENANT],
            Scenario::Sessions => &[SESSIONS_TENANT],
            _ => &[],
        }
    }

    /// The cap of open sessions the tenants file gives the scenario's tenants, when it sets
    /// one (the sandbox's `SESSION_MAX_PER_TENANT` otherwise).
    pub fn tenant_max_sessions(self) -> Option<u32> {
        (self == Scenario::Sessions).then_some(SESSIONS_TENANT_MAX_SESSIONS)
    }

    /// Whether the scenario leaves sessions behind to expire, after which the sandbox's open
    /// sessions and charged memory must be back at their baseline.
    pub fn waits_for_sessions_to_expire(self) -> bool {
        self == Scenario::Sessions
    }

    /// Whether the anonymous tier is open beside the scenario's tenants.
    pub fn serves_anonymous(self) -> bool {
        !matches!(
            self,
            Scenario::Tenants | Scenario::Hostile | Scenario::Batch | Scenario::Sessions
        )
    }

    /// Whether raw misbehaving connections run beside the users.
    pub fn has_slow_clients(self) -> bool {
        self == Scenario::SlowClients
    }

    /// What the scenario's users send: `users` at once for `duration`, with `tenants` holding a
    /// key for each of [`Scenario::tenant_ids`].
    pub fn traffic(
        self,
        users: usize,
        duration: Duration,
        tenants: &[TenantKey],
    ) -> Result<Traffic, Error> {
        let anonymous = |name, scripts| UserGroup {
            name,
            users,
            scripts,
            callers: Callers::Anonymous,
            on_refusal: OnRefusal::WaitRetryAfter,
            pace: None,
            addresses: None,
        };
        let steady = LoadShape::Steady { users, duration };
        Ok(match self {
            Scenario::Steady => Traffic {
                groups: vec![anonymous("steady", vec![(scripts::TRIVIAL, 1)])],
                focus: None,
                focus_alone: None,
                shape: steady,
            },
            Scenario::Mixed => Traffic {
                groups: vec![anonymous(
                    "mixed",
                    vec![
                        (scripts::TRIVIAL, 20),
                        (scripts::CONSOLE_HEAVY, 8),
                        // Seconds of CPU in a debug build: rare, or it is all the load.
                        (scripts::PI, 1),
                        (scripts::ENDLESS_LOOP_SHORT_TIMEOUT, 2),
                        (scripts::MEMORY_BOMB, 2),
                        (scripts::STACK_OVERFLOW, 2),
                        (scripts::SYNTAX_ERROR, 2),
                    ],
                )],
                focus: None,
                focus_alone: None,
                shape: steady,
            },
            Scenario::Tenants => Traffic {
                groups: vec![UserGroup {
                    callers: Callers::RoundRobin(tenants.to_vec()),
                    ..anonymous("tenants", vec![(scripts::TRIVIAL, 1)])
                }],
                focus: None,
                focus_alone: None,
                shape: steady,
            },
            Scenario::Hostile => {
                if users < 2 {
                    return Err(Error::TooFewUsers {
                        scenario: self.name(),
                        needed: 2,
                    });
                }
                let [hostile, polite] = [HOSTILE_TENANT, POLITE_TENANT].map(|id| {
                    let tenant = tenants.iter().find(|tenant| tenant.id == id);
                    Callers::Tenant(tenant.expect("a key for every tenant id").clone())
                });
                let polite_users = (users / 4).max(1);
                Traffic {
                    groups: vec![
                        UserGroup {
                            name: HOSTILE_TENANT,
                            users: users - polite_users,
                            scripts: vec![(scripts::ENDLESS_LOOP, 1)],
                            callers: hostile,
                            // A flood does not wait to be told twice.
                            on_refusal: OnRefusal::RetryAtOnce,
                            pace: None,
                            addresses: None,
                        },
                        UserGroup {
                            name: POLITE_TENANT,
                            users: polite_users,
                            scripts: vec![(scripts::TRIVIAL, 1)],
                            callers: polite,
                            on_refusal: OnRefusal::WaitRetryAfter,
                            pace: Some(POLITE_RATE),
                            addresses: None,
                        },
                    ],
                    focus: Some(POLITE_TENANT),
                    focus_alone: Some("polite-alone"),
                    shape: steady,
                }
            }
            Scenario::SlowClients => Traffic {
                groups: vec![anonymous("normal", vec![(scripts::TRIVIAL, 1)])],
                focus: Some("normal"),
                focus_alone: Some("normal-alone"),
                shape: steady,
            },
            Scenario::Stream => Traffic {
                groups: vec![anonymous("stream", vec![(scripts::STREAMED_TICKS, 1)])],
                focus: None,
                focus_alone: None,
                shape: steady,
            },
            Scenario::Typescript => Traffic {
                groups: vec![anonymous(
                    "typescript",
                    vec![
                        (scripts::TYPESCRIPT_TYPED, 9),
                        (scripts::TYPESCRIPT_ENUM, 1),
                    ],
                )],
                focus: None,
                focus_alone: None,
                shape: steady,
            },
            Scenario::Batch => {
                let batcher = tenants.iter().find(|tenant| tenant.id == BATCH_TENANT);
                let batcher = batcher.expect("a key for every tenant id").clone();
                Traffic {
                    groups: vec![UserGroup {
                        callers: Callers::Tenant(batcher),
                        ..anonymous(BATCH_TENANT, vec![(scripts::BATCH_OF_TRIVIAL, 1)])
                    }],
                    focus: None,
                    focus_alone: None,
                    shape: steady,
                }
            }
            Scenario::Sessions => {
                let owner = tenants.iter().find(|tenant| tenant.id == SESSIONS_TENANT);
                let owner = owner.expect("a key for every tenant id").clone();
                Traffic {
                    groups: vec![UserGroup {
                        callers: Callers::Tenant(owner),
                        ..anonymous(SESSIONS_TENANT, vec![(scripts::SESSION_COUNTER, 1)])
                    }],
                    focus: None,
                    focus_alone: None,
                    shape: steady,
                }
            }
            Scenario::Ramp => Traffic {
                groups: vec![anonymous("ramp", vec![(scripts::TRIVIAL, 1)])],
                focus: None,
                focus_alone: None,
                shape: LoadShape::ramp(users, duration),
            },
            Scenario::Crowd => {
                if users < 2 {
                    return Err(Error::TooFewUsers {
                        scenario: self.name(),
                        needed: 2,
                    });
                }
                let keyed = tenants.iter().find(|tenant| tenant.id == KEYED_TENANT);
                let keyed = Callers::Tenant(keyed.expect("a key for every tenant id").clone());
                let keyed_users = (users / 4).max(1);
                Traffic {
                    groups: vec![
                        UserGroup {
                            // A user per address at least; between them they send each
                            // address's rate limit, retrying at once when refused.
                            users: (users - keyed_users).max(usize::from(CROWD_ADDRESSES)),
                            on_refusal: OnRefusal::RetryAtOnce,
                            pace: Some(usize::from(CROWD_ADDRESSES) * CROWD_RATE_PER_ADDRESS),
                            addresses: Some(CROWD_ADDRESSES),
                            ..anonymous("crowd", vec![(scripts::ENDLESS_LOOP, 1)])
                        },
                        UserGroup {
                            name: KEYED_TENANT,
                            users: keyed_users,
                            scripts: vec![(scripts::TRIVIAL, 1)],
                            callers: keyed,
                            on_refusal: OnRefusal::WaitRetryAfter,
                            pace: Some(POLITE_RATE),
                            addresses: None,
                        },
                    ],
                    focus: Some(KEYED_TENANT),
                    focus_alone: Some("keyed-alone"),
                    shape: steady,
                }
            }
        })
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown scenario {name:?}: expected {} or all",
                    names.join(", ")
                )
            })
    }
}

/// Everything the users of one scenario do.
#[derive(Clone, Debug)]
pub struct Traffic {
    pub groups: Vec<UserGroup>,
    /// The group whose latency the scenario is about (the polite tenant beside the hostile one,
    /// the normal users beside the slow clients), reported apart.
    pub focus: Option<&'static str>,
    /// The name the focus group's requests are reported under while it runs alone first, to
    /// compare its latency alone with its latency beside the rest.
    pub focus_alone: Option<&'static str>,
    pub shape: LoadShape,
}

impl Traffic {
    /// The same groups, `users` of them in all, starting `rate` requests per second between
    /// them (shared in proportion to their users) for `duration`.
    pub fn paced(&self, rate: usize, users: usize, duration: Duration) -> Traffic {
        let total: usize = self.groups.iter().map(|group| group.users).sum();
        Traffic {
            groups: self
                .groups
                .iter()
                .map(|group| UserGroup {
                    pace: Some((rate * group.users / total.max(1)).max(1)),
                    ..group.clone()
                })
                .collect(),
            shape: LoadShape::Steady { users, duration },
            ..self.clone()
        }
    }

    /// The focus group alone, under its `focus_alone` name, for a tenth of the scenario's
    /// duration (5 to 30 s).
    pub fn alone_first(&self) -> Option<Traffic> {
        let name = self.focus_alone?;
        let focus = self.focus?;
        let group = self.groups.iter().find(|group| group.name == focus)?;
        let duration = match &self.shape {
            LoadShape::Steady { duration, .. } => *duration,
            LoadShape::Ramp { .. } => return None,
        };
        Some(Traffic {
            groups: vec![UserGroup {
                name,
                ..group.clone()
            }],
            focus: None,
            focus_alone: None,
            shape: LoadShape::Steady {
                users: group.users,
                duration: (duration / ALONE_SHARE).clamp(MIN_ALONE, MAX_ALONE),
            },
        })
    }
}

/// Users that send the same scripts with the same credentials.
#[derive(Clone, Debug)]
pub struct UserGroup {
    pub name: &'static str,
    pub users: usize,
    /// Scripts with their weights: each request picks one at random in proportion.
    pub scripts: Vec<(Script, usize)>,
    pub callers: Callers,
    pub on_refusal: OnRefusal,
    /// Requests per second the group's users start between them, evenly spaced; `None`: each
    /// user sends its next request as soon as it has the answer to the last.
    pub pace: Option<usize>,
    /// How many loopback addresses the group's users send from, 127.0.0.2 and up, a user
    /// each in turn, so that the service sees that many clients; `None`: the system's choice.
    pub addresses: Option<u8>,
}

/// Whose key a request carries; its samples are reported under that tenant's id, or under the
/// group's name for anonymous requests.
#[derive(Clone, Debug)]
pub enum Callers {
    Anonymous,
    Tenant(TenantKey),
    /// Each request takes the next tenant's key.
    RoundRobin(Vec<TenantKey>),
}

/// What a user does after a 503 or 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRefusal {
    /// Waits as `Retry-After` says, as a well-behaved client does.
    WaitRetryAfter,
    /// Sends the next request at once.
    RetryAtOnce,
}

/// How many users run when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadShape {
    /// All users start within a second and run for `duration`.
    Steady { users: usize, duration: Duration },
    /// Each step's users run for `hold`, one step after another.
    Ramp { steps: Vec<usize>, hold: Duration },
}

impl LoadShape {
    /// Doubling steps from 1 user up to `max_users` (which always ends the ramp), sharing
    /// `duration`, each at least [`MIN_RAMP_STEP`].
    pub fn ramp(max_users: usize, duration: Duration) -> LoadShape {
        let mut steps: Vec<usize> =
            std::iter::successors(Some(1usize), |users| users.checked_mul(2))
                .take_while(|&users| users < max_users)
                .collect();
        steps.push(max_users);
        let hold = (duration / steps.len() as u32).max(MIN_RAMP_STEP);
        LoadShape::Ramp { steps, hold }
    }

    /// Goose's test plan (`users,time;...`, whole seconds), ending with every user stopped.
    pub fn test_plan(&self) -> String {
        let seconds = |duration: &Duration| duration.as_secs_f64().ceil().max(1.0) as u64;
        let mut plan = Vec::new();
        match self {
            LoadShape::Steady { users, duration } => {
                plan.push(format!("{users},1s"));
                plan.push(format!("{users},{}s", seconds(duration)));
            }
            LoadShape::Ramp { steps, hold } => {
                for users in steps {
                    plan.push(format!("{users},0s"));
                    plan.push(format!("{users},{}s", seconds(hold)));
                }
            }
        }
        plan.push("0,0s".to_owned());
        plan.join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_doubles_up_to_the_user_count_and_shares_the_duration() {
        let shape = LoadShape::ramp(12, Duration::from_secs(50));
        assert_eq!(
            shape,
            LoadShape::Ramp {
                steps: vec![1, 2, 4, 8, 12],
                hold: Duration::from_secs(10)
            }
        );
        assert_eq!(
            shape.test_plan(),
            "1,0s;1,10s;2,0s;2,10s;4,0s;4,10s;8,0s;8,10s;12,0s;12,10s;0,0s"
        );
    }

    #[test]
    fn steady_shape_starts_every_user_within_a_second() {
        let shape = LoadShape::Steady {
            users: 8,
            duration: Duration::from_millis(2500),
        };
        assert_eq!(shape.test_plan(), "8,1s;8,3s;0,0s");
    }

    /// A made-up key for each of `scenario`'s tenants.
    fn keys(scenario: Scenario) -> Vec<TenantKey> {
        scenario
            .tenant_ids()
            .iter()
            .map(|id| TenantKey {
                id,
                key: format!("key-{id}"),
            })
            .collect()
    }

    #[test]
    fn the_polite_tenant_runs_alone_first_under_its_own_name_for_a_tenth_of_the_run() {
        let traffic = Scenario::Hostile
            .traffic(16, Duration::from_secs(300), &keys(Scenario::Hostile))
            .unwrap();
        let alone = traffic.alone_first().unwrap();
        assert_eq!(alone.groups.len(), 1);
        assert_eq!(alone.groups[0].name, "polite-alone");
        assert_eq!(alone.groups[0].users, 4);
        assert_eq!(alone.groups[0].pace, Some(POLITE_RATE));
        assert!(matches!(
            alone.groups[0].callers,
            Callers::Tenant(ref tenant) if tenant.id == POLITE_TENANT
        ));
        assert_eq!(
            alone.shape,
            LoadShape::Steady {
                users: 4,
                duration: Duration::from_secs(30)
            }
        );
        let steady = Scenario::Steady
            .traffic(4, Duration::from_secs(10), &[])
            .unwrap();
        assert!(steady.alone_first().is_none());
    }

    #[test]
    fn the_crowd_floods_from_many_addresses_beside_one_keyed_tenant_that_runs_alone_first() {
        let traffic = Scenario::Crowd
            .traffic(40, Duration::from_secs(60), &keys(Scenario::Crowd))
            .unwrap();
        let [crowd, keyed] = &traffic.groups[..] else {
            panic!("two groups: {traffic:?}");
        };
        assert_eq!((crowd.users, keyed.users), (30, 10));
        assert_eq!(crowd.addresses, Some(CROWD_ADDRESSES));
        // Each address inside its own rate limit, whatever --users says.
        assert_eq!(crowd.pace, Some(150));
        let few = Scenario::Crowd
            .traffic(8, Duration::from_secs(60), &keys(Scenario::Crowd))
            .unwrap();
        assert_eq!(few.groups[0].users, 30);
        assert!(matches!(crowd.callers, Callers::Anonymous));
        assert!(matches!(keyed.callers, Callers::Tenant(ref tenant) if tenant.id == KEYED_TENANT));
        assert_eq!(keyed.addresses, None);
        assert_eq!(traffic.alone_first().unwrap().groups[0].name, "keyed-alone");
        assert!(Scenario::Crowd.serves_anonymous());
        assert!(!Scenario::Hostile.serves_anonymous());
        assert_eq!(
            crate::attack::loopback_address(0),
            std::net::Ipv4Addr::new(127, 0, 0, 2)
        );
        assert_eq!(
            crate::attack::loopback_address(300),
            std::net::Ipv4Addr::new(127, 0, 1, 46)
        );
    }

    #[test]
    fn scenario_names_round_trip() {
        for scenario in Scenario::ALL {
            assert_eq!(scenario.name().parse::<Scenario>(), Ok(scenario));
        }
    }
}
