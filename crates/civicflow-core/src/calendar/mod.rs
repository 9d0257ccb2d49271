//! The business calendar (being written).
