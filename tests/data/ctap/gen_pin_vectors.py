"""Generate PIN/UV auth protocol 1 and 2 vectors with python-fido2's
PinProtocolV1/PinProtocolV2, from fixed keys, for tests/ctap_pin_vectors.rs.

usage: /opt/keyward-venv/bin/python gen_pin_vectors.py > pin_vectors.json

The platform's ephemeral key and protocol 2's IV come from fixed values
(python-fido2 draws them from ec.generate_private_key and os.urandom; both
are replaced here), so the output is the same on every run.
"""

import json
import os
from unittest import mock

from cryptography.hazmat.primitives.asymmetric import ec
from fido2.cose import CoseKey
from fido2.ctap2.pin import PinProtocolV1, PinProtocolV2, _pad_pin

# Fixed private scalars: the authenticator's key agreement key and the
# platform's ephemeral key.
AUTH_D = int("7d" * 32, 16) % (2**256 - 2**224 + 2**192 + 2**96 - 1)
PLAT_D = int("3c" * 32, 16)
IV = bytes(range(0x10, 0x20))
PIN = "123456"
TOKEN = bytes(range(32))
MESSAGE = b"\xff" * 32 + b"\x0d\x01"


def cose_of(pub):
    n = pub.public_numbers()
    return {1: 2, 3: -25, -1: 1, -2: n.x.to_bytes(32, "big"), -3: n.y.to_bytes(32, "big")}


def vector(proto, name):
    auth = ec.derive_private_key(AUTH_D, ec.SECP256R1())
    plat = ec.derive_private_key(PLAT_D, ec.SECP256R1())
    auth_cose = cose_of(auth.public_key())
    with mock.patch("cryptography.hazmat.primitives.asymmetric.ec.generate_private_key", return_value=plat):
        key_agreement, shared = proto.encapsulate(CoseKey.parse(auth_cose))
    with mock.patch("os.urandom", return_value=IV):
        pin_enc = proto.encrypt(shared, _pad_pin(PIN))
        token_enc = proto.encrypt(shared, TOKEN)
    pin_hash_enc = None
    import hashlib
    with mock.patch("os.urandom", return_value=IV):
        pin_hash_enc = proto.encrypt(shared, hashlib.sha256(PIN.encode()).digest()[:16])
    assert proto.decrypt(shared, token_enc) == TOKEN
    return {
        "protocol": name,
        "authenticator_private": "%064x" % AUTH_D,
        "authenticator_x": auth_cose[-2].hex(),
        "authenticator_y": auth_cose[-3].hex(),
        "platform_private": "%064x" % PLAT_D,
        "platform_x": key_agreement[-2].hex(),
        "platform_y": key_agreement[-3].hex(),
        "shared_secret": shared.hex(),
        "iv": IV.hex(),
        "pin": PIN,
        "new_pin_enc": pin_enc.hex(),
        "pin_hash_enc": pin_hash_enc.hex(),
        "token": TOKEN.hex(),
        "token_enc": token_enc.hex(),
        "message": MESSAGE.hex(),
        "auth_with_shared": proto.authenticate(shared, MESSAGE).hex(),
        "auth_with_token": proto.authenticate(TOKEN, MESSAGE).hex(),
    }


if __name__ == "__main__":
    print(json.dumps([vector(PinProtocolV1(), 1), vector(PinProtocolV2(), 2)], indent=1))
