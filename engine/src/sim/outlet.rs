//! A simulated device's socket: frames pushed to it are kept in order for
//! the checks; it never fills (a slow consumer is not what this tests).
//!
//! Lives on: the simulation's thread.

use std::cell::{Cell, RefCell};

use crate::node::conns::{Outlet, Refused};
use crate::shard::storage::LocalBoxFuture;

#[derive(Default)]
pub struct SimOutlet {
    pub frames: RefCell<Vec<String>>,
    closed: Cell<Option<u16>>,
}

impl SimOutlet {
    pub fn closed_with(&self) -> Option<u16> {
        self.closed.get()
    }
}

impl Outlet for SimOutlet {
    fn try_send(&self, text: String) -> Result<(), Refused> {
        if self.closed.get().is_some() {
            return Err(Refused);
        }
        self.frames.borrow_mut().push(text);
        Ok(())
    }

    fn send_paced(&self, text: String) -> LocalBoxFuture<'_, Result<(), Refused>> {
        Box::pin(std::future::ready(self.try_send(text)))
    }

    fn close(&self, code: u16, _reason: &str) {
        if self.closed.get().is_none() {
            self.closed.set(Some(code));
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.get().is_some()
    }

    fn queued(&self) -> usize {
        0
    }
}
