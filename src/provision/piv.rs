//! PIV steps of an enrollment.
