//! Math answer verification: LaTeX normalisation, exact and symbolic equivalence.
//!
//! Entry point: [`equivalent`]. Pipeline: [`latex`] rewrites LaTeX into a plain
//! syntax, [`answer`] decides the structure (tuple, set, interval, equation, …),
//! [`expr`] parses and evaluates expressions, [`equiv`] compares.

pub mod answer;
pub mod equiv;
pub mod expr;
pub mod latex;
pub mod number;

pub use answer::Answer;
pub use equiv::{equivalent, parse as parse_answer, EquivOptions};

/// Why an answer could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MathError {
    /// Nothing left after normalisation.
    #[error("empty answer")]
    Empty,
    /// Nesting deeper than any real answer (bounded to protect the stack).
    #[error("answer nested too deeply")]
    TooDeep,
    /// Longer than any real answer (bounded to protect time and memory).
    #[error("answer too long")]
    TooLong,
    /// Not a well-formed expression.
    #[error("syntax error: {0}")]
    Syntax(String),
}
