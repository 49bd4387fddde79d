//! The `keyward piv` command line: subcommands and their options.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::piv::{FirmwareVersion, KeyAlgorithm, MgmtAlgorithm, PinPolicy, Slot, TouchPolicy};

/// Shown after `keyward piv --help`.
pub const AFTER_HELP: &str = "\
Secrets (PIN, PUK, management key) are never taken from the command line:
  --pin-fd N, --puk-fd N, --new-fd N, --management-key-fd N  read one line each
  from descriptor N (several may share one: one line per secret, in the order
  the command asks); without them keyward prompts without echo on a terminal,
  or reads lines from stdin.

Typical first provisioning (see docs/piv.md):
  keyward piv check
  keyward piv change-pin --generate      # prints the new PIN on stdout
  keyward piv change-puk --generate
  keyward piv rotate-management-key --algorithm aes256
  keyward piv provision --slot 9a --algorithm p256 --pin-policy once \\
      --touch-policy always --subject 'CN=Ada Lovelace' --out-dir ./9a
  keyward piv import-cert --slot 9a issued.pem

Exit codes: 0 ok, 1 failure (wrong PIN, drift found, ...), 2 usage,
3 no card / no such reader, 4 PIN blocked.";

/// Which card, and where its secrets come from.
#[derive(Debug, Args)]
pub struct CardArgs {
    /// PC/SC reader of the card (`pcsc_scan -r` lists them); may be left
    /// out when exactly one PIV card is present
    #[arg(long, short = 'd', value_name = "READER", env = "KEYWARD_PIV_DEVICE")]
    pub device: Option<String>,
    /// Read the PIN from this file descriptor (one line)
    #[arg(long, value_name = "N")]
    pub pin_fd: Option<i32>,
    /// Read the management key (hex) from this file descriptor; without it
    /// keyward uses the factory key if the card still has it, else the
    /// PIN-protected copy on the card
    #[arg(long, value_name = "N")]
    pub management_key_fd: Option<i32>,
}

