//! Policy profiles (docs/policy.md): named sets of local rules a ticket's
//! `policy` claim selects. A profile says which keys are acceptable
//! (AAGUIDs, models, attestation — [`AttestationPolicy`]), how PINs must
//! look, whether enterprise attestation is required, which PIV algorithms
//! and PIN/touch policies may be used, which FIDO2 extensions the enrolled
//! credential must have ([`FidoRules`]), whether the key is reset first, and
//! the replacement rules. Parsing is strict: unknown keys are errors with
//! file and line.
//!
//! ```toml
//! [profiles.standard]
//! reset_before_enroll = false
//! enterprise_attestation = "preferred"
//! pin = { min_length = 6, max_length = 32, digits_only = false, reject_trivial = true }
//! piv = { algorithms = ["p256", "p384"], pin_policies = ["once", "always"] }
//! fido = { extensions = ["credProtect=3", "hmac-secret", "largeBlobKey"] }
//! attestation = { allowed_aaguids = ["…"] }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AttestationPolicy;
use crate::attest::piv::{PinPolicy, TouchPolicy};

/// Whether enterprise attestation is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnterpriseAttestation {
    /// Enable it and require a serial in the attestation.
    Required,
    /// Enable it where the key supports it; accept its absence.
    #[default]
    Preferred,
    /// Never enable it.
    Off,
}

/// PIN length and complexity (CTAP 2.1 §6.5.1: 4–63 bytes; PIV: 6–8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PinRules {
    /// Shortest PIN, in characters.
    pub min_length: usize,
    /// Longest PIN, in characters.
    pub max_length: usize,
    /// Only the digits 0–9.
    pub digits_only: bool,
    /// Reject one repeated character (`111111`) and ascending or descending
    /// runs (`123456`, `987654`, `abcdef`).
    pub reject_trivial: bool,
    /// Length of generated PINs (bulk), digits.
    pub generated_length: usize,
}

impl Default for PinRules {
    fn default() -> Self {
        Self {
            min_length: 6,
            max_length: 63,
            digits_only: false,
            reject_trivial: true,
            generated_length: 8,
        }
    }
}

/// A PIN that breaks the rules; the message names the rule, never the PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinRuleError {
    #[error("the PIN is {len} characters; this profile needs at least {min}")]
    TooShort { len: usize, min: usize },
    #[error("the PIN is {len} characters; this profile allows at most {max}")]
    TooLong { len: usize, max: usize },
    #[error("the PIN must contain only digits 0-9 under this profile")]
    NotDigits,
    #[error(
        "the PIN is a trivial sequence (one repeated character or a straight run such as 123456); choose another"
    )]
    Trivial,
    #[error("the PIN contains a control character")]
    Control,
}

impl PinRules {
    /// Check a PIN (as text) against the rules.
    pub fn check(&self, pin: &str) -> Result<(), PinRuleError> {
        // The PIN's characters, in a wiped buffer sized up front (a PIN
        // has at most as many characters as bytes, so it never grows).
        let mut chars = zeroize::Zeroizing::new(Vec::with_capacity(pin.len()));
        chars.extend(pin.chars());
        let len = chars.len();
        if len < self.min_length {
            return Err(PinRuleError::TooShort {
                len,
                min: self.min_length,
            });
        }
        if len > self.max_length || pin.len() > 63 {
            return Err(PinRuleError::TooLong {
                len,
                max: self.max_length.min(63),
            });
        }
        if chars.iter().any(|c| c.is_control()) {
            return Err(PinRuleError::Control);
        }
        if self.digits_only && !chars.iter().all(char::is_ascii_digit) {
            return Err(PinRuleError::NotDigits);
        }
        if self.reject_trivial && is_trivial(&chars) {
            return Err(PinRuleError::Trivial);
        }
        Ok(())
    }
}

/// One repeated character, or a run with a constant step of +1 or -1.
fn is_trivial(chars: &[char]) -> bool {
    if chars.len() < 2 {
        return true;
    }
    // The steps between characters say much of the PIN: wiped too.
    let mut steps = zeroize::Zeroizing::new(Vec::with_capacity(chars.len()));
    steps.extend(
        chars
            .windows(2)
            .map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0]))),
    );
    let first = steps[0];
    matches!(first, -1..=1) && steps.iter().all(|&s| s == first)
}

