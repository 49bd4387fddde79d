//! age v1 file encryption to X25519 recipients (<https://age-encryption.org/v1>),
//! for the generated PINs of a bulk run: they leave keyward only inside a
//! file that the holder of an `age1…` recipient's identity can open, with the
//! standard `age -d -i IDENTITY` or any other age v1 implementation.
//!
//! Why not the `age` crate: it pulls about a hundred crates (an older
//! RustCrypto generation, i18n and ML-KEM stacks) into a build done on two
//! cores. The format for X25519 recipients is small; the primitives come from
//! crates keyward already builds: X25519 and ChaCha20-Poly1305 from aws-lc-rs,
//! HKDF/HMAC-SHA-256 from RustCrypto, bech32 for the key encodings.
//!
//! ```text
//! age-encryption.org/v1
//! -> X25519 base64(ephemeral share)
//! base64(ChaCha20-Poly1305(wrap key, nonce 0, file key))
//! --- base64(HMAC-SHA-256(HKDF(file key, "", "header"), header))
//! nonce(16) || STREAM(HKDF(file key, nonce, "payload"), 64 KiB chunks)
//! ```
//!
//! Decryption is here too: the known-answer tests run the age project's own
//! vectors through it, and tests read back what keyward wrote. Randomness is
//! passed in ([`encrypt`]'s `rand`), so encryption is reproducible in tests.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::{aead, agreement};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32, Hrp};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The version line every age v1 file starts with.
const INTRO: &str = "age-encryption.org/v1";
/// HKDF info for the X25519 wrap key.
const X25519_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
/// Plaintext bytes per STREAM chunk.
const CHUNK: usize = 64 * 1024;
/// Poly1305 tag length.
const TAG: usize = 16;
/// Body and argument lines are wrapped at this many base64 characters.
const COLUMNS: usize = 64;
/// Untrusted input bounds: header bytes and stanzas read before giving up.
const MAX_HEADER: usize = 64 * 1024;
const MAX_STANZAS: usize = 256;

/// What went wrong, without any key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgeError {
    #[error(
        "age recipient {0:?} is not valid: {1}; it must be an X25519 recipient like age1… (age-keygen -y prints it)"
    )]
    BadRecipient(String, &'static str),
    #[error("age identity is not valid: {0}; it must be an AGE-SECRET-KEY-1… line from age-keygen")]
    BadIdentity(&'static str),
    #[error("no age recipient given")]
    NoRecipients,
    #[error("the age header is malformed: {0}")]
    Header(&'static str),
    #[error("the age header names an unsupported version")]
    UnsupportedVersion,
    #[error("no identity matches any recipient of this file")]
    NoMatch,
    #[error("the age header MAC does not verify (the file was altered or is for another key)")]
    HeaderMac,
    #[error("the age payload is damaged: {0}")]
    Payload(&'static str),
}

/// An X25519 recipient: the public half, `age1…`.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient([u8; 32]);

impl Recipient {
    pub fn from_bytes(public: [u8; 32]) -> Recipient {
        Recipient(public)
    }
}

impl FromStr for Recipient {
    type Err = AgeError;
    fn from_str(s: &str) -> Result<Self, AgeError> {
        let bad = |why| AgeError::BadRecipient(truncate(s), why);
        // age encodes recipients in lower case only.
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("upper-case letters"));
        }
        let parsed = CheckedHrpstring::new::<Bech32>(s)
            .map_err(|_| bad("bad bech32 checksum or characters"))?;
        if parsed.hrp().as_str() != "age" {
            return Err(bad("the prefix is not age1"));
        }
        let bytes: Vec<u8> = parsed.byte_iter().collect();
        let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad("not a 32-byte key"))?;
        Ok(Recipient(key))
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked("age");
        let s = bech32::encode_lower::<Bech32>(hrp, &self.0).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({self})")
    }
}

/// Shown in errors: enough of what the user typed to recognise it.
fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// An X25519 identity (the secret half). Its `Debug` never shows the key.
pub struct Identity(Zeroizing<[u8; 32]>);

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Identity(<redacted>)")
    }
}

impl Identity {
    /// An identity from 32 secret bytes (any 32 bytes are a valid X25519
    /// scalar; the curve clamps them).
    pub fn from_secret(secret: [u8; 32]) -> Identity {
        Identity(Zeroizing::new(secret))
    }

