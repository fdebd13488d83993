//! # r1-eval
//!
//! Evaluation as the DeepSeek-R1 paper does it, and rejection sampling for SFT data:
//!
//! - [`metrics`]: pure functions — unbiased pass@k, majority vote where equivalent
//!   answers vote together (cons@k), a 95% interval for pass@1;
//! - [`grade`]: one completion against one example (math verification, or the
//!   sandboxed `code` reward when the example has tests);
//! - [`prompt`]: the r1-zero / chat / raw prompt templates;
//! - [`generate`]: batched sampling through any `RolloutEngine`;
//! - [`eval`]: per-question results and the summary figures;
//! - [`filters`] and [`sample`]: rejection-sampling selection and SFT records, shared
//!   by `r1 sample` and `r1 distill`;
//! - [`output`]: atomic file writes.

pub mod eval;
pub mod filters;
pub mod generate;
pub mod grade;
pub mod metrics;
pub mod output;
pub mod prompt;
pub mod sample;

pub use eval::{score_question, summarize, Metrics, QuestionResult, SampleResult};
pub use filters::{select, Candidate, FilterCounts, FilterOptions};
pub use generate::generate_all;
pub use grade::{Graded, Grader};
pub use prompt::Template;
pub use sample::{candidates, sft_record};