/// PIV algorithms and policies a profile allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PivRules {
    /// `p256`, `p384`, `ed25519`, `rsa2048`; empty: any.
    pub algorithms: Vec<String>,
    /// Empty: any.
    pub pin_policies: Vec<PinPolicy>,
    /// Empty: any.
    pub touch_policies: Vec<TouchPolicy>,
}

/// A FIDO2 extension the enrolled credential must have (CTAP 2.1 §12),
/// written as in the specification: `credProtect=N` (N = 1, 2 or 3),
/// `hmac-secret`, `largeBlobKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FidoExtension {
    /// credProtect at exactly this level (§12.1): 2 hides the credential
    /// from discovery without UV, 3 needs UV for every use.
    CredProtect(u8),
    /// hmac-secret (§12.5): a per-credential PRF (disk unlock, offline
    /// login).
    HmacSecret,
    /// largeBlobKey (§12.3): the credential can open its entry of the
    /// key's large-blob array.
    LargeBlobKey,
}

impl std::str::FromStr for FidoExtension {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hmac-secret" => Ok(FidoExtension::HmacSecret),
            "largeBlobKey" => Ok(FidoExtension::LargeBlobKey),
            "credProtect=1" => Ok(FidoExtension::CredProtect(1)),
            "credProtect=2" => Ok(FidoExtension::CredProtect(2)),
            "credProtect=3" => Ok(FidoExtension::CredProtect(3)),
            _ => Err(format!(
                "unknown FIDO2 extension requirement {s:?}: use \"credProtect=1\", \"credProtect=2\", \"credProtect=3\", \"hmac-secret\" or \"largeBlobKey\""
            )),
        }
    }
}

impl TryFrom<String> for FidoExtension {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<FidoExtension> for String {
    fn from(e: FidoExtension) -> String {
        e.to_string()
    }
}

impl std::fmt::Display for FidoExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FidoExtension::CredProtect(l) => write!(f, "credProtect={l}"),
            FidoExtension::HmacSecret => f.write_str("hmac-secret"),
            FidoExtension::LargeBlobKey => f.write_str("largeBlobKey"),
        }
    }
}

impl FidoExtension {
    /// The extension's name in getInfo (§6.4 0x02).
    pub fn name(self) -> &'static str {
        match self {
            FidoExtension::CredProtect(_) => "credProtect",
            FidoExtension::HmacSecret => "hmac-secret",
            FidoExtension::LargeBlobKey => "largeBlobKey",
        }
    }
}

/// FIDO2 rules: what the enrolled credential must carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FidoRules {
    /// Extensions enrollment requests and requires the key to apply; a key
    /// that does not answer them fails with `policy-fido-extension`.
    pub extensions: Vec<FidoExtension>,
}

impl FidoRules {
    /// The credProtect level required, if any.
    pub fn cred_protect(&self) -> Option<u8> {
        self.extensions.iter().find_map(|e| match e {
            FidoExtension::CredProtect(l) => Some(*l),
            _ => None,
        })
    }

    pub fn requires(&self, e: FidoExtension) -> bool {
        self.extensions.contains(&e)
    }
}

/// Replacement rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplacementRules {
    /// Whether replacement tickets may use this profile at all.
    pub allowed: bool,
    /// Binding states that may be replaced.
    pub from_states: Vec<String>,
}

impl Default for ReplacementRules {
    fn default() -> Self {
        Self {
            allowed: true,
            from_states: vec!["active".into(), "suspended".into(), "lost".into()],
        }
    }
}

/// Help-desk unblock rules (docs/lifecycle.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnblockRules {
    /// Whether an unblock ticket may also rotate the PUK (`rotate_puk`).
    pub allow_puk_rotation: bool,
}

