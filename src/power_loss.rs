//! Power-loss tests: the log on a simulated device that keeps only synced bytes.
