//! Analysis: metric windows, statistics and judges. Pure: no I/O, no clock.

pub mod stats;
