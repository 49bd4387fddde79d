//! CTAPHID (placeholder)
