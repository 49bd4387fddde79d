//! Policy: decides from attestation facts. (filled in below)
