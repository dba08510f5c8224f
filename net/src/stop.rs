//! `StopSignal`: a one-shot broadcast that tells accept loops and idle
//! connections to stop (the engine fires it on SIGTERM).
//!
//! Lives on: one core; cloned (Rc) into every task of that core that waits on it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A cloneable one-shot broadcast: once fired, every `wait()` completes, now and later.
#[derive(Clone, Default)]
pub struct StopSignal {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    fired: Cell<bool>,
    waiter_id_next: Cell<u64>,
    waiters: RefCell<BTreeMap<u64, Waker>>,
}

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal; idempotent.
    pub fn fire(&self) {
        if self.inner.fired.replace(true) {
            return;
        }
        let waiters = std::mem::take(&mut *self.inner.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    pub fn fired(&self) -> bool {
        self.inner.fired.get()
    }

    /// Completes once the signal has fired.
    pub fn wait(&self) -> Wait {
        Wait {
            inner: self.inner.clone(),
            id: None,
        }
    }
}

/// The future of `StopSignal::wait`.
pub struct Wait {
    inner: Rc<Inner>,
    id: Option<u64>,
}

impl Future for Wait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.fired.get() {
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = self.inner.waiter_id_next.get();
                self.inner.waiter_id_next.set(id + 1);
                self.id = Some(id);
                id
            }
        };
        let mut waiters = self.inner.waiters.borrow_mut();
        match waiters.get_mut(&id) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => *waker = cx.waker().clone(),
            None => {
                waiters.insert(id, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.inner.waiters.borrow_mut().remove(&id);
        }
    }
}
