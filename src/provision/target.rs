//! Opening a key target.
