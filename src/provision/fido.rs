//! FIDO2 steps of an enrollment.
