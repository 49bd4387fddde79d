//! Replacement rules.
