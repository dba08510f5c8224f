//! chat-benches' shared pieces for the benchmark binaries in `src/bin/`:
//! starting a pinned chatd (`server.rs`) and quantiles.

pub mod server;

/// The `p` quantile (0..=1) of `v` (sorted here); NaN when empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}