    /// A fresh identity from `rand`.
    pub fn generate(rand: &mut dyn FnMut(&mut [u8])) -> Identity {
        let mut s = Zeroizing::new([0u8; 32]);
        rand(s.as_mut());
        Identity(s)
    }

    /// Parse one `AGE-SECRET-KEY-1…` line.
    pub fn parse(s: &str) -> Result<Identity, AgeError> {
        let s = s.trim();
        if s.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(AgeError::BadIdentity("lower-case letters"));
        }
        let parsed = CheckedHrpstring::new::<Bech32>(s)
            .map_err(|_| AgeError::BadIdentity("bad bech32 checksum or characters"))?;
        if !parsed
            .hrp()
            .as_str()
            .eq_ignore_ascii_case("age-secret-key-")
        {
            return Err(AgeError::BadIdentity("the prefix is not AGE-SECRET-KEY-1"));
        }
        let bytes = Zeroizing::new(parsed.byte_iter().collect::<Vec<u8>>());
        let key = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| AgeError::BadIdentity("not a 32-byte key"))?;
        Ok(Identity(Zeroizing::new(key)))
    }

    /// The `AGE-SECRET-KEY-1…` encoding (upper case, as age-keygen writes).
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let hrp = Hrp::parse_unchecked("age-secret-key-");
        Zeroizing::new(
            bech32::encode_upper::<Bech32>(hrp, self.0.as_ref())
                .expect("32 bytes always fit a bech32 string"),
        )
    }

    /// The matching recipient.
    pub fn recipient(&self) -> Recipient {
        Recipient(x25519(&self.0, &BASEPOINT).expect("the base point is never a low-order point"))
    }
}

/// The X25519 base point u = 9 (RFC 7748 §4.1).
const BASEPOINT: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 9;
    b
};

/// X25519(scalar, point); `None` when the result is all zeros (a low-order
/// peer point), which age rejects.
fn x25519(scalar: &[u8; 32], point: &[u8; 32]) -> Option<[u8; 32]> {
    let sk = agreement::PrivateKey::from_private_key(&agreement::X25519, scalar).ok()?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, point);
    let out: [u8; 32] =
        agreement::agree(&sk, peer, (), |z| <[u8; 32]>::try_from(z).map_err(|_| ())).ok()?;
    (out != [0u8; 32]).then_some(out)
}

fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    out
}

fn chacha(key: &[u8; 32]) -> aead::LessSafeKey {
    let k = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, key)
        .expect("a 32-byte key is valid for ChaCha20-Poly1305");
    aead::LessSafeKey::new(k)
}

fn header_mac(file_key: &[u8; 16], header: &[u8]) -> Hmac<Sha256> {
    let key = hkdf(file_key, &[], b"header");
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_ref())
        .expect("HMAC takes keys of any length");
    m.update(header);
    m
}