#[derive(Debug, Subcommand)]
pub enum PivCommand {
    /// Show the card: serial, firmware, PIN/PUK retries and whether they
    /// are still factory values, management key, slots, CHUID, CCC
    Info(#[command(flatten)] CardArgs),
    /// Pre-issuance drift check: default PIN/PUK/management key, its
    /// algorithm, old firmware, slots in use (exit 1 when anything drifted)
    Check {
        #[command(flatten)]
        card: CardArgs,
        /// Lowest acceptable firmware (5.7.0: earlier YubiKey 5 firmware
        /// is affected by Yubico advisory YSA-2024-03)
        #[arg(long, value_name = "X.Y.Z", default_value = "5.7.0")]
        min_firmware: FirmwareVersion,
    },
    /// Change the PIN (current PIN, then the new one)
    ChangePin {
        #[command(flatten)]
        card: CardArgs,
        #[command(flatten)]
        new: NewSecret,
    },
    /// Change the PUK (current PUK, then the new one)
    ChangePuk {
        #[command(flatten)]
        card: CardArgs,
        /// Read the current PUK from this file descriptor
        #[arg(long, value_name = "N")]
        puk_fd: Option<i32>,
        #[command(flatten)]
        new: NewSecret,
    },
    /// Set a new PIN with the PUK, after the PIN blocked
    UnblockPin {
        #[command(flatten)]
        card: CardArgs,
        /// Read the PUK from this file descriptor
        #[arg(long, value_name = "N")]
        puk_fd: Option<i32>,
        #[command(flatten)]
        new: NewSecret,
    },
    /// Set how many wrong PINs and PUKs the card allows. The card then
    /// resets the PIN and PUK to 123456 and 12345678: change them next
    SetRetries {
        #[command(flatten)]
        card: CardArgs,
        /// PIN tries (1-255)
        #[arg(long, value_name = "N")]
        pin_retries: u8,
        /// PUK tries (1-255)
        #[arg(long, value_name = "N")]
        puk_retries: u8,
    },
    /// Replace the management key with a random AES key stored
    /// PIN-protected on the card (as ykman does), never shown
    RotateManagementKey {
        #[command(flatten)]
        card: CardArgs,
        /// Algorithm of the new key
        #[arg(long, value_name = "ALG", default_value = "aes256", value_parser = parse::<MgmtAlgorithm>)]
        algorithm: MgmtAlgorithm,
    },
    /// Generate a key on the card, fetch its attestation and build a CSR
    /// signed by it
    Provision {
        #[command(flatten)]
        card: CardArgs,
        #[command(flatten)]
        key: KeySpec,
        /// Subject of the CSR (RFC 4514, e.g. "CN=Ada Lovelace,O=Example")
        #[arg(long, value_name = "DN")]
        subject: String,
        /// Write 9a.pub.pem, 9a.attestation.pem, f9.pem and 9a.csr.pem
        /// here (named after the slot)
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// Replace a key already in the slot (it is destroyed)
        #[arg(long)]
        overwrite: bool,
    },
    /// Build a CSR signed by the key already in a slot
    Csr {
        #[command(flatten)]
        card: CardArgs,
        /// Slot of the key
        #[arg(long, value_parser = parse::<Slot>)]
        slot: Slot,
        /// Subject (RFC 4514)
        #[arg(long, value_name = "DN")]
        subject: String,
        /// Write the PEM here instead of stdout
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write the slot attestation and F9 certificates (PEM)
    Attest {
        #[command(flatten)]
        card: CardArgs,
        /// Slot of the key
        #[arg(long, value_parser = parse::<Slot>)]
        slot: Slot,
        /// Write 9a.attestation.pem (named after the slot) and f9.pem here
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
    /// Store an issued certificate (PEM or DER) in a slot; its public key
    /// must be the slot's key
    ImportCert {
        #[command(flatten)]
        card: CardArgs,
        /// Slot of the key
        #[arg(long, value_parser = parse::<Slot>)]
        slot: Slot,
        /// The certificate file
        file: PathBuf,
    },
    /// Write a fresh CHUID and CCC (random GUID and card identifier)
    WriteIds(#[command(flatten)] CardArgs),
    /// Erase the PIV application: every key and certificate, PIN, PUK and
    /// management key back to factory values (blocks PIN and PUK first)
    Reset {
        #[command(flatten)]
        card: CardArgs,
        /// Required: this destroys every PIV key on the card
        #[arg(long, required = true)]
        danger_destroy_all_keys: bool,
    },
}

/// The new PIN or PUK.
#[derive(Debug, Args)]
pub struct NewSecret {
    /// Read the new value from this file descriptor
    #[arg(long = "new-fd", value_name = "N", conflicts_with = "generate")]
    pub new_fd: Option<i32>,
    /// Generate a random 8-digit value and print it on stdout (only there)
    #[arg(long)]
    pub generate: bool,
}

/// The key to generate.
#[derive(Debug, Args)]
pub struct KeySpec {
    /// Slot: 9a (authentication), 9c (signature), 9d (key management),
    /// 9e (card authentication)
    #[arg(long, value_parser = parse::<Slot>)]
    pub slot: Slot,
    /// p256, p384 or rsa2048; on firmware 5.7+ also rsa3072, rsa4096,
    /// ed25519 and x25519 (key agreement only: no CSR)
    #[arg(long, value_name = "ALG", value_parser = parse::<KeyAlgorithm>)]
    pub algorithm: KeyAlgorithm,
    /// default, never, once or always
    #[arg(long, value_name = "POLICY", default_value = "default", value_parser = parse::<PinPolicy>)]
    pub pin_policy: PinPolicy,
    /// default, never, always or cached
    #[arg(long, value_name = "POLICY", default_value = "default", value_parser = parse::<TouchPolicy>)]
    pub touch_policy: TouchPolicy,
}

fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
    s.parse()
}
