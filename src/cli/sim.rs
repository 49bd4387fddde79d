//! `keyward sim`: run a virtual key attached to pcscd, or print its roots.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::sim::ca::SimCa;
use crate::sim::device::{SimOptions, build_card};
use crate::sim::state::{StateDir, ca_seed};
use crate::sim::vpcd::{self, Shutdown};
use crate::sim::{
    AttestationFormat, DeviceProfile, Fault, Faults, Firmware, Person, Quirks, Vendor,
};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: Option<SimCommand>,
    #[command(flatten)]
    pub run: SimRunArgs,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Print the simulator's attestation roots (FIDO, then PIV) as PEM.
    /// They are never trusted by default: a verifier must be configured to
    /// trust them.
    Roots {
        /// Use the CA seed kept in this state directory
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Print only Vendor B's FIDO root (`--vendor other`), the
        /// certificate an MDS entry for that key lists as its
        /// attestationRootCertificates
        #[arg(long)]
        vendor: bool,
    },
}

/// Run one virtual key until killed.
#[derive(Debug, Args)]
pub struct SimRunArgs {
    /// Address of the vpcd driver (127.0.0.1:35963 is reader "Virtual PCD 00 00")
    #[arg(long, value_name = "HOST:PORT", required = true)]
    pub vpcd: Option<String>,
    /// Carry the FIDO2 applet (with neither --fido2 nor --piv, both)
    #[arg(long)]
    pub fido2: bool,
    /// Carry the PIV applet (with neither --fido2 nor --piv, both)
    #[arg(long)]
    pub piv: bool,
    /// Device serial number
    #[arg(long, value_name = "N", default_value_t = 12_345_678)]
    pub serial: u32,
    /// Firmware version; 5.7.0 and later default to an AES-192 management key
    #[arg(long, value_name = "X.Y.Z", default_value = "5.7.1")]
    pub firmware: Firmware,
    /// Keep keys, PINs and credentials here across restarts (and the CA seed)
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Misbehave on purpose (repeatable): malformed-cbor, non-canonical-cbor,
    /// truncated-response, wrong-status-word, stall, disconnect-mid-command,
    /// untrusted-attestation, aaguid-mismatch, drop-cred-protect
    #[arg(long = "fault", value_name = "NAME")]
    pub faults: Vec<Fault>,
    /// Behave like a key that deviates from CTAP 2.1 (docs/interop.md):
    /// comma-separated quirks (empty-rp-enumeration, empty-rp-map, ctap20,
    /// pin-protocol-1, no-pin-protocols, short-apdu, max-msg-1024,
    /// no-max-msg-size, u2f-only, unknown-info-fields, no-power-cycle-state,
    /// no-client-pin, no-management) or profiles (ctap20-key, lenient-21, nfc-1024,
    /// u2f-key); kept with --state
    #[arg(long, value_name = "LIST")]
    pub quirks: Option<Quirks>,
    /// The simulated person touches the key this long after it asks
    #[arg(long, value_name = "MS", conflicts_with = "no_touch")]
    pub touch_delay_ms: Option<u64>,
    /// The simulated person never touches the key
    #[arg(long)]
    pub no_touch: bool,
    /// How long the key waits for a touch before giving up
    #[arg(long, value_name = "MS", default_value_t = 15_000)]
    pub touch_timeout_ms: u64,
    /// Extra device latency for on-card key generation (FIDO2 makeCredential
    /// and PIV GENERATE ASYMMETRIC KEY), as real keys take seconds
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub keygen_ms: u64,
    /// Who made the FIDO2 key: sim (the simulator's own roots) or other
    /// (Vendor B, a non-Yubico maker whose root only an MDS entry vouches
    /// for; FIDO2 only unless --piv, AAGUID 6b657977-6172-642d-7665-6e646f722d62
    /// unless --aaguid)
    #[arg(long, value_name = "sim|other", default_value = "sim")]
    pub vendor: Vendor,
    /// The FIDO2 AAGUID, 32 hex digits (dashes allowed)
    #[arg(long, value_name = "HEX", value_parser = crate::sim::parse_aaguid)]
    pub aaguid: Option<[u8; 16]>,
    /// makeCredential attestation format: packed (x5c chain) or none
    #[arg(long, value_name = "packed|none", default_value = "packed")]
    pub attestation: AttestationFormat,
}

pub fn run(args: SimArgs, json: bool) -> Result<()> {
    match args.command {
        Some(SimCommand::Roots { state, vendor }) => roots(state, vendor, json),
        None => serve(args.run),
    }
}