/// Whether the enrollment registers a credential with the person's
/// identity provider (docs/idp.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdpStepMode {
    /// The IdP's creation options must be had before the key is touched,
    /// or the enrollment is refused (`idp-unavailable`).
    Required,
    /// Enroll without the IdP when its options cannot be had; the binding
    /// shows the IdP step as skipped.
    Optional,
    /// No IdP step.
    #[default]
    Off,
}

impl IdpStepMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IdpStepMode::Required => "required",
            IdpStepMode::Optional => "optional",
            IdpStepMode::Off => "off",
        }
    }
}

/// The profile's IdP step:
/// `idp = { provider = "entra", step = "required", display_name = "…" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdpStep {
    /// `entra` or `okta`: must be the provider the registry is configured
    /// with.
    pub provider: Option<crate::idp::ProviderKind>,
    pub step: IdpStepMode,
    /// The method's name at the IdP; default "<model or key> <serial>".
    pub display_name: Option<String>,
}

impl IdpStep {
    /// Whether the step runs at all.
    pub fn on(&self) -> bool {
        self.step != IdpStepMode::Off
    }

    fn validate(&self) -> Result<(), String> {
        if self.on() && self.provider.is_none() {
            return Err(format!(
                "idp: step = {:?} needs a provider (\"entra\" or \"okta\")",
                self.step.as_str()
            ));
        }
        if let Some(d) = &self.display_name
            && (d.trim().is_empty() || d.len() > 200 || d.chars().any(char::is_control))
        {
            return Err("idp.display_name must be 1 to 200 bytes of printable text".to_string());
        }
        Ok(())
    }
}

/// One named profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    pub description: Option<String>,
    /// Reset the FIDO2 application before enrollment (a fresh key).
    pub reset_before_enroll: bool,
    pub enterprise_attestation: EnterpriseAttestation,
    /// Privileged accounts: a replacement needs dual control (two
    /// independent approvals on the ticket).
    pub privileged: bool,
    pub pin: PinRules,
    pub piv: PivRules,
    /// FIDO2 extension requirements.
    pub fido: FidoRules,
    pub replacement: ReplacementRules,
    /// Attestation requirements and their time-boxed exceptions.
    pub attestation: AttestationPolicy,
    /// Help-desk unblock rules.
    pub unblock: UnblockRules,
    /// Registration with the person's identity provider (off by default).
    pub idp: IdpStep,
}

/// The profiles file: `[profiles.NAME]` tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// A profiles file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    #[error("cannot read policy profiles {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: profile {profile:?}: {message}")]
    Invalid {
        origin: String,
        profile: String,
        message: String,
    },
}

impl Profiles {
    /// Parse profiles from TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ProfileError> {
        let p: Profiles = toml::from_str(text).map_err(|e| syntax(text, origin, &e))?;
        p.validate(origin)?;
        Ok(p)
    }

    /// Read and parse a profiles file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Build from a map (inline config, tests).
    pub fn from_map(
        profiles: BTreeMap<String, Profile>,
        origin: &str,
    ) -> Result<Self, ProfileError> {
        let p = Profiles { profiles };
        p.validate(origin)?;
        Ok(p)
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.profiles.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    fn validate(&self, origin: &str) -> Result<(), ProfileError> {
        for (name, p) in &self.profiles {
            let bad = |m: String| ProfileError::Invalid {
                origin: origin.into(),
                profile: name.clone(),
                message: m,
            };
            p.validate().map_err(bad)?;
        }
        Ok(())
    }
}

