"""Generate byte-exact CTAP request vectors with python-fido2 (the reference
client): what its Ctap2, ClientPin, Config and CredentialManagement classes
send for each command, for tests/ctap_request_vectors.rs.

usage: /opt/keyward-venv/bin/python gen_request_vectors.py > request_vectors.json

A fake CtapDevice records each request and answers with canned responses;
the platform's ephemeral key and protocol 2's IV are fixed as in
gen_pin_vectors.py, so the output is the same on every run.
"""

import json
from unittest import mock

from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.ctap2 import ClientPin, Config, CredentialManagement, Ctap2
from fido2.ctap2.pin import PinProtocolV1, PinProtocolV2
from fido2.hid import CAPABILITY

from gen_pin_vectors import AUTH_D, IV, PLAT_D, TOKEN, cose_of

AUTH = ec.derive_private_key(AUTH_D, ec.SECP256R1())
PLAT = ec.derive_private_key(PLAT_D, ec.SECP256R1())
INFO = {
    1: ["FIDO_2_0", "FIDO_2_1"],
    3: b"\0" * 16,
    4: {"clientPin": True, "credMgmt": True, "pinUvAuthToken": True, "authnrCfg": True, "setMinPINLength": True},
    5: 4096,
    6: [2, 1],
}


class FakeDevice:
    capabilities = CAPABILITY.CBOR

    def __init__(self):
        self.sent = []
        self.proto = None

    def call(self, cmd, data=b"", event=None, on_keepalive=None):
        self.sent.append(bytes(data))
        if data[0] == 0x04:
            return b"\0" + cbor.encode(INFO)
        if data[0] == 0x06:
            req = cbor.decode(data[1:])
            if req[2] == 2:
                return b"\0" + cbor.encode({1: cose_of(AUTH.public_key())})
            if req[2] in (5, 9):
                # The token encrypted to the fixed shared secret.
                proto = PinProtocolV1() if req[1] == 1 else PinProtocolV2()
                with mock.patch("cryptography.hazmat.primitives.asymmetric.ec.generate_private_key", return_value=PLAT):
                    from fido2.cose import CoseKey
                    _, shared = proto.encapsulate(CoseKey.parse(cose_of(AUTH.public_key())))
                with mock.patch("os.urandom", return_value=IV):
                    return b"\0" + cbor.encode({2: proto.encrypt(shared, TOKEN)})
        return b"\0"


def capture(dev, f):
    n = len(dev.sent)
    try:
        f()
    except Exception:
        pass  # canned empty answers do not parse; the request is what counts
    return dev.sent[n].hex()


def vectors():
    dev = FakeDevice()
    c = Ctap2(dev)
    out = {}
    cdh = bytes([0x5A]) * 32
    out["get_info"] = capture(dev, c.get_info)
    out["reset"] = capture(dev, c.reset)
    out["selection"] = capture(dev, c.selection)
    for num, proto in ((1, PinProtocolV1()), (2, PinProtocolV2())):
        cp = ClientPin(c, proto)
        p = f"v{num}_"
        out[p + "get_retries"] = capture(dev, cp.get_pin_retries)
        out[p + "get_key_agreement"] = capture(dev, lambda: cp._get_shared_secret())
        with mock.patch("cryptography.hazmat.primitives.asymmetric.ec.generate_private_key", return_value=PLAT), \
                mock.patch("os.urandom", return_value=IV):
            n = len(dev.sent)
            cp.set_pin("123456")
            out[p + "set_pin"] = dev.sent[n + 1].hex()
            n = len(dev.sent)
            cp.change_pin("123456", "87654321")
            out[p + "change_pin"] = dev.sent[n + 1].hex()
            n = len(dev.sent)
            P = ClientPin.PERMISSION
            token = cp.get_pin_token("123456", P.MAKE_CREDENTIAL | P.GET_ASSERTION, "corp.example")
            out[p + "get_token"] = dev.sent[n + 1].hex()
            assert token == TOKEN
        out[p + "make_credential"] = capture(dev, lambda: c.make_credential(
            cdh,
            {"id": "corp.example", "name": "Corp"},
            {"id": b"emp-1", "name": "emp", "displayName": "Employee"},
            [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -8}],
            exclude_list=[{"type": "public-key", "id": b"\xcc\xcc"}],
            extensions={"credProtect": 2, "hmac-secret": True},
            options={"rk": True},
            pin_uv_param=proto.authenticate(TOKEN, cdh),
            pin_uv_protocol=num,
            enterprise_attestation=2,
        ))
        out[p + "get_assertion"] = capture(dev, lambda: c.get_assertion(
            "corp.example",
            cdh,
            allow_list=[{"type": "public-key", "id": b"\xcc\xcc"}],
            options={"up": True},
            pin_uv_param=proto.authenticate(TOKEN, cdh),
            pin_uv_protocol=num,
        ))
        cfg = Config(c, proto, TOKEN)
        out[p + "config_enable_ep"] = capture(dev, cfg.enable_enterprise_attestation)
        out[p + "config_min_pin"] = capture(dev, lambda: cfg.set_min_pin_length(min_pin_length=8, force_change_pin=True))
        cm = CredentialManagement(c, proto, TOKEN)
        out[p + "cm_metadata"] = capture(dev, cm.get_metadata)
        out[p + "cm_rps_begin"] = capture(dev, cm.enumerate_rps_begin)
        out[p + "cm_creds_begin"] = capture(dev, lambda: cm.enumerate_creds_begin(bytes(32)))
        out[p + "cm_delete"] = capture(dev, lambda: cm.delete_cred({"type": "public-key", "id": b"\xab"}))
    return out


print(json.dumps(vectors(), indent=1, sort_keys=True))