/// Encrypt `plaintext` to `recipients`. `rand` fills the file key, each
/// ephemeral X25519 secret and the payload nonce.
pub fn encrypt(
    recipients: &[Recipient],
    plaintext: &[u8],
    rand: &mut dyn FnMut(&mut [u8]),
) -> Result<Vec<u8>, AgeError> {
    if recipients.is_empty() {
        return Err(AgeError::NoRecipients);
    }
    let mut file_key = Zeroizing::new([0u8; 16]);
    rand(file_key.as_mut());
    let mut header = format!("{INTRO}\n");
    for r in recipients {
        header.push_str(&wrap_x25519(r, &file_key, rand)?);
    }
    header.push_str("---");
    let mac = header_mac(&file_key, header.as_bytes())
        .finalize()
        .into_bytes();
    let mut out = format!("{header} {}\n", B64.encode(mac)).into_bytes();
    let mut nonce = [0u8; 16];
    rand(&mut nonce);
    out.extend_from_slice(&nonce);
    let key = chacha(&hkdf(file_key.as_ref(), &nonce, b"payload"));
    let n_chunks = plaintext.len().div_ceil(CHUNK).max(1);
    for i in 0..n_chunks {
        let end = ((i + 1) * CHUNK).min(plaintext.len());
        // Room for the tag up front: a reallocation would leave a copy of
        // the plaintext (PINs) in freed memory.
        let mut chunk = Vec::with_capacity(end - i * CHUNK + TAG);
        chunk.extend_from_slice(&plaintext[i * CHUNK..end]);
        key.seal_in_place_append_tag(
            stream_nonce(i as u64, i + 1 == n_chunks),
            aead::Aad::empty(),
            &mut chunk,
        )
        .map_err(|_| AgeError::Payload("encryption failed"))?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// One `-> X25519` stanza wrapping `file_key` to `r`.
fn wrap_x25519(
    r: &Recipient,
    file_key: &[u8; 16],
    rand: &mut dyn FnMut(&mut [u8]),
) -> Result<String, AgeError> {
    let mut eph = Zeroizing::new([0u8; 32]);
    rand(eph.as_mut());
    let share = x25519(&eph, &BASEPOINT).ok_or(AgeError::Payload("ephemeral key"))?;
    let shared = Zeroizing::new(
        x25519(&eph, &r.0).ok_or(AgeError::BadRecipient(r.to_string(), "a low-order point"))?,
    );
    let mut salt = share.to_vec();
    salt.extend_from_slice(&r.0);
    let wrap = chacha(&hkdf(shared.as_ref(), &salt, X25519_LABEL));
    // Room for the tag up front, so the file key is never left behind in
    // a freed buffer; once sealed the buffer holds only ciphertext.
    let mut body = Vec::with_capacity(file_key.len() + TAG);
    body.extend_from_slice(file_key);
    wrap.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key([0; 12]),
        aead::Aad::empty(),
        &mut body,
    )
    .map_err(|_| AgeError::Payload("wrapping failed"))?;
    Ok(format!(
        "-> X25519 {}\n{}",
        B64.encode(share),
        wrap_body(&body)
    ))
}

/// Base64 body lines: full lines of 64 columns, then a shorter last line
/// (empty when the encoding is a multiple of 64).
fn wrap_body(body: &[u8]) -> String {
    let b64 = B64.encode(body);
    let mut out = String::new();
    let mut rest = b64.as_str();
    while rest.len() >= COLUMNS {
        out.push_str(&rest[..COLUMNS]);
        out.push('\n');
        rest = &rest[COLUMNS..];
    }
    out.push_str(rest);
    out.push('\n');
    out
}

/// STREAM nonce: 11-byte big-endian chunk counter, then the last-chunk flag.
fn stream_nonce(counter: u64, last: bool) -> aead::Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    aead::Nonce::assume_unique_for_key(n)
}

/// One recipient stanza of a parsed header.
struct Stanza {
    args: Vec<String>,
    body: Vec<u8>,
}

/// The parsed header: its stanzas, the bytes the MAC covers, the MAC, and
/// where the payload starts.
struct Header {
    stanzas: Vec<Stanza>,
    mac_input_len: usize,
    mac: Vec<u8>,
    payload_at: usize,
}

/// Read the next `\n`-terminated line starting at `*pos`.
fn line<'a>(file: &'a [u8], pos: &mut usize) -> Result<&'a str, AgeError> {
    let rest = &file[*pos..];
    let end = rest
        .iter()
        .take(MAX_HEADER)
        .position(|&b| b == b'\n')
        .ok_or(AgeError::Header("a header line has no end"))?;
    let text = std::str::from_utf8(&rest[..end]).map_err(|_| AgeError::Header("not ASCII"))?;
    if !text.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
        return Err(AgeError::Header(
            "a header line has characters outside printable ASCII",
        ));
    }
    *pos += end + 1;
    if *pos > MAX_HEADER {
        return Err(AgeError::Header("the header is too long"));
    }
    Ok(text)
}

fn b64(text: &str) -> Result<Vec<u8>, AgeError> {
    B64.decode(text)
        .map_err(|_| AgeError::Header("bad base64 (padding, characters or trailing bits)"))
}

