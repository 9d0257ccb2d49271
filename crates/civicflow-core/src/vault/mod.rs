//! The personal-data vault (being written).
