//! Secrets for the `piv` commands come through the CLI's one secret-input
//! module, [`crate::cli::secret_input`].

pub use crate::cli::secret_input::{Fd, SecretInput};
