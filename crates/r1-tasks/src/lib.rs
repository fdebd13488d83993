//! # r1-tasks
//!
//! Training and evaluation data for R1-Zero style GRPO runs, all offline:
//!
//! - procedural tasks that are deterministic in a seed: [`arithmetic`],
//!   [`countdown`] and [`linear`] equations;
//! - a JSONL dataset loader ([`jsonl`]) that understands the common column names
//!   (`prompt`/`question`/`problem`, `answer`/`solution`/`reference`, chat messages);
//! - [`TaskSpec`] (the `[task]` table of a config) and [`load_task`], which build a
//!   train set and a held-out eval set;
//! - the R1-Zero prompt template and a chat-mode system prompt ([`template`]);
//! - [`DataCursor`], a resumable per-epoch shuffled iterator over the train set.
//!
//! No tensor library: this crate builds and tests in seconds.

pub mod arithmetic;
pub mod countdown;
pub mod cursor;
mod example;
pub mod jsonl;
pub mod linear;
mod seed;
pub mod spec;
pub mod template;

pub use cursor::DataCursor;
pub use example::Example;
pub use jsonl::{load_jsonl, parse_messages};
pub use spec::{load_task, TaskData, TaskSource, TaskSpec};
pub use template::{r1_zero_prompt, DEFAULT_SYSTEM_PROMPT, R1_ZERO_TEMPLATE};
