//! Randomness from the operating system's CSPRNG, in one place so callers
//! that need determinism (tests, the simulator CAs) can see where it enters.

/// Fill `buf` from the operating system's CSPRNG.
pub fn fill(buf: &mut [u8]) {
    use rand_core::TryRng;
    // The system RNG failing leaves nothing safe to do: keys and ids would
    // not be random.
    getrandom::SysRng
        .try_fill_bytes(buf)
        .expect("system random number generator failed");
}

/// The operating system's CSPRNG as an infallible `rand_core` RNG.
pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}
