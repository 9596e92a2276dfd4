//! A simulated device under the log, for power-loss tests (written by the power-loss
//! test work; see src/power_loss.rs).
