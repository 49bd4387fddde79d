//! Workflows (placeholder until the enroll branch's provision API lands).
pub mod bulk;
