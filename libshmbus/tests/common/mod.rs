//! Helpers shared by the hostile-segment tests: the adversary that writes a
//! topic's shared memory behind the library's back, and the hang detector.

pub mod adversary;
pub mod watchdog;
