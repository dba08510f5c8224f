//! A token bucket for one connection's `message.send`s.
//!
//! Lives on: the connection's core, inside its session.

use std::time::Instant;

pub struct RateLimit {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl RateLimit {
    pub fn new(rate_per_second: u32, burst: u32) -> RateLimit {
        RateLimit {
            tokens: f64::from(burst),
            last: Instant::now(),
            rate: f64::from(rate_per_second),
            burst: f64::from(burst),
        }
    }

    /// Takes one token, or says in how many ms one will be there.
    pub fn take(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(((1.0 - self.tokens) / self.rate * 1000.0).ceil() as u64)
    }
}
