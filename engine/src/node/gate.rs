//! A strictly first-come, first-served gate (a ticket lock) for one core's
//! tasks.
//!
//! The mesh keeps a conversation's events in order only if sends to a peer
//! leave in the order their tasks asked. glommio's `Semaphore` is not FIFO
//! under contention: a permit released to a woken waiter can be taken by a
//! task that arrives before the waiter runs (its first poll tries to acquire
//! without looking at the queue). loadgen's order check caught that as
//! message.new events out of seq order under load. Here each task draws a
//! ticket and passes strictly in ticket order; a task dropped while waiting
//! gives its turn up so nobody waits forever.
//!
//! Lives on: one core (not `Send`); one gate per peer core in `Core`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A FIFO gate: at most one holder, holders in arrival order.
#[derive(Debug, Default)]
pub struct FifoGate {
    /// The next ticket to hand out.
    next: Cell<u64>,
    /// The ticket allowed through now.
    serving: Cell<u64>,
    /// Waiting tickets and how to wake them.
    wakers: RefCell<BTreeMap<u64, Waker>>,
    /// Tickets whose tasks went away before their turn.
    abandoned: RefCell<BTreeSet<u64>>,
}

/// The right to pass; the next ticket's turn comes when it drops.
#[derive(Debug)]
pub struct GatePass<'a> {
    gate: &'a FifoGate,
}

/// Waiting for a ticket's turn.
#[derive(Debug)]
pub struct Enter<'a> {
    gate: &'a FifoGate,
    ticket: u64,
    done: bool,
}

impl FifoGate {
    pub fn new() -> FifoGate {
        FifoGate::default()
    }

    /// Waits for this caller's turn (callers pass in the order they called).
    pub fn enter(&self) -> Enter<'_> {
        let ticket = self.next.get();
        self.next.set(ticket + 1);
        Enter {
            gate: self,
            ticket,
            done: false,
        }
    }

    /// Tasks holding a ticket, the holder included.
    pub fn queued(&self) -> u64 {
        self.next.get() - self.serving.get()
    }

    /// Moves the turn on past abandoned tickets and wakes the next holder.
    fn advance(&self) {
        let mut serving = self.serving.get() + 1;
        {
            let mut abandoned = self.abandoned.borrow_mut();
            while abandoned.remove(&serving) {
                serving += 1;
            }
        }
        assert!(
            serving <= self.next.get(),
            "the turn never passes the last ticket"
        );
        self.serving.set(serving);
        let waker = self.wakers.borrow_mut().remove(&serving);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<'a> Future for Enter<'a> {
    type Output = GatePass<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<GatePass<'a>> {
        assert!(!self.done, "Enter polled after it completed");
        if self.gate.serving.get() == self.ticket {
            self.done = true;
            self.gate.wakers.borrow_mut().remove(&self.ticket);
            return Poll::Ready(GatePass { gate: self.gate });
        }
        assert!(
            self.gate.serving.get() < self.ticket,
            "a ticket is served once"
        );
        self.gate
            .wakers
            .borrow_mut()
            .insert(self.ticket, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Enter<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.gate.wakers.borrow_mut().remove(&self.ticket);
        if self.gate.serving.get() == self.ticket {
            // Our turn came but we left: pass it on.
            self.gate.advance();
        } else {
            self.gate.abandoned.borrow_mut().insert(self.ticket);
        }
    }
}

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        self.gate.advance();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::time::Duration;

    fn run<F: Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move { f().await })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn holders_pass_in_arrival_order_even_against_newcomers() {
        run(|| async {
            let gate = Rc::new(FifoGate::new());
            let order = Rc::new(RefCell::new(Vec::new()));
            let first = gate.enter().await;
            let mut tasks = Vec::new();
            for i in 0..50u32 {
                let (gate, order) = (gate.clone(), order.clone());
                tasks.push(glommio::spawn_local(async move {
                    let _pass = gate.enter().await;
                    order.borrow_mut().push(i);
                    // Hold across a yield so later tasks pile up behind.
                    futures_lite::future::yield_now().await;
                    glommio::timer::sleep(Duration::from_micros(50)).await;
                }));
                // Newcomers arrive while earlier ones wait or were just woken.
                if i % 7 == 0 {
                    futures_lite::future::yield_now().await;
                }
            }
            drop(first);
            for t in tasks {
                t.await;
            }
            assert_eq!(*order.borrow(), (0..50).collect::<Vec<u32>>());
            assert_eq!(gate.queued(), 0);
        });
    }

    #[test]
    fn a_waiter_that_goes_away_gives_its_turn_up() {
        run(|| async {
            let gate = Rc::new(FifoGate::new());
            let held = gate.enter().await;
            // Ticket 1 waits, then is dropped (its task cancelled).
            let mut gone = Box::pin(gate.enter());
            let waker = futures_lite::future::poll_once(&mut gone).await;
            assert!(waker.is_none());
            let g2 = gate.clone();
            let third = glommio::spawn_local(async move {
                let _pass = g2.enter().await;
            });
            drop(gone);
            drop(held);
            third.await;
            // And a ticket dropped right when its turn comes passes it on.
            let held = gate.enter().await;
            let mut next = Box::pin(gate.enter());
            assert!(futures_lite::future::poll_once(&mut next).await.is_none());
            drop(held);
            drop(next);
            let _again = gate.enter().await;
            assert_eq!(gate.queued(), 1);
        });
    }
}
