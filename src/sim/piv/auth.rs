//! GENERAL AUTHENTICATE (SP 800-73-4 Part 2 §3.2.4): management-key
//! authentication (Appendix A.1 external, A.2 mutual with witness) and the
//! private-key operations of the slots; SET MANAGEMENT KEY (`FF`, Yubico PIV
//! docs "PIV extensions").

use cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::secrets::{ManagementKey, MgmtAlg};
use super::tlv::{self, Tlv};
use super::{KEY_MGMT, PendingAuth, PivApplet, is_key_slot};
use crate::sim::apdu::{Command, Response, sw};
use crate::sim::card::CardEnv;

/// Dynamic authentication template tags (SP 800-73-4 Part 2 Table 7).
const TAG_TEMPLATE: u16 = 0x7C;
const TAG_WITNESS: u16 = 0x80;
const TAG_CHALLENGE: u16 = 0x81;
const TAG_RESPONSE: u16 = 0x82;
const TAG_EXPONENTIATION: u16 = 0x85;

/// ECB over whole blocks with the management key; `None` if the data is
/// not a multiple of the block size.
pub fn ecb(key: &ManagementKey, data: &[u8], encrypt: bool) -> Option<Zeroizing<Vec<u8>>> {
    let k = key.expose();
    match key.alg {
        MgmtAlg::Tdes => run::<des::TdesEde3>(k, data, encrypt),
        MgmtAlg::Aes128 => run::<aes::Aes128>(k, data, encrypt),
        MgmtAlg::Aes192 => run::<aes::Aes192>(k, data, encrypt),
        MgmtAlg::Aes256 => run::<aes::Aes256>(k, data, encrypt),
    }
}

fn run<C>(key: &[u8], data: &[u8], encrypt: bool) -> Option<Zeroizing<Vec<u8>>>
where
    C: BlockCipherEncrypt + BlockCipherDecrypt + KeyInit,
{
    let c = C::new_from_slice(key).ok()?;
    let bs = C::block_size();
    if data.is_empty() || !data.len().is_multiple_of(bs) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
    for chunk in data.chunks(bs) {
        let mut block = cipher::Block::<C>::try_from(chunk).ok()?;
        if encrypt {
            c.encrypt_block(&mut block);
        } else {
            c.decrypt_block(&mut block);
        }
        out.extend_from_slice(&block);
    }
    Some(out)
}

fn random_block(len: usize) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(vec![0u8; len]);
    crate::sim::random_bytes(&mut v);
    v
}

fn template(tag: u16, value: &[u8]) -> Response {
    Response::ok(tlv::encode(TAG_TEMPLATE, &tlv::encode(tag, value)))
}

/// The TLVs inside the `7C` template, which must be all of the data.
fn parse_template(data: &[u8]) -> Result<Vec<Tlv<'_>>, u16> {
    match tlv::parse_one(data) {
        Some((t, [])) if t.tag == TAG_TEMPLATE => tlv::parse(t.value).ok_or(sw::WRONG_DATA),
        _ => Err(sw::WRONG_DATA),
    }
}

impl PivApplet {
    pub(super) fn general_authenticate(
        &mut self,
        cmd: &Command,
        env: &mut CardEnv<'_>,
    ) -> Result<Response, u16> {
        let tlvs = parse_template(&cmd.data)?;
        if cmd.p2 == KEY_MGMT {
            let pending = self.sess.pending.take();
            return self.mgmt_auth(cmd.p1, &tlvs, pending, env);
        }
        self.use_key(cmd.p1, cmd.p2, &tlvs, env)
    }

