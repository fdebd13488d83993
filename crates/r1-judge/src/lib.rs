//! # r1-judge
//!
//! A judge-model reward for R1's all-scenario RL stage: an OpenAI-compatible
//! `/chat/completions` endpoint rates each response, the reply's score is normalised
//! to [0, 1]. Two modes, as in the paper: `helpfulness` judges only the final answer
//! (after `</think>`), `harmlessness` the whole response. No tensor library.
//!
//! ```toml
//! base_url = "http://127.0.0.1:8000/v1"
//! model = "Qwen2.5-7B-Instruct"
//! api_key_env = "JUDGE_API_KEY"
//! mode = "helpfulness"
//! ```

pub mod config;
mod judge;
pub mod parse;

pub use config::{JudgeConfig, JudgeMode};
pub use judge::Judge;
pub use parse::{final_answer, parse_score};
