pub mod bench;
pub mod convert;
pub mod generate;
pub mod reward;
pub mod verify;