    fn mgmt_auth(
        &mut self,
        alg: u8,
        tlvs: &[Tlv<'_>],
        pending: Option<PendingAuth>,
        env: &mut CardEnv<'_>,
    ) -> Result<Response, u16> {
        if MgmtAlg::from_byte(alg) != Some(self.st.mgmt.alg) {
            return Err(sw::INCORRECT_P1P2);
        }
        self.sess.mgmt_authed = false;
        let bl = self.st.mgmt.alg.block_len();
        let get = |tag| tlv::find(tlvs, tag);
        match (get(TAG_WITNESS), get(TAG_CHALLENGE), get(TAG_RESPONSE)) {
            // A.2 step 1: the host asks for a witness.
            (Some([]), None, None) => {
                let w = random_block(bl);
                let enc = ecb(&self.st.mgmt, &w, true).ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
                self.sess.pending = Some(PendingAuth::Witness(w));
                Ok(template(TAG_WITNESS, &enc))
            }
            // A.2 step 2: decrypted witness back, and the host's challenge.
            (Some(w), Some(c), _) if !w.is_empty() && c.len() == bl => {
                let Some(PendingAuth::Witness(expected)) = pending else {
                    return Err(sw::CONDITIONS_NOT_SATISFIED);
                };
                if !bool::from(w.ct_eq(&expected[..])) {
                    return Err(sw::SECURITY_STATUS_NOT_SATISFIED);
                }
                self.mgmt_touch(env)?;
                let enc = ecb(&self.st.mgmt, c, true).ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
                self.sess.mgmt_authed = true;
                Ok(template(TAG_RESPONSE, &enc))
            }
            // A.1 step 1: the host asks for a challenge.
            (None, Some([]), None) => {
                let c = random_block(bl);
                let out = template(TAG_CHALLENGE, &c);
                self.sess.pending = Some(PendingAuth::Challenge(c));
                Ok(out)
            }
            // A.1 step 2: the challenge encrypted by the host.
            (None, None, Some(r)) if !r.is_empty() => {
                let Some(PendingAuth::Challenge(c)) = pending else {
                    return Err(sw::CONDITIONS_NOT_SATISFIED);
                };
                let expected = ecb(&self.st.mgmt, &c, true).ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
                if !bool::from(r.ct_eq(&expected[..])) {
                    return Err(sw::SECURITY_STATUS_NOT_SATISFIED);
                }
                self.mgmt_touch(env)?;
                self.sess.mgmt_authed = true;
                Ok(Response::status(sw::OK))
            }
            _ => Err(sw::WRONG_DATA),
        }
    }

    fn mgmt_touch(&mut self, env: &mut CardEnv<'_>) -> Result<(), u16> {
        if self.st.mgmt.touch {
            self.touch(0x02, env)?;
        }
        Ok(())
    }

    /// Sign (`81`) or key agreement (`85`) with the key in `slot`, after
    /// the PIN and touch its policies demand.
    fn use_key(
        &mut self,
        alg: u8,
        slot: u8,
        tlvs: &[Tlv<'_>],
        env: &mut CardEnv<'_>,
    ) -> Result<Response, u16> {
        if !is_key_slot(slot) {
            return Err(sw::INCORRECT_P1P2);
        }
        let (key_alg, pin_policy, touch_policy) = match self.st.slots.get(&slot) {
            Some(s) => (s.key.alg(), s.pin_policy, s.touch_policy),
            None => return Err(sw::REFERENCE_NOT_FOUND),
        };
        if alg != key_alg {
            return Err(sw::WRONG_DATA);
        }
        let get = |tag| tlv::find(tlvs, tag);
        let (input, ecdh) = match (
            get(TAG_RESPONSE),
            get(TAG_CHALLENGE),
            get(TAG_EXPONENTIATION),
        ) {
            (Some([]), Some(m), None) => (m, false),
            (Some([]), None, Some(p)) => (p, true),
            _ => return Err(sw::WRONG_DATA),
        };
        let pin_ok = match pin_policy {
            // "Always": one verification buys one private-key operation.
            0x03 => std::mem::take(&mut self.sess.pin_fresh),
            0x02 => self.sess.pin_verified,
            _ => true,
        };
        if !pin_ok {
            return Err(sw::SECURITY_STATUS_NOT_SATISFIED);
        }
        self.touch(touch_policy, env)?;
        let key = &self.st.slots.get(&slot).ok_or(sw::REFERENCE_NOT_FOUND)?.key;
        let out = if ecdh {
            key.ecdh(input)?
        } else {
            key.sign(input)?
        };
        Ok(template(TAG_RESPONSE, &out))
    }

    /// SET MANAGEMENT KEY: `00 FF FF FF|FE <alg> 9B <len> <key>`; P2 `FE`
    /// requires touch to authenticate. AES keys need firmware 5.4.
    pub(super) fn set_management_key(&mut self, cmd: &Command) -> Result<Response, u16> {
        self.require_mgmt()?;
        let touch = match (cmd.p1, cmd.p2) {
            (0xFF, 0xFF) => false,
            (0xFF, 0xFE) => true,
            _ => return Err(sw::INCORRECT_P1P2),
        };
        let (&alg, rest) = cmd.data.split_first().ok_or(sw::WRONG_DATA)?;
        let alg = MgmtAlg::from_byte(alg).ok_or(sw::WRONG_DATA)?;
        if alg != MgmtAlg::Tdes && self.firmware < crate::sim::Firmware(5, 4, 0) {
            return Err(sw::WRONG_DATA);
        }
        let key = match tlv::parse_one(rest) {
            Some((t, [])) if t.tag == u16::from(KEY_MGMT) => t.value,
            _ => return Err(sw::WRONG_DATA),
        };
        self.st.mgmt = ManagementKey::new(alg, key, touch, false).ok_or(sw::WRONG_DATA)?;
        Ok(Response::status(sw::OK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecb_matches_known_answers() {
        // FIPS 197 Appendix C.2 (AES-192).
        let k = ManagementKey::new(
            MgmtAlg::Aes192,
            &hex::decode("000102030405060708090a0b0c0d0e0f1011121314151617").unwrap(),
            false,
            false,
        )
        .unwrap();
        let pt = hex::decode("00112233445566778899aabbccddeeff").unwrap();
        let ct = ecb(&k, &pt, true).unwrap();
        assert_eq!(hex::encode(&ct[..]), "dda97ca4864cdfe06eaf70a0ec0d7191");
        assert_eq!(&ecb(&k, &ct, false).unwrap()[..], &pt[..]);
        assert!(ecb(&k, &pt[..15], true).is_none());
        assert!(ecb(&k, &[], true).is_none());
    }

    #[test]
    fn default_keys_match_openssl() {
        // `openssl enc -des-ede3 / -aes-192-ecb -nopad -K 0102..08` (x3).
        let tdes = ManagementKey::factory(crate::sim::Firmware::V5_4_3);
        let ct = ecb(&tdes, &hex::decode("1122334455667788").unwrap(), true).unwrap();
        assert_eq!(hex::encode(&ct[..]), "6c5e94dcadd39f1d");
        let aes = ManagementKey::factory(crate::sim::Firmware::V5_7_1);
        let pt = hex::decode("112233445566778899aabbccddeeff00").unwrap();
        let ct = ecb(&aes, &pt, true).unwrap();
        assert_eq!(hex::encode(&ct[..]), "e2681915416e89a2fedbd0779e9247f4");
    }
}

#[cfg(test)]
mod apdu_tests {
    //! Byte-exact APDUs as ykman 5.9 (`yubikit/piv.py`) and yubico-piv-tool
    //! send them.
    use crate::sim::Firmware;
    use crate::sim::person::Person;
    use crate::sim::piv::testutil::{Card, touching};

    const V543: Firmware = Firmware::V5_4_3;
    const V571: Firmware = Firmware::V5_7_1;

    #[test]
    fn management_key_mutual_auth_3des_and_aes192() {
        for fw in [V543, V571] {
            let mut c = Card::new(fw);
            c.auth_default(fw);
            // Wrong algorithm in P1.
            let other = if fw == V543 { "0A" } else { "03" };
            assert_eq!(c.sw(&format!("0087{other}9B047C028000")), 0x6A86);
        }
    }

    #[test]
    fn management_key_auth_rejects_wrong_witness_and_stray_steps() {
        let mut c = Card::new(V571);
        // Step 2 without step 1.
        let step2 = format!("00879B{}", "");
        let _ = step2;
        let w = "0087 0A 9B 26 7C 24 8010 00000000000000000000000000000000 8110 42424242424242424242424242424242";
        assert_eq!(c.sw(&w.replace(' ', "")), 0x6985);
        c.ok("00870A9B047C028000");
        assert_eq!(c.sw(&w.replace(' ', "")), 0x6982);
        // External authentication (A.1) with a wrong cryptogram.
        let r = c.ok("00870A9B047C028100");
        assert_eq!(r[..4], [0x7C, 0x12, 0x81, 0x10]);
        assert_eq!(
            c.sw("00870A9B147C1282100000000000000000000000000000000000"),
            0x6982
        );
        // Garbage in the template.
        assert_eq!(c.sw("00870A9B037C0180"), 0x6A80);
        assert_eq!(c.sw("00870A9B02FFFF"), 0x6A80);
        assert_eq!(c.sw("00870A9B00"), 0x6A80);
        // No authentication: generate is refused.
        assert_eq!(c.sw("0047009A05AC03800111"), 0x6982);
    }

    #[test]
    fn external_auth_succeeds_with_right_cryptogram() {
        let mut c = Card::new(V543);
        let r = c.ok("0087039B047C028100");
        let key = crate::sim::piv::secrets::ManagementKey::factory(V543);
        let enc = crate::sim::piv::auth::ecb(&key, &r[4..12], true).unwrap();
        let apdu = format!("0087039B0C7C0A8208{}", hex::encode(&enc[..]));
        c.ok(&apdu);
        c.ok("0047009A05AC03800111");
    }

    #[test]
    fn set_management_key_and_touch() {
        let mut c = Card::new(V543);
        c.auth_default(V543);
        let aes = "0F".repeat(16);
        // ykman: 00 FF FF FF <type> 9B <len> <key>.
        c.ok(&format!("00FFFFFF13089B10{aes}"));
        assert_eq!(
            c.ok("00F7009B00"),
            hex::decode("010108020200010501 00".replace(' ', "")).unwrap()
        );
        let key = crate::sim::piv::secrets::ManagementKey::new(
            crate::sim::piv::secrets::MgmtAlg::Aes128,
            &hex::decode(&aes).unwrap(),
            false,
            false,
        )
        .unwrap();
        c.ok("00A4040005A000000308");
        assert_eq!(c.sw(&format!("00FFFFFF13089B10{aes}")), 0x6982);
        c.auth(&key);
        assert_eq!(c.sw("00FFFFFF05089B03010203"), 0x6A80);
        assert_eq!(c.sw("00FFFFFF05099B03010203"), 0x6A80);
        assert_eq!(c.sw("00FFFF0005089B03010203"), 0x6A86);
        assert_eq!(c.sw("00FFFFFF00"), 0x6A80);
    }

    #[test]
    fn generate_sign_and_policies() {
        let mut c = Card::new(V571);
        c.auth_default(V571);
        // ykman piv keys generate 9a (P-256, defaults): AC 03 80 01 11.
        let r = c.ok("0047009A05AC03800111");
        assert_eq!(r[..5], [0x7F, 0x49, 0x43, 0x86, 0x41]);
        let point = r[5..].to_vec();
        let md = c.ok("00F7009A00");
        assert_eq!(
            md[..12],
            [
                0x01, 0x01, 0x11, 0x02, 0x02, 0x02, 0x01, 0x03, 0x01, 0x01, 0x04, 0x43
            ]
        );
        // Signing needs the PIN (policy once).
        let digest = "11".repeat(32);
        let sign = format!("0087119A267C248200 8120{digest}").replace(' ', "");
        assert_eq!(c.sw(&sign), 0x6982);
        c.verify_default_pin();
        let r = c.ok(&sign);
        assert_eq!(r[0], 0x7C);
        assert_eq!(r[2], 0x82);
        let sig = p256::ecdsa::Signature::from_der(&r[4..]).unwrap();
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        vk.verify_prehash(&hex::decode(&digest).unwrap(), &sig)
            .unwrap();
        // Once verified, further signatures work; wrong algorithm does not.
        c.ok(&sign);
        assert_eq!(c.sw(&sign.replace("0087119A", "0087149A")), 0x6A80);
        assert_eq!(c.sw(&sign.replace("0087119A", "0087119C")), 0x6A88);
    }

    #[test]
    fn pin_always_needs_a_fresh_verify() {
        let mut c = Card::new(V571);
        c.auth_default(V571);
        // 9C defaults to PIN policy always.
        c.ok("0047009C05AC03800114");
        let sign = format!("0087149C367C34820081 30{}", "22".repeat(48)).replace(' ', "");
        c.verify_default_pin();
        c.ok(&sign);
        assert_eq!(c.sw(&sign), 0x6982);
        // Other commands between VERIFY and the operation do not spend it
        // (yubico-piv-tool reads metadata in between).
        c.verify_default_pin();
        c.ok("00F7009C00");
        c.ok(&sign);
        c.verify_default_pin();
        c.ok("0020FF8000");
        assert_eq!(c.sw(&sign), 0x6982);
    }

    #[test]
    fn ecdh_with_the_host_point_agrees() {
        let mut c = Card::new(V571);
        c.auth_default(V571);
        // 9D, PIN policy never: AC 09 80 01 11 AA 01 01 AB 01 01.
        let r = c.ok("0047009D0BAC09800111AA0101AB0101");
        let card_pub = p256::PublicKey::from_sec1_bytes(&r[5..]).unwrap();
        let host = p256::SecretKey::from_slice(&[0x5A; 32]).unwrap();
        use p256::elliptic_curve::sec1::ToSec1Point;
        let point = host.public_key().to_sec1_point(false);
        // ykman calculate_secret: 7C 45 { 82 00, 85 41 <point> }.
        let apdu = format!("0087119D477C458200 8541{}", hex::encode(point.as_bytes()));
        let r = c.ok(&apdu.replace(' ', ""));
        assert_eq!(r[..4], [0x7C, 0x22, 0x82, 0x20]);
        let expected = p256::elliptic_curve::ecdh::diffie_hellman(
            host.to_nonzero_scalar(),
            card_pub.as_affine(),
        );
        assert_eq!(&r[4..], expected.raw_secret_bytes().as_slice());
        // Not a point on the curve.
        let bad = format!("0087119D477C4582008541{}", "04".repeat(65));
        assert_eq!(c.sw(&bad), 0x6A80);
    }

    #[test]
    fn touch_policy_waits_for_the_person() {
        let mut c = touching(V571, Person::Never);
        c.auth_default(V571);
        // PIN never, touch always.
        c.ok("0047009A0BAC09800111AA0101AB0102");
        let sign = format!("0087119A267C2482008120{}", "11".repeat(32));
        assert_eq!(c.sw(&sign), 0x6982);
        let mut c = touching(V571, Person::Immediate);
        c.auth_default(V571);
        c.ok("0047009A0BAC09800111AA0101AB0102");
        c.ok(&sign);
    }
}
