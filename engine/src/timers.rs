//! `setTimeout`, `setInterval`, `clearTimeout` and `clearInterval`, run by the execution's own
//! event loop on its own thread and never past its deadline, and the weak timers behind
//! `AbortSignal.timeout`, which fire while the loop runs but do not keep it running (as Node's
//! unreferenced timers).

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    rc::Rc,
    time::{Duration, Instant},
};

use rquickjs::{
    Ctx, Exception, Function, Result, Value,
    function::{Opt, Rest},
};

/// Most timers pending at once; past this `setTimeout` throws, so host memory stays bounded.
pub const MAX_PENDING_TIMERS: usize = 10_000;

/// Longest delay accepted, as in browsers and Node (larger delays fire at once).
const MAX_DELAY_MS: f64 = 2_147_483_647.0;

struct Timer<'js> {
    callback: Function<'js>,
    args: Vec<Value<'js>>,
    repeat: Option<Duration>,
    due: Instant,
    /// False for a weak timer.
    keeps_alive: bool,
}

/// The pending timers of one execution, ordered by due time then creation.
#[derive(Default)]
pub struct Timers<'js> {
    next_id: u32,
    next_sequence: u64,
    order: BTreeMap<(Instant, u64), u32>,
    timers: HashMap<u32, (Timer<'js>, u64)>,
    /// Pending timers that keep the event loop running.
    alive: usize,
}

/// A timer that is due, taken out of the queue (and put back first if it repeats).
pub struct DueTimer<'js> {
    pub callback: Function<'js>,
    pub args: Vec<Value<'js>>,
}

impl<'js> Timers<'js> {
    /// The timer functions, by global name.
    pub const GLOBALS: [&'static str; 4] =
        ["setTimeout", "setInterval", "clearTimeout", "clearInterval"];

    /// The timer function `name` (one of [`Timers::GLOBALS`]), built when a script first
    /// reaches for it (see [`crate::globals`]).
    pub fn global(timers: &Rc<RefCell<Self>>, ctx: &Ctx<'js>, name: &str) -> Result<Function<'js>> {
        let timers = timers.clone();
        let function = match name {
            "setTimeout" | "setInterval" => {
                let repeats = name == "setInterval";
                Function::new(
                    ctx.clone(),
                    move |ctx: Ctx<'js>,
                          callback: Value<'js>,
                          delay: Opt<Value<'js>>,
                          args: Rest<Value<'js>>| {
                        let Some(callback) = callback.into_function() else {
                            return Err(Exception::throw_type(
                                &ctx,
                                "the callback must be a function",
                            ));
                        };
                        let delay = delay_of(delay)?;
                        let mut timers = timers.borrow_mut();
                        timers.check_room(&ctx)?;
                        let repeat = repeats.then_some(delay);
                        Ok(timers.add(callback, args.0, delay, repeat, true))
                    },
                )?
            }
            _ => Function::new(ctx.clone(), move |id: Opt<Value<'js>>| {
                if let Some(id) = id.0.and_then(|id| id.as_number()) {
                    timers.borrow_mut().remove(id as u32);
                }
            })?,
        };
        function.with_name(name)
    }

    fn check_room(&self, ctx: &Ctx<'js>) -> Result<()> {
        if self.timers.len() >= MAX_PENDING_TIMERS {
            return Err(Exception::throw_range(
                ctx,
                &format!("too many pending timers (limit {MAX_PENDING_TIMERS})"),
            ));
        }
        Ok(())
    }

    /// Adds a one-off timer that does not keep the event loop running: `callback` is called
    /// after `delay` milliseconds if the script is still running then.
    pub fn add_weak(&mut self, ctx: &Ctx<'js>, callback: Function<'js>, delay: f64) -> Result<()> {
        self.check_room(ctx)?;
        let delay = if (0.0..=MAX_DELAY_MS).contains(&delay) {
            delay
        } else {
            MAX_DELAY_MS
        };
        let delay = Duration::from_secs_f64(delay / 1000.0);
        self.add(callback, Vec::new(), delay, None, false);
        Ok(())
    }

    fn add(
        &mut self,
        callback: Function<'js>,
        args: Vec<Value<'js>>,
        delay: Duration,
        repeat: Option<Duration>,
        keeps_alive: bool,
    ) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        let due = Instant::now() + delay;
        self.schedule(
            id,
            Timer {
                callback,
                args,
                repeat,
                due,
                keeps_alive,
            },
        );
        id
    }

    fn schedule(&mut self, id: u32, timer: Timer<'js>) {
        self.alive += usize::from(timer.keeps_alive);
        self.next_sequence += 1;
        self.order.insert((timer.due, self.next_sequence), id);
        self.timers.insert(id, (timer, self.next_sequence));
    }

    /// Removes a timer the script set; weak timers are not the script's to clear.
    fn remove(&mut self, id: u32) {
        if !self
            .timers
            .get(&id)
            .is_some_and(|(timer, _)| timer.keeps_alive)
        {
            return;
        }
        if let Some((timer, sequence)) = self.timers.remove(&id) {
            self.alive -= usize::from(timer.keeps_alive);
            self.order.remove(&(timer.due, sequence));
        }
    }

    /// When the next timer is due, if any pending timer keeps the event loop running.
    pub fn next_due(&self) -> Option<Instant> {
        if self.alive == 0 {
            return None;
        }
        self.order.keys().next().map(|(due, _)| *due)
    }

    /// Takes the earliest timer if it is due at `now`; an interval is rescheduled first so that
    /// its callback may clear it.
    pub fn take_due(&mut self, now: Instant) -> Option<DueTimer<'js>> {
        let (&(due, sequence), &id) = self.order.iter().next()?;
        if due > now {
            return None;
        }
        self.order.remove(&(due, sequence));
        let (timer, _) = self.timers.remove(&id)?;
        self.alive -= usize::from(timer.keeps_alive);
        let due_timer = DueTimer {
            callback: timer.callback.clone(),
            args: timer.args.clone(),
        };
        if let Some(period) = timer.repeat {
            // An interval of 0 still yields to the loop; it cannot starve the deadline check.
            let due = now + period.max(Duration::from_millis(1));
            self.schedule(id, Timer { due, ..timer });
        }
        Some(due_timer)
    }

    /// Drops every pending timer, releasing the script values they hold.
    pub fn clear(&mut self) {
        self.order.clear();
        self.timers.clear();
        self.alive = 0;
    }
}

fn delay_of(delay: Opt<Value<'_>>) -> Result<Duration> {
    let millis = match delay.0 {
        Some(value) if !value.is_undefined() => value.get::<rquickjs::Coerced<f64>>()?.0,
        _ => 0.0,
    };
    let millis = if !(0.0..=MAX_DELAY_MS).contains(&millis) {
        0.0
    } else {
        millis
    };
    Ok(Duration::from_secs_f64(millis / 1000.0))
}
