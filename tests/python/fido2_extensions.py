"""The YubiKey 5.7 extensions of the simulator as python-fido2 sees them:
getInfo lists them; makeCredential with hmac-secret, credBlob and
largeBlobKey; getAssertion returns the credBlob, the largeBlobKey and an
hmac-secret output (python-fido2's own PIN protocol two does the key
agreement and crypto); python-fido2's LargeBlobs writes an entry sealed
with the largeBlobKey under an lbw token and reads it back.

Prints the values keyward's client must agree with (tests/fido_extensions.rs)
as NAME=hex lines.

usage: fido2_extensions.py READER
"""

import sys

from fido2 import cbor
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, LargeBlobs
from fido2.ctap2.pin import PinProtocolV2

from fido2_common import cdh, check, ctap

PIN = "58213947"
RP = "py.example"
SALT = b"\x11" * 32


def main(reader):
    c = ctap(reader)
    info = c.info
    check(
        "5.7 extensions",
        info.extensions
        == ["credProtect", "hmac-secret", "largeBlobKey", "credBlob", "minPinLength"],
        info.extensions,
    )
    check("largeBlobs option", info.options.get("largeBlobs") is True)
    check("maxCredBlobLength 32", info.max_cred_blob_length == 32)
    check("maxSerializedLargeBlobArray 4096", info.max_large_blob == 4096)

    proto = PinProtocolV2()
    cp = ClientPin(c, proto)
    cp.set_pin(PIN)
    P = ClientPin.PERMISSION
    token = cp.get_pin_token(PIN, P.MAKE_CREDENTIAL | P.GET_ASSERTION, RP)
    h = cdh("extensions")
    att = c.make_credential(
        h,
        {"id": RP, "name": "Python"},
        {"id": b"py-user", "name": "py"},
        [{"type": "public-key", "alg": -7}],
        extensions={
            "hmac-secret": True,
            "credBlob": b"python-blob",
            "largeBlobKey": True,
        },
        options={"rk": True},
        pin_uv_param=proto.authenticate(token, h),
        pin_uv_protocol=proto.VERSION,
    )
    ext = att.auth_data.extensions or {}
    check("mc hmac-secret true", ext.get("hmac-secret") is True, ext)
    check("mc credBlob true", ext.get("credBlob") is True, ext)
    lbk = att.large_blob_key
    check("mc largeBlobKey", lbk is not None and len(lbk) == 32)
    cred_id = att.auth_data.credential_data.credential_id

    key_agreement, shared = cp._get_shared_secret()
    salt_enc = proto.encrypt(shared, SALT)
    salt_auth = proto.authenticate(shared, salt_enc)
    token = cp.get_pin_token(PIN, P.GET_ASSERTION, RP)
    h = cdh("assert")
    a = c.get_assertion(
        RP,
        h,
        [{"type": "public-key", "id": cred_id}],
        extensions={
            "hmac-secret": {1: key_agreement, 2: salt_enc, 3: salt_auth, 4: 2},
            "credBlob": True,
            "largeBlobKey": True,
        },
        pin_uv_param=proto.authenticate(token, h),
        pin_uv_protocol=proto.VERSION,
    )
    out = proto.decrypt(shared, a.auth_data.extensions["hmac-secret"])
    check("ga hmac-secret output", len(out) == 32)
    check("ga credBlob", a.auth_data.extensions.get("credBlob") == b"python-blob")
    check("ga largeBlobKey", a.large_blob_key == lbk)

    # A write without a token is refused once a PIN is set.
    try:
        LargeBlobs(c).write_blob_array([])
        check("write without token refused", False)
    except CtapError as e:
        check("write without token refused", e.code == CtapError.ERR.PUAT_REQUIRED, e)
    token = cp.get_pin_token(PIN, P.LARGE_BLOB_WRITE)
    lb = LargeBlobs(c, proto, token)
    check("empty array", lb.read_blob_array() == [])
    lb.put_blob(lbk, b"hello from python-fido2")
    check("blob read back", lb.get_blob(lbk) == b"hello from python-fido2")
    array = cbor.encode(lb.read_blob_array())

    print("credential_id=" + cred_id.hex())
    print("cred_blob=" + b"python-blob".hex())
    print("large_blob_key=" + lbk.hex())
    print("hmac_output=" + out.hex())
    print("large_blob_array=" + array.hex())
    print("ALL OK")


if __name__ == "__main__":
    main(sys.argv[1])