fn roots(state: Option<PathBuf>, vendor: bool, json: bool) -> Result<()> {
    let seed = ca_seed(state.as_deref())?;
    let ca = SimCa::from_seed(&seed)?;
    if json {
        let doc = serde_json::json!({
            "version": 1,
            "fido_root_pem": pem(ca.fido_root())?,
            "piv_root_pem": pem(ca.piv_root())?,
            "vendor_fido_root_pem": pem(ca.fido_root_of(Vendor::Other))?,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if vendor {
        print!("{}", pem(ca.fido_root_of(Vendor::Other))?);
    } else {
        print!("{}", ca.roots_pem()?);
    }
    Ok(())
}

fn pem(der_bytes: &[u8]) -> Result<String> {
    use der::{Decode, EncodePem};
    let cert = x509_cert::Certificate::from_der(der_bytes)?;
    Ok(cert.to_pem(der::pem::LineEnding::LF)?)
}

fn serve(a: SimRunArgs) -> Result<()> {
    let addr_text = a.vpcd.as_deref().context("--vpcd HOST:PORT is required")?;
    let addr = vpcd::resolve(addr_text)?;
    let mut profile = match a.vendor {
        Vendor::Sim => DeviceProfile::new(a.serial, a.firmware),
        Vendor::Other => DeviceProfile {
            firmware: a.firmware,
            ..DeviceProfile::other_vendor(a.serial)
        },
    };
    // A non-Yubico key is FIDO2 only unless asked otherwise.
    let both = !a.fido2 && !a.piv && a.vendor == Vendor::Sim;
    profile.fido2 = both || a.fido2 || !a.piv;
    profile.piv = both || a.piv;
    if let Some(aaguid) = a.aaguid {
        profile.aaguid = aaguid;
    }
    profile.attestation = a.attestation;
    profile.quirks = a.quirks.clone().unwrap_or_default();
    let explicit: Vec<&'static str> = ["serial", "firmware", "quirks"]
        .into_iter()
        .filter(|f| flag_given(f))
        .collect();

    let mut state = match &a.state {
        Some(dir) => Some(StateDir::open(dir, profile.clone(), &explicit)?),
        None => None,
    };
    if let Some(sd) = &state {
        profile = sd.profile().clone();
    }
    let ca = Arc::new(SimCa::from_seed(&ca_seed(a.state.as_deref())?)?);
    let person = match (a.no_touch, a.touch_delay_ms) {
        (true, _) => Person::Never,
        (false, Some(ms)) => Person::After(Duration::from_millis(ms)),
        (false, None) => Person::Immediate,
    };
    let mut opts = SimOptions::new(profile.clone(), ca);
    opts.person = person;
    opts.touch_timeout = Duration::from_millis(a.touch_timeout_ms);
    opts.keygen_delay = Duration::from_millis(a.keygen_ms);
    opts.faults = a.faults.iter().copied().collect::<Faults>();

    let mut card = build_card(&opts);
    if let Some(sd) = &mut state {
        sd.restore(&mut card)?;
    }
    let applets: Vec<&str> = [(profile.fido2, "FIDO2"), (profile.piv, "PIV")]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
    let faults: Vec<String> = a.faults.iter().map(Fault::to_string).collect();
    eprintln!(
        "keyward sim: serial {} firmware {} ({}) AAGUID {} vendor {:?} attestation {:?} on vpcd {addr}{}{}",
        profile.serial,
        profile.firmware,
        applets.join(" + "),
        crate::attest::mds::format_aaguid(&profile.aaguid),
        profile.vendor,
        profile.attestation,
        if faults.is_empty() {
            String::new()
        } else {
            format!(", faults: {}", faults.join(", "))
        },
        if profile.quirks.is_empty() {
            String::new()
        } else {
            format!(", quirks: {}", profile.quirks)
        }
    );
    let shutdown = Shutdown::default();
    match &mut state {
        Some(sd) => vpcd::serve(addr, &mut card, person, sd, &shutdown)?,
        None => vpcd::serve(addr, &mut card, person, &mut (), &shutdown)?,
    }
    Ok(())
}

/// Whether the user gave `--NAME` on the command line (clap's defaults make
/// the parsed value alone ambiguous).
fn flag_given(name: &str) -> bool {
    let long = format!("--{name}");
    std::env::args().any(|a| a == long || a.starts_with(&format!("{long}=")))
}
