"""python-fido2 on a quirky simulated key (docs/interop.md): the
independent judge of tests/interop_quirks.rs.

usage: fido2_interop.py READER (make|u2f)

make: with the PIN 123456 already set, make one discoverable credential for
      interop.example and list the credentials with python-fido2's own
      CredentialManagement (0x0A or the 2.1-PRE 0x41, as the key offers);
      prints "rps N creds M".
u2f:  the key must not be usable as a CTAP2 authenticator.
"""

import sys

from fido2.ctap2 import ClientPin, Ctap2, CredentialManagement
from fido2.ctap2.pin import PinProtocolV1, PinProtocolV2

from fido2_common import PIN, cdh, check, device

reader, mode = sys.argv[1], sys.argv[2]

if mode == "u2f":
    try:
        Ctap2(device(reader))
        raise AssertionError("python-fido2 took a U2F-only key for CTAP2")
    except (ValueError, SystemExit) as e:
        check("python-fido2 finds no CTAP2", True, e)
    print("ALL OK")
    sys.exit(0)

c = Ctap2(device(reader))
info = c.get_info()
# python-fido2 refuses a key that lists no PIN protocol; CTAP 2.0 keys
# that leave the member out speak protocol 1, so name it.
proto = PinProtocolV2() if 2 in info.pin_uv_protocols else PinProtocolV1()
cp = ClientPin(c, proto)
token = cp.get_pin_token(PIN, ClientPin.PERMISSION.MAKE_CREDENTIAL, "interop.example")
h = cdh("interop")
c.make_credential(
    h,
    {"id": "interop.example", "name": "Interop"},
    {"id": b"\xab" * 16, "name": "interop"},
    [{"type": "public-key", "alg": -7}],
    options={"rk": True},
    pin_uv_param=proto.authenticate(token, h),
    pin_uv_protocol=proto.VERSION,
)
check("makeCredential", True)
token = cp.get_pin_token(PIN, ClientPin.PERMISSION.CREDENTIAL_MGMT)
cm = CredentialManagement(c, proto, token)
rps = cm.enumerate_rps()
creds = sum(len(cm.enumerate_creds(rp[4])) for rp in rps)
print(f"rps {len(rps)} creds {creds}")
check("one credential", len(rps) == 1 and creds == 1)
print("ALL OK")
