//! civicflow's read models.
