//! Admission of TCP connections, shared by every listener (RTSP, HTTP).
//!
//! Contract:
//! - A listener asks [`ConnectionGate::admit`] for every accepted connection and keeps the
//!   returned [`Permit`] for as long as the connection lives; dropping it frees the slot.
//! - A connection is refused when its client address already holds
//!   [`GateLimits::max_per_address`] connections of this listener.
//! - When the listener's total ([`GateLimits::max_total`]) or the process-wide descriptor
//!   budget ([`FdBudget`]) is reached, the newest *idle* connection of this listener (nothing
//!   read or written for [`IDLE_AFTER`]) is shed — its permit's `cancel` token fires and the
//!   connection is closed by its task — and the new one takes its place. Only when no
//!   connection is idle is the new one refused. So idle connections cannot lock out a client
//!   that talks, and accepting never stops for want of file descriptors: the budget keeps a
//!   reserve below the open-file limit for stores, sockets and files.
//! - Every byte a connection moves is reported with [`Activity::touch`]; that is what "idle"
//!   is measured against.
//! - Refusals and sheds are logged at most once a second per listener and cause, with how
//!   many there were ([`RefusalLog`]).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// A connection that moved no byte for this long may be shed to make room.
pub const IDLE_AFTER: Duration = Duration::from_secs(5);

/// File descriptors kept out of the connection budget, at least.
const MIN_FD_RESERVE: usize = 64;

/// Caps of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    /// Open connections of this listener, at most.
    pub max_total: usize,
    /// Open connections of this listener from one client address, at most.
    pub max_per_address: usize,
    /// The option that sets `max_total`, named in refusals.
    pub total_cap: &'static str,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Its address holds too many connections already.
    #[error("{limit} connections from this address (max-connections-per-address reached)")]
    PerAddress {
        /// The cap.
        limit: usize,
    },
    /// The listener (or the process's descriptors) is full and nothing is idle.
    #[error("{limit} connections open, none idle ({cap} reached)")]
    Full {
        /// The cap reached.
        limit: usize,
        /// Which cap.
        cap: &'static str,
    },
}

/// The process's budget of connections, below its open-file limit.
#[derive(Debug)]
pub struct FdBudget {
    limit: usize,
    used: AtomicUsize,
}

impl FdBudget {
    /// A budget of `open_files` descriptors minus a reserve (a quarter, at least 64).
    pub fn new(open_files: usize) -> Arc<FdBudget> {
        let reserve = (open_files / 4).max(MIN_FD_RESERVE);
        Arc::new(FdBudget {
            limit: open_files.saturating_sub(reserve).max(1),
            used: AtomicUsize::new(0),
        })
    }

    /// The budget for this process: raises the soft open-file limit to the hard one (as Go's
    /// runtime and nginx's `worker_rlimit_nofile` do) and budgets what that allows.
    pub fn for_this_process() -> Arc<FdBudget> {
        FdBudget::new(raise_open_file_limit())
    }

    /// Connections the budget allows.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Connections open now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Raises `RLIMIT_NOFILE`'s soft limit to its hard limit; returns the soft limit in force.
fn raise_open_file_limit() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (limit.current, limit.maximum) {
        if cur < max {
            limit.current = Some(max);
            if setrlimit(Resource::Nofile, limit).is_err() {
                limit.current = Some(cur);
            }
        }
    }
    limit
        .current
        .map_or(1 << 20, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// When a connection last moved a byte (ms since its gate started), and whether it is
/// streaming media (never idle, however quiet its control channel).
#[derive(Debug, Clone)]
pub struct Activity {
    epoch: Instant,
    state: Arc<(AtomicU64, AtomicBool)>,
}

impl Activity {
    fn new(epoch: Instant, now: Instant) -> Activity {
        let ms = now.duration_since(epoch).as_millis() as u64;
        Activity {
            epoch,
            state: Arc::new((AtomicU64::new(ms), AtomicBool::new(false))),
        }
    }

    /// The connection moved bytes now.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.state.0.store(ms, Ordering::Relaxed);
    }

    /// The connection streams media (an RTSP session in PLAY or RECORD): it is never shed.
    pub fn set_streaming(&self, streaming: bool) {
        self.state.1.store(streaming, Ordering::Relaxed);
    }

    fn idle_for(&self, now: Instant) -> Duration {
        if self.state.1.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.state.0.load(Ordering::Relaxed));
        now.saturating_duration_since(self.epoch + last)
    }
}

/// A connection's slot; dropping it frees the slot.
pub struct Permit {
    gate: Arc<ConnectionGate>,
    id: u64,
    /// Report every byte moved here.
    pub activity: Activity,
    /// Fires when the gate sheds this connection: close it.
    pub cancel: CancellationToken,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release(self.id);
    }
}

struct Entry {
    addr: IpAddr,
    activity: Activity,
    cancel: CancellationToken,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Open connections by id; ids grow, so the last entries are the newest.
    open: BTreeMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
}

