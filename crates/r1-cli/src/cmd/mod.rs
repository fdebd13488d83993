pub mod bench;
pub mod convert;
pub mod eval;
pub mod generate;
pub mod reward;
pub mod sample;
pub mod verify;
pub mod zero;