impl Profile {
    fn validate(&self) -> Result<(), String> {
        let pin = &self.pin;
        if pin.min_length < 4 || pin.max_length > 63 || pin.min_length > pin.max_length {
            return Err(format!(
                "pin: min_length {} / max_length {} must satisfy 4 <= min <= max <= 63 (CTAP 2.1 §6.5.1)",
                pin.min_length, pin.max_length
            ));
        }
        if !(pin.min_length..=pin.max_length).contains(&pin.generated_length) {
            return Err(format!(
                "pin.generated_length {} is outside min_length..=max_length",
                pin.generated_length
            ));
        }
        for a in &self.piv.algorithms {
            if !matches!(
                a.as_str(),
                "p256" | "p384" | "ed25519" | "rsa2048" | "rsa3072" | "rsa4096"
            ) {
                return Err(format!(
                    "piv.algorithms: {a:?} is not p256, p384, ed25519, rsa2048, rsa3072 or rsa4096"
                ));
            }
        }
        let levels = self
            .fido
            .extensions
            .iter()
            .filter(|e| matches!(e, FidoExtension::CredProtect(_)))
            .count();
        if levels > 1 {
            return Err("fido.extensions: name one credProtect level, not several".into());
        }
        for s in &self.replacement.from_states {
            if s.parse::<crate::store::BindingState>().is_err() {
                return Err(format!("replacement.from_states: unknown state {s:?}"));
            }
        }
        self.attestation.validate()?;
        self.idp.validate()?;
        for (i, e) in self.attestation.exceptions.iter().enumerate() {
            let Some(exp) = &e.expires else {
                return Err(format!(
                    "attestation.exceptions[{i}]: an exception must be time-boxed: give expires (RFC 3339)"
                ));
            };
            if crate::time::parse_rfc3339(exp).is_err() {
                return Err(format!(
                    "attestation.exceptions[{i}]: expires {exp:?} is not RFC 3339 (e.g. 2027-01-01T00:00:00Z)"
                ));
            }
            if e.aaguid.is_none() && e.serial.is_none() {
                return Err(format!(
                    "attestation.exceptions[{i}]: name the aaguid or serial it covers"
                ));
            }
        }
        Ok(())
    }
}