/// The admission state of one listener.
pub struct ConnectionGate {
    listener: &'static str,
    limits: GateLimits,
    budget: Arc<FdBudget>,
    epoch: Instant,
    state: Mutex<State>,
    log: Arc<RefusalLog>,
    /// Refused connections being given a moment before they are closed.
    slow_refusals: AtomicUsize,
}

/// Refused connections of one listener that may be given a moment (their request read, for
/// its CSeq or so that the close does not reset the answer) at once; beyond, a refused
/// connection is answered and closed at once: a flood of refusals must not hold descriptors.
pub const MAX_SLOW_REFUSALS: usize = 32;

/// A refused connection's place among its listener's slow refusals; freed when dropped.
pub struct SlowRefusal(Arc<ConnectionGate>);

impl Drop for SlowRefusal {
    fn drop(&mut self) {
        self.0.slow_refusals.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionGate {
    /// A gate for `listener` (a name for the logs) with `limits`, drawing on `budget`,
    /// logging its refusals to `log`.
    pub fn new(
        listener: &'static str,
        limits: GateLimits,
        budget: Arc<FdBudget>,
        log: Arc<RefusalLog>,
    ) -> Arc<Self> {
        Arc::new(ConnectionGate {
            listener,
            limits,
            budget,
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
            log,
            slow_refusals: AtomicUsize::new(0),
        })
    }

    /// A place for a refused connection to be given a moment before it is closed, if fewer
    /// than [`MAX_SLOW_REFUSALS`] have one.
    pub fn slow_refusal(self: &Arc<Self>) -> Option<SlowRefusal> {
        let taken = self.slow_refusals.fetch_add(1, Ordering::AcqRel);
        let slot = SlowRefusal(self.clone());
        (taken < MAX_SLOW_REFUSALS).then_some(slot)
    }

    /// Where this gate's (and its listener's) refusals are logged.
    pub fn log(&self) -> &RefusalLog {
        &self.log
    }

    /// Admits a connection from `addr`, shedding an idle one if the gate is full; logs (rate
    /// limited) what it refused or shed.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<Permit, Refusal> {
        let result = self.try_admit(peer.ip(), Instant::now());
        match &result {
            Err(refusal) => self.log.note(
                self.listener,
                "connections refused",
                &refusal.to_string(),
                peer,
            ),
            Ok((_, true)) => self.log.note(
                self.listener,
                "connections shed",
                "the listener was full: the newest idle connection made room",
                peer,
            ),
            Ok(_) => {}
        }
        result.map(|(permit, _)| permit)
    }

    /// The admission itself: (permit, whether an idle connection was shed for it).
    fn try_admit(self: &Arc<Self>, addr: IpAddr, now: Instant) -> Result<(Permit, bool), Refusal> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let from_addr = state.per_address.get(&addr).copied().unwrap_or(0);
        if from_addr >= self.limits.max_per_address {
            return Err(Refusal::PerAddress {
                limit: self.limits.max_per_address,
            });
        }
        let full = if state.open.len() >= self.limits.max_total {
            Some((self.limits.max_total, self.limits.total_cap))
        } else if self.budget.used() >= self.budget.limit {
            Some((self.budget.limit, "open-file limit"))
        } else {
            None
        };
        let shed = match full {
            Some((limit, cap)) => {
                let victim = newest_idle(&state, now).ok_or(Refusal::Full { limit, cap })?;
                remove(&mut state, &self.budget, victim).cancel.cancel();
                true
            }
            None => false,
        };
        let id = state.next_id;
        state.next_id += 1;
        let activity = Activity::new(self.epoch, now);
        let cancel = CancellationToken::new();
        state.open.insert(
            id,
            Entry {
                addr,
                activity: activity.clone(),
                cancel: cancel.clone(),
            },
        );
        *state.per_address.entry(addr).or_default() += 1;
        self.budget.used.fetch_add(1, Ordering::AcqRel);
        let permit = Permit {
            gate: self.clone(),
            id,
            activity,
            cancel,
        };
        Ok((permit, shed))
    }

    fn release(&self, id: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.open.contains_key(&id) {
            remove(&mut state, &self.budget, id);
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
            .len()
    }
}

/// The newest connection idle for at least [`IDLE_AFTER`].
fn newest_idle(state: &State, now: Instant) -> Option<u64> {
    state
        .open
        .iter()
        .rev()
        .find(|(_, e)| e.activity.idle_for(now) >= IDLE_AFTER)
        .map(|(id, _)| *id)
}

/// Forgets connection `id` (present), returning its entry.
fn remove(state: &mut State, budget: &FdBudget, id: u64) -> Entry {
    let entry = state.open.remove(&id).expect("present");
    if let Some(n) = state.per_address.get_mut(&entry.addr) {
        *n -= 1;
        if *n == 0 {
            state.per_address.remove(&entry.addr);
        }
    }
    budget.used.fetch_sub(1, Ordering::AcqRel);
    entry
}

/// Logs refusals at most once a second per (listener, what): the first one at once, then the
/// count of the rest, with the latest peer and cause — when the next one comes a second later,
/// or at the next [`RefusalLog::flush`] (a server task calls it every second), so the tail of a
/// burst is counted too.
#[derive(Default)]
pub struct RefusalLog {
    slots: Mutex<HashMap<(&'static str, &'static str), LogSlot>>,
}

/// One kind of refusal: when it was last logged, and what happened since.
struct LogSlot {
    logged: Instant,
    pending: u64,
    peer: SocketAddr,
    cause: String,
}

impl RefusalLog {
    /// One more `what` on `listener` because of `cause` (`peer`'s connection).
    pub fn note(&self, listener: &'static str, what: &'static str, cause: &str, peer: SocketAddr) {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry((listener, what)).or_insert_with(|| LogSlot {
            logged: now - Duration::from_secs(2),
            pending: 0,
            peer,
            cause: String::new(),
        });
        slot.pending += 1;
        slot.peer = peer;
        cause.clone_into(&mut slot.cause);
        if now.duration_since(slot.logged) >= Duration::from_secs(1) {
            emit(listener, what, slot, now);
        }
    }