fn parse_header(file: &[u8]) -> Result<Header, AgeError> {
    let mut pos = 0;
    let intro = line(file, &mut pos)?;
    if intro != INTRO {
        return Err(if intro.starts_with("age-encryption.org/") {
            AgeError::UnsupportedVersion
        } else {
            AgeError::Header("this is not an age file")
        });
    }
    let mut stanzas = Vec::new();
    loop {
        let start = pos;
        let l = line(file, &mut pos)?;
        if let Some(mac) = l.strip_prefix("--- ") {
            if stanzas.is_empty() {
                return Err(AgeError::Header("no recipient stanza"));
            }
            let mac = b64(mac)?;
            if mac.len() != 32 {
                return Err(AgeError::Header("the MAC is not 32 bytes"));
            }
            return Ok(Header {
                stanzas,
                mac_input_len: start + 3,
                mac,
                payload_at: pos,
            });
        }
        let args = l
            .strip_prefix("-> ")
            .ok_or(AgeError::Header("expected a stanza or the MAC line"))?;
        let args: Vec<String> = args.split(' ').map(str::to_string).collect();
        if args.iter().any(String::is_empty) {
            return Err(AgeError::Header("empty stanza argument"));
        }
        let mut body = String::new();
        loop {
            let b = line(file, &mut pos)?;
            if b.len() > COLUMNS {
                return Err(AgeError::Header("a body line is longer than 64 columns"));
            }
            body.push_str(b);
            if b.len() < COLUMNS {
                break;
            }
        }
        stanzas.push(Stanza {
            args,
            body: b64(&body)?,
        });
        if stanzas.len() > MAX_STANZAS {
            return Err(AgeError::Header("too many stanzas"));
        }
    }
}

/// Unwrap the file key from an X25519 stanza, if `id` is its recipient.
fn unwrap_x25519(s: &Stanza, id: &Identity) -> Result<Option<Zeroizing<[u8; 16]>>, AgeError> {
    if s.args.len() != 2 {
        return Err(AgeError::Header(
            "an X25519 stanza needs exactly one argument",
        ));
    }
    let share = <[u8; 32]>::try_from(b64(&s.args[1])?.as_slice())
        .map_err(|_| AgeError::Header("the X25519 share is not 32 bytes"))?;
    if s.body.len() != 16 + TAG {
        return Err(AgeError::Header("the X25519 body is not 32 bytes"));
    }
    let shared =
        Zeroizing::new(x25519(&id.0, &share).ok_or(AgeError::Header("low-order X25519 share"))?);
    let mut salt = share.to_vec();
    salt.extend_from_slice(&id.recipient().0);
    let wrap = chacha(&hkdf(shared.as_ref(), &salt, X25519_LABEL));
    let mut body = Zeroizing::new(s.body.clone());
    let Ok(key) = wrap.open_in_place(
        aead::Nonce::assume_unique_for_key([0; 12]),
        aead::Aad::empty(),
        &mut body,
    ) else {
        return Ok(None);
    };
    Ok(Some(Zeroizing::new(
        <[u8; 16]>::try_from(&key[..]).expect("16-byte body after the tag"),
    )))
}

/// Decrypt an age v1 file with one of `identities`.
pub fn decrypt(identities: &[Identity], file: &[u8]) -> Result<Zeroizing<Vec<u8>>, AgeError> {
    let h = parse_header(file)?;
    let mut file_key = None;
    'found: for s in h.stanzas.iter().filter(|s| s.args[0] == "X25519") {
        for id in identities {
            if let Some(k) = unwrap_x25519(s, id)? {
                file_key = Some(k);
                break 'found;
            }
        }
    }
    let file_key = file_key.ok_or(AgeError::NoMatch)?;
    header_mac(&file_key, &file[..h.mac_input_len])
        .verify_slice(&h.mac)
        .map_err(|_| AgeError::HeaderMac)?;
    let payload = &file[h.payload_at..];
    if payload.len() < 16 {
        return Err(AgeError::Payload("the nonce is missing"));
    }
    let (nonce, mut rest) = payload.split_at(16);
    let key = chacha(&hkdf(file_key.as_ref(), nonce, b"payload"));
    let mut out = Zeroizing::new(Vec::with_capacity(rest.len()));
    let mut counter = 0u64;
    loop {
        let take = rest.len().min(CHUNK + TAG);
        let (chunk, after) = rest.split_at(take);
        let last = after.is_empty();
        if chunk.len() < TAG {
            return Err(AgeError::Payload("a chunk is shorter than its tag"));
        }
        let mut buf = Zeroizing::new(chunk.to_vec());
        let plain = key
            .open_in_place(stream_nonce(counter, last), aead::Aad::empty(), &mut buf)
            .map_err(|_| {
                AgeError::Payload("a chunk does not authenticate (altered or truncated)")
            })?;
        if last && plain.is_empty() && counter > 0 {
            return Err(AgeError::Payload("an empty last chunk after full chunks"));
        }
        out.extend_from_slice(plain);
        if last {
            return Ok(out);
        }
        counter += 1;
        rest = after;
    }
}

#[cfg(test)]
mod tests;