/// A TOML error as file:line:column.
fn syntax(text: &str, origin: &str, e: &toml::de::Error) -> ProfileError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
    ProfileError::Syntax {
        origin: origin.into(),
        line,
        column,
        message: e.message().to_string(),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_rules_name_the_rule_never_the_pin() {
        let r = PinRules {
            digits_only: true,
            ..PinRules::default()
        };
        assert!(matches!(r.check("12"), Err(PinRuleError::TooShort { .. })));
        assert!(matches!(r.check("12a456"), Err(PinRuleError::NotDigits)));
        assert_eq!(r.check("123456"), Err(PinRuleError::Trivial));
        assert_eq!(r.check("654321"), Err(PinRuleError::Trivial));
        assert_eq!(r.check("777777"), Err(PinRuleError::Trivial));
        assert_eq!(r.check("582913"), Ok(()));
        let e = r.check("12a456").unwrap_err().to_string();
        assert!(!e.contains("12a456"));
    }

    #[test]
    fn unknown_keys_are_reported_with_file_and_line() {
        let text = "[profiles.a]\nreset_before_enroll = true\n\n[profiles.a.pin]\nmin_lenght = 8\n";
        let e = Profiles::parse(text, "p.toml").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:5:"), "{e}");
        assert!(e.contains("min_lenght"), "{e}");
    }

    #[test]
    fn exceptions_must_be_time_boxed() {
        let text = r#"
[profiles.a.attestation]
[[profiles.a.attestation.exceptions]]
aaguid = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
waive = ["aaguid"]
reason = "pilot"
approver = "ciso@example.org"
"#;
        let e = Profiles::parse(text, "p.toml").unwrap_err().to_string();
        assert!(e.contains("time-boxed"), "{e}");
        let ok = format!("{text}expires = \"2030-01-01T00:00:00Z\"\n");
        let p = Profiles::parse(&ok, "p.toml").unwrap();
        assert_eq!(p.names(), vec!["a".to_string()]);
        assert_eq!(p.get("a").unwrap().pin, PinRules::default());
    }

    #[test]
    fn bad_values_are_rejected() {
        let e = Profiles::parse("[profiles.a.pin]\nmin_length = 2\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("profile \"a\"") && e.contains("min_length"),
            "{e}"
        );
        let e = Profiles::parse("[profiles.a.piv]\nalgorithms = [\"rsa1024\"]\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rsa1024"), "{e}");
        let e = Profiles::parse(
            "[profiles.a]\nenterprise_attestation = \"maybe\"\n",
            "p.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("p.toml:2:"), "{e}");
    }

    /// The MDS profile and its none-attestation exception, as documented.
    #[test]
    fn the_documented_mds_profile_parses() {
        let doc = include_str!("../../docs/policy.md");
        let section = &doc[doc.find("## Keys of other vendors").unwrap()..];
        let section = &section[..section.find("\n## Exceptions").unwrap()];
        let text: String = section
            .split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        let p = Profiles::parse(&text, "docs/policy.md").expect("docs/policy.md");
        let a = &p.get("certified-keys").unwrap().attestation;
        assert!(a.require_mds_entry && a.accepted_statuses.len() == 2);
        assert_eq!(a.exceptions[0].waive.len(), 3);
    }

    #[test]
    fn fido_extension_requirements_parse_strictly() {
        let p = Profiles::parse(
            "[profiles.a]\nfido = { extensions = [\"credProtect=3\", \"hmac-secret\", \"largeBlobKey\"] }\n",
            "p.toml",
        )
        .unwrap();
        let f = &p.get("a").unwrap().fido;
        assert_eq!(f.cred_protect(), Some(3));
        assert!(f.requires(FidoExtension::HmacSecret) && f.requires(FidoExtension::LargeBlobKey));
        assert_eq!(
            Profiles::parse("[profiles.b]\n", "p.toml")
                .unwrap()
                .get("b")
                .unwrap()
                .fido,
            FidoRules::default()
        );
        // Unknown names, levels out of range and two levels are refused
        // with the file position and the accepted spellings.
        for (text, needle) in [
            ("fido = { extensions = [\"credBlob\"] }", "credProtect=1"),
            (
                "fido = { extensions = [\"credProtect=4\"] }",
                "credProtect=4",
            ),
            (
                "fido = { extensions = [\"credProtect=2\", \"credProtect=3\"] }",
                "one credProtect level",
            ),
            ("fido = { extentions = [] }", "extentions"),
        ] {
            let e = Profiles::parse(&format!("[profiles.a]\n{text}\n"), "p.toml")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("p.toml") && e.contains(needle), "{e}");
        }
        for e in ["credProtect=1", "hmac-secret", "largeBlobKey"] {
            assert_eq!(e.parse::<FidoExtension>().unwrap().to_string(), e);
        }
    }

    #[test]
    fn the_idp_step_is_validated_when_the_profile_loads() {
        let p = Profiles::parse(
            "[profiles.a]\nidp = { provider = \"entra\", step = \"required\", display_name = \"Kiosk key\" }\n",
            "p.toml",
        )
        .unwrap();
        let a = p.get("a").unwrap();
        assert_eq!(a.idp.step, IdpStepMode::Required);
        assert_eq!(a.idp.provider, Some(crate::idp::ProviderKind::Entra));
        let off = Profiles::parse("[profiles.a]\n", "p.toml").unwrap();
        assert!(!off.get("a").unwrap().idp.on(), "default off");
        for (text, needle) in [
            ("idp = { step = \"required\" }", "needs a provider"),
            ("idp = { provider = \"ping\", step = \"optional\" }", "ping"),
            ("idp = { provider = \"okta\", step = \"always\" }", "always"),
            ("idp = { provider = \"okta\", stepp = \"off\" }", "stepp"),
            (
                "idp = { provider = \"okta\", step = \"optional\", display_name = \"\" }",
                "display_name",
            ),
        ] {
            let e = Profiles::parse(&format!("[profiles.a]\n{text}\n"), "p.toml")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("p.toml") && e.contains(needle), "{e}");
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../docs/policy.md");
        let start = doc.find("```toml\n").unwrap() + 8;
        let end = start + doc[start..].find("```").unwrap();
        let p = Profiles::parse(&doc[start..end], "docs/policy.md").expect("docs/policy.md");
        let s = p.get("standard").unwrap();
        assert!(s.pin.digits_only && s.pin.max_length == 8);
        assert_eq!(s.attestation.exceptions.len(), 1);
        assert_eq!(s.piv.algorithms, ["p256", "p384"]);
    }
}