    /// Logs what was counted but not yet logged, for kinds last logged over a second ago.
    pub fn flush(&self) {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        for ((listener, what), slot) in slots.iter_mut() {
            if slot.pending > 0 && now.duration_since(slot.logged) >= Duration::from_secs(1) {
                emit(listener, what, slot, now);
            }
        }
    }

    /// Flushes `log` every second until the task is aborted.
    pub fn spawn_flusher(log: Arc<RefusalLog>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                log.flush();
            }
        })
    }
}

fn emit(listener: &str, what: &str, slot: &mut LogSlot, now: Instant) {
    tracing::warn!(
        listener,
        count = slot.pending,
        peer = %slot.peer,
        cause = %slot.cause,
        "{what}: {} since the last line (the peer and cause are the latest)",
        slot.pending
    );
    slot.logged = now;
    slot.pending = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn gate(max_total: usize, max_per_address: usize, budget: usize) -> Arc<ConnectionGate> {
        let budget = Arc::new(FdBudget {
            limit: budget,
            used: AtomicUsize::new(0),
        });
        ConnectionGate::new(
            "test",
            GateLimits {
                max_total,
                max_per_address,
                total_cap: "max-connections",
            },
            budget,
            Arc::default(),
        )
    }

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let g = gate(10, 2, 100);
        let now = Instant::now();
        let _a = g.try_admit(ip(2), now).expect("first");
        let _b = g.try_admit(ip(2), now).expect("second");
        assert_eq!(
            g.try_admit(ip(2), now).err(),
            Some(Refusal::PerAddress { limit: 2 })
        );
        assert!(g.try_admit(ip(1), now).is_ok(), "another address is served");
    }

    #[test]
    fn a_full_gate_sheds_the_newest_idle_connection_or_refuses() {
        let g = gate(3, 10, 100);
        let t0 = Instant::now();
        let (old, _) = g.try_admit(ip(2), t0).expect("1");
        let (newer, _) = g.try_admit(ip(2), t0).expect("2");
        let (busy, _) = g.try_admit(ip(2), t0).expect("3");
        // Nothing idle yet: refused.
        assert!(matches!(
            g.try_admit(ip(1), t0 + Duration::from_secs(1)),
            Err(Refusal::Full { limit: 3, .. })
        ));
        // Later, `busy` streams, the others moved nothing: the newest idle one goes.
        let later = t0 + IDLE_AFTER + Duration::from_secs(1);
        busy.activity.set_streaming(true);
        let (_fresh, shed) = g.try_admit(ip(1), later).expect("admitted by shedding");
        assert!(shed);
        assert!(newer.cancel.is_cancelled(), "the newest idle one was shed");
        assert!(!old.cancel.is_cancelled() && !busy.cancel.is_cancelled());
        assert_eq!(g.open(), 3);
        drop(newer); // its task ends: nothing is released twice
        assert_eq!(g.open(), 3);
    }

    #[test]
    fn the_descriptor_budget_is_shared_and_released() {
        let budget = Arc::new(FdBudget {
            limit: 2,
            used: AtomicUsize::new(0),
        });
        let limits = GateLimits {
            max_total: 10,
            max_per_address: 10,
            total_cap: "max-connections",
        };
        let rtsp = ConnectionGate::new("rtsp", limits, budget.clone(), Arc::default());
        let http = ConnectionGate::new("http", limits, budget.clone(), Arc::default());
        let now = Instant::now();
        let a = rtsp.try_admit(ip(1), now).expect("rtsp");
        let _b = http.try_admit(ip(1), now).expect("http");
        assert!(matches!(
            http.try_admit(ip(1), now),
            Err(Refusal::Full {
                cap: "open-file limit",
                ..
            })
        ));
        drop(a);
        assert_eq!(budget.used(), 1);
        assert!(http.try_admit(ip(1), now).is_ok());
    }

    #[test]
    fn the_budget_keeps_a_reserve() {
        assert_eq!(FdBudget::new(1024).limit(), 768);
        assert_eq!(FdBudget::new(100).limit(), 36);
        assert_eq!(FdBudget::new(10).limit(), 1);
    }
}
