//! The ticket digest and how enrollment binds it into what the new key signs,
//! so that the attestation proves which ticket it answered (DESIGN.md,
//! "Signed provisioning ticket"; docs/ticket.md, "Binding").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The ticket digest: SHA-256 over what the issuer signed, not over how it
/// was serialized (docs/ticket.md §6). It is stored with the binding and
/// bound into what the new key signs.
///
/// Definition: take every signature's JWS Signing Input,
/// `ASCII(BASE64URL(protected) '.' BASE64URL(payload))` (RFC 7515 §5.1),
/// sort them bytewise, and hash each followed by one LF (0x0A):
/// `SHA-256(input_1 LF input_2 LF ...)`. The compact and the general JSON
/// serialization of one signed ticket, with any whitespace, member order or
/// signature order, give one digest; a changed payload or header byte, or
/// another set of approvals, gives another. Base64url has no `.` or LF, so
/// the encoding is unambiguous; signatures are not hashed (an ES256
/// signature is randomised, and the signed content is what was approved).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketDigest([u8; 32]);

impl std::fmt::Debug for TicketDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TicketDigest({})", self.to_hex())
    }
}

impl TicketDigest {
    /// The digest of a ticket whose signatures cover `signing_inputs`
    /// (see the type's definition). Use [`crate::ticket::RawTicket::digest`].
    pub fn of_signing_inputs<'a>(signing_inputs: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut inputs: Vec<&[u8]> = signing_inputs.into_iter().collect();
        inputs.sort_unstable();
        let mut h = Sha256::new();
        for i in inputs {
            h.update(i);
            h.update(b"\n");
        }
        Self(h.finalize().into())
    }

    /// SHA-256 of arbitrary bytes: a building block for test vectors, not a
    /// ticket's digest (that is [`crate::ticket::RawTicket::digest`]).
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as the ledger stores it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Unpadded base64url.
    pub fn to_b64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

/// The client data a FIDO2 enrollment signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fido2ClientData {
    /// `clientDataJSON` (WebAuthn §5.8.1), kept with the attestation object
    /// so anyone can recompute the hash.
    pub json: String,
    /// `clientDataHash` = SHA-256(`json`), the value sent in
    /// authenticatorMakeCredential (CTAP 2.1 §6.1, parameter 0x01).
    pub hash: [u8; 32],
}

/// The FIDO2 binding: keyward is the platform, so it builds the
/// `clientDataJSON` itself with the ticket digest as the challenge, in
/// WebAuthn's limited verification order (§5.8.1.1: type, challenge,
/// origin, crossOrigin). The attestation statement signs
/// `authenticatorData || clientDataHash`, so it covers the ticket.
pub fn fido2_client_data(digest: &TicketDigest, rp_id: &str) -> Fido2ClientData {
    let json = format!(
        "{{\"type\":\"webauthn.create\",\"challenge\":\"{}\",\"origin\":{},\"crossOrigin\":false}}",
        digest.to_b64url(),
        serde_json::Value::String(format!("https://{rp_id}"))
    );
    let hash = Sha256::digest(json.as_bytes()).into();
    Fido2ClientData { json, hash }
}

/// Domain separator of the PIV binding message.
pub const PIV_BINDING_CONTEXT: &[u8] = b"keyward-piv-binding-v1\0";

/// The PIV binding: PIV attestation (YubiKey `F9`) covers no caller data, so
/// after generating the key the workflow has the new slot key sign this
/// 32-byte digest (GENERAL AUTHENTICATE, SP 800-73-4 Part 2 §3.2.4) and
/// stores the signature beside the slot attestation certificate: the
/// attestation record. The digest is
/// SHA-256(`PIV_BINDING_CONTEXT` || ticket digest || slot || serial (u32 BE)
/// || SHA-256(SubjectPublicKeyInfo DER of the generated key)).
pub fn piv_binding_digest(
    digest: &TicketDigest,
    slot: u8,
    serial: u32,
    spki_der: &[u8],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PIV_BINDING_CONTEXT);
    h.update(digest.as_bytes());
    h.update([slot]);
    h.update(serial.to_be_bytes());
    h.update(Sha256::digest(spki_der));
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_of_the_bytes() {
        // SHA-256("abc"), FIPS 180-2 Appendix B.1.
        assert_eq!(
            TicketDigest::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn client_data_carries_the_digest_as_challenge() {
        let d = TicketDigest::of(b"abc");
        let cd = fido2_client_data(&d, "login.example.com");
        assert_eq!(
            cd.json,
            "{\"type\":\"webauthn.create\",\"challenge\":\"ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0\",\"origin\":\"https://login.example.com\",\"crossOrigin\":false}"
        );
        assert_eq!(
            cd.hash,
            <[u8; 32]>::from(Sha256::digest(cd.json.as_bytes()))
        );
    }

    #[test]
    fn piv_binding_depends_on_every_input() {
        let d = TicketDigest::of(b"t");
        let base = piv_binding_digest(&d, 0x9a, 1, b"spki");
        assert_ne!(
            base,
            piv_binding_digest(&TicketDigest::of(b"u"), 0x9a, 1, b"spki")
        );
        assert_ne!(base, piv_binding_digest(&d, 0x9c, 1, b"spki"));
        assert_ne!(base, piv_binding_digest(&d, 0x9a, 2, b"spki"));
        assert_ne!(base, piv_binding_digest(&d, 0x9a, 1, b"spkj"));
    }
}
