"""authenticatorConfig and enterprise attestation, wrong PINs.

usage: fido2_config.py READER ROOTS_PEM SERIAL
"""

import sys

from cryptography import x509
from fido2.attestation import PackedAttestation
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, Config
from fido2.ctap2.pin import PinProtocolV2

from fido2_common import PIN, cdh, chain_to_root, check, ctap, load_root

reader, roots, serial = sys.argv[1], sys.argv[2], sys.argv[3]
root = load_root(roots)
c = ctap(reader)
proto = PinProtocolV2()
cp = ClientPin(c, proto)
cp.set_pin(PIN)
P = ClientPin.PERMISSION

try:
    cp.get_pin_token("000000", P.MAKE_CREDENTIAL)
    raise AssertionError("wrong PIN accepted")
except CtapError as e:
    check("wrong pin is PIN_INVALID", e.code == CtapError.ERR.PIN_INVALID)
check("retries count down", cp.get_pin_retries()[0] == 7)
codes = []
for _ in range(2):
    try:
        cp.get_pin_token("000000", P.MAKE_CREDENTIAL)
    except CtapError as e:
        codes.append(e.code)
check("third wrong PIN in a row blocks", codes == [CtapError.ERR.PIN_INVALID, CtapError.ERR.PIN_AUTH_BLOCKED], codes)
try:
    cp.get_pin_token(PIN, P.MAKE_CREDENTIAL)
    raise AssertionError("right PIN accepted before a power cycle")
except CtapError as e:
    check("even the right PIN waits for a power cycle", e.code == CtapError.ERR.PIN_AUTH_BLOCKED)
check("power cycle state reported", cp.get_pin_retries() == (5, True), cp.get_pin_retries())
# Leave the field (pyscard unpowers the card on disconnect) and come back.
c.device.close()
c = ctap(reader)
cp = ClientPin(c, proto)
cp.get_pin_token(PIN, P.MAKE_CREDENTIAL)
check("after a power cycle the right PIN works and resets retries", cp.get_pin_retries()[0] == 8)

token = cp.get_pin_token(PIN, P.AUTHENTICATOR_CFG)
cfg = Config(c, proto, token)
cfg.enable_enterprise_attestation()
check("ep enabled", c.get_info().options["ep"] is True)

token = cp.get_pin_token(PIN, P.MAKE_CREDENTIAL, "corp.example")
h = cdh("ea")
att = c.make_credential(
    h,
    {"id": "corp.example"},
    {"id": b"emp-1", "name": "emp"},
    [{"type": "public-key", "alg": -7}],
    pin_uv_param=proto.authenticate(token, h),
    pin_uv_protocol=2,
    enterprise_attestation=2,
)
check("epAtt", att.ep_att is True)
PackedAttestation().verify(att.att_stmt, att.auth_data, h)
leaf = chain_to_root(att.att_stmt["x5c"], root)
sn = leaf.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)
check("EA certificate carries the serial", sn and sn[0].value == serial, leaf.subject)

token = cp.get_pin_token(PIN, P.AUTHENTICATOR_CFG)
cfg = Config(c, proto, token)
cfg.set_min_pin_length(min_pin_length=8)
info = c.get_info()
check("minPINLength", info.min_pin_length == 8)
check("forcePINChange", info.force_pin_change is True)
try:
    cp.get_pin_token(PIN, P.MAKE_CREDENTIAL)
    raise AssertionError("token despite forcePINChange")
except CtapError as e:
    check("token refused until PIN changed", e.code == CtapError.ERR.PIN_POLICY_VIOLATION)
cp.change_pin(PIN, "12345678")
check("pin changed", c.get_info().force_pin_change is False)

token = cp.get_pin_token("12345678", P.AUTHENTICATOR_CFG)
Config(c, proto, token).toggle_always_uv()
check("alwaysUv", c.get_info().options["alwaysUv"] is True)
try:
    c.make_credential(h, {"id": "x.example"}, {"id": b"u"}, [{"type": "public-key", "alg": -7}])
    raise AssertionError("makeCredential without UV under alwaysUv")
except CtapError as e:
    check("alwaysUv requires a token", e.code == CtapError.ERR.PUAT_REQUIRED)
print("ALL OK")
