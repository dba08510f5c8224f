//! A `hyper::rt::Timer` on glommio, for hyper's header read timeout.
//!
//! hyper wants its sleeps `Send + Sync`, glommio's timers are not: a
//! sleep here is a shared flag and waker behind a mutex. Each core keeps
//! its pending sleeps in a heap (thread-local: a core's own, never
//! shared) and runs one task, while any is pending, that fires them as
//! their deadlines pass. A sleep dropped early (the head arrived) costs
//! its heap entry until its deadline.
//!
//! Lives on: the core whose connection asked (hyper calls it from the
//! connection's task).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Shared {
    fired: bool,
    waker: Option<Waker>,
}

/// What `GlommioTimer` hands hyper.
pub struct GlommioSleep {
    shared: Arc<Mutex<Shared>>,
}

impl Future for GlommioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self
            .shared
            .lock()
            .expect("a sleep's lock is never poisoned");
        if s.fired {
            return Poll::Ready(());
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl hyper::rt::Sleep for GlommioSleep {}

/// This core's pending sleeps, earliest first, and whether its firing
/// task runs. A dropped sleep stays listed (a weak reference, 16 bytes
/// and a deadline) until its deadline passes.
#[derive(Default)]
struct Pending {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    sleeps: std::collections::HashMap<u64, Weak<Mutex<Shared>>>,
    next_id: u64,
    running: bool,
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// Fires every sleep whose deadline passed; answers the next deadline.
fn fire_due(now: Instant) -> Option<Instant> {
    let mut due = Vec::new();
    let next = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        while let Some(Reverse((at, id))) = p.heap.peek().copied() {
            if at > now {
                return Some(at);
            }
            p.heap.pop();
            if let Some(shared) = p.sleeps.remove(&id).and_then(|w| w.upgrade()) {
                due.push(shared);
            }
        }
        p.running = false;
        None
    });
    for shared in due {
        let waker = {
            let mut s = shared.lock().expect("a sleep's lock is never poisoned");
            s.fired = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
    next
}

/// One task per core while sleeps are pending: wakes at the earliest
/// deadline, fires what is due, ends when none is left. A sleep asked for
/// meanwhile with an earlier deadline waits for that wake (hyper asks for
/// one duration here, the header timeout, so deadlines come in order).
fn ensure_running() {
    let start = PENDING.with(|p| !std::mem::replace(&mut p.borrow_mut().running, true));
    if !start {
        return;
    }
    glommio::spawn_local(async {
        while let Some(at) = fire_due(Instant::now()) {
            let wait = at.saturating_duration_since(Instant::now());
            glommio::timer::sleep(wait.max(Duration::from_millis(1))).await;
        }
    })
    .detach();
}

/// hyper's timer, on the calling core's executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlommioTimer;

impl hyper::rt::Timer for GlommioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let id = p.next_id;
            p.next_id += 1;
            p.heap.push(Reverse((deadline, id)));
            p.sleeps.insert(id, Arc::downgrade(&shared));
        });
        ensure_running();
        Box::pin(GlommioSleep { shared })
    }
}
