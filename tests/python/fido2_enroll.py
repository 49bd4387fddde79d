"""get_info, set PIN, make_credential (packed, chained to the simulator
root), get_assertion, credential management, with PIN protocol 1 or 2.

usage: fido2_enroll.py READER ROOTS_PEM PROTOCOL [ext]
("ext": extended-length APDUs instead of chaining)
"""

import sys

from fido2.attestation import PackedAttestation
from fido2.ctap2 import ClientPin, CredentialManagement
from fido2.ctap2.pin import PinProtocolV1, PinProtocolV2
from fido2.webauthn import AttestedCredentialData

from fido2_common import PIN, cdh, chain_to_root, check, ctap, load_root


def enroll(c, root, proto_num):
    """The whole enrollment on a connected Ctap2 `c`."""
    info = c.info
    check("versions", "FIDO_2_1" in info.versions and "FIDO_2_0" in info.versions)
    check("aaguid", bytes(info.aaguid) == b"keyward-sim-fido")
    check("options", info.options.get("credMgmt") and info.options.get("rk"))
    check("pin protocols", info.pin_uv_protocols == [2, 1])
    check("no pin yet", info.options.get("clientPin") is False)

    proto = PinProtocolV2() if proto_num == 2 else PinProtocolV1()
    cp = ClientPin(c, proto)
    cp.set_pin(PIN)
    check("set pin", c.get_info().options["clientPin"] is True)
    check("retries", cp.get_pin_retries()[0] == 8)

    P = ClientPin.PERMISSION
    token = cp.get_pin_token(PIN, P.MAKE_CREDENTIAL | P.GET_ASSERTION, "example.com")
    h = cdh("enroll")
    att = c.make_credential(
        h,
        {"id": "example.com", "name": "Example"},
        {"id": b"user-1", "name": "alice", "displayName": "Alice"},
        [{"type": "public-key", "alg": -7}],
        options={"rk": True},
        pin_uv_param=proto.authenticate(token, h),
        pin_uv_protocol=proto.VERSION,
    )
    check("fmt packed", att.fmt == "packed")
    check("flags UP UV AT", att.auth_data.is_user_present() and att.auth_data.is_user_verified())
    result = PackedAttestation().verify(att.att_stmt, att.auth_data, h)
    check("packed attestation verifies", result is not None)
    chain_to_root(att.att_stmt["x5c"], root)
    check("x5c chains to the simulator FIDO root", True)
    cred = att.auth_data.credential_data
    assert isinstance(cred, AttestedCredentialData)

    token = cp.get_pin_token(PIN, P.GET_ASSERTION, "example.com")
    h2 = cdh("assert")
    a = c.get_assertion(
        "example.com",
        h2,
        allow_list=[{"type": "public-key", "id": cred.credential_id}],
        pin_uv_param=proto.authenticate(token, h2),
        pin_uv_protocol=proto.VERSION,
    )
    a.verify(h2, cred.public_key)
    check("assertion verifies with the credential key", a.auth_data.counter == 1)
    a = c.get_assertion("example.com", cdh("discover"))
    a.verify(cdh("discover"), cred.public_key)
    check("discoverable assertion", a.user["id"] == b"user-1")

    # A second, EdDSA credential for another RP.
    token = cp.get_pin_token(PIN, P.MAKE_CREDENTIAL, "other.example")
    att2 = c.make_credential(
        h,
        {"id": "other.example"},
        {"id": b"user-2", "name": "bob"},
        [{"type": "public-key", "alg": -8}],
        options={"rk": True},
        pin_uv_param=proto.authenticate(token, h),
        pin_uv_protocol=proto.VERSION,
    )
    PackedAttestation().verify(att2.att_stmt, att2.auth_data, h)
    check("eddsa credential", att2.auth_data.credential_data.public_key[3] == -8)

    token = cp.get_pin_token(PIN, P.CREDENTIAL_MGMT)
    cm = CredentialManagement(c, proto, token)
    meta = cm.get_metadata()
    check("creds metadata", meta[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 2)
    rps = cm.enumerate_rps()
    ids = sorted(r[CredentialManagement.RESULT.RP]["id"] for r in rps)
    check("enumerate rps", ids == ["example.com", "other.example"], ids)
    creds = cm.enumerate_creds(rps[0][CredentialManagement.RESULT.RP_ID_HASH])
    check("enumerate creds", len(creds) == 1)
    cm.update_user_info(
        {"type": "public-key", "id": cred.credential_id},
        {"id": b"user-1", "name": "alice2", "displayName": "Alice Two"},
    )
    check("update user", True)
    cm.delete_cred({"type": "public-key", "id": cred.credential_id})
    meta = cm.get_metadata()
    check("delete cred", meta[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 1)


if __name__ == "__main__":
    reader, roots, proto_num = sys.argv[1], sys.argv[2], int(sys.argv[3])
    extended = sys.argv[4:] == ["ext"]
    enroll(ctap(reader, extended), load_root(roots), proto_num)
    print("ALL OK")
