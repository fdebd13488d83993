//! # r1-metrics
//!
//! What users watch while a GRPO run trains:
//!
//! - [`MetricsWriter`]: one JSON object per step in `DIR/metrics.jsonl`;
//! - [`SamplesWriter`]: sampled completions with their rewards in
//!   `DIR/completions.jsonl`;
//! - [`count_reflections`]: the "aha moment" counter (reflective phrases);
//! - [`plot_run`] / [`plot_command`]: PNG charts of a run (`r1 plot DIR`).
//!
//! Both writers resume cleanly: reopening at step `s` keeps the lines of steps
//! before `s` and drops the rest, so a restarted run never logs a step twice.

mod font;
mod jsonl_log;
pub mod metrics;
pub mod plot;
pub mod reflection;
pub mod samples;

pub use metrics::{read_metrics, MetricsRow, MetricsWriter, METRICS_FILE};
pub use plot::{plot_command, plot_run};
pub use reflection::{count_reflections, has_reflection, REFLECTION_PHRASES};
pub use samples::{Sample, SamplesWriter, SAMPLES_FILE};
