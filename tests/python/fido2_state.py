"""--state DIR keeps the PIN and credentials across simulator restarts.

usage: fido2_state.py READER (set|check)
"""

import sys

from fido2.ctap2 import ClientPin
from fido2.ctap2.pin import PinProtocolV2

from fido2_common import PIN, cdh, check, ctap

reader, step = sys.argv[1], sys.argv[2]
c = ctap(reader)
proto = PinProtocolV2()
cp = ClientPin(c, proto)
P = ClientPin.PERMISSION
if step == "set":
    cp.set_pin(PIN)
    token = cp.get_pin_token(PIN, P.MAKE_CREDENTIAL, "state.example")
    h = cdh("state")
    c.make_credential(
        h,
        {"id": "state.example"},
        {"id": b"kept", "name": "kept"},
        [{"type": "public-key", "alg": -7}],
        options={"rk": True},
        pin_uv_param=proto.authenticate(token, h),
        pin_uv_protocol=2,
    )
    check("credential made", True)
else:
    check("pin kept", c.get_info().options["clientPin"] is True)
    token = cp.get_pin_token(PIN, P.GET_ASSERTION, "state.example")
    h = cdh("again")
    a = c.get_assertion(
        "state.example", h, pin_uv_param=proto.authenticate(token, h), pin_uv_protocol=2
    )
    check("credential kept", a.user["id"] == b"kept")
    check("counter kept", a.auth_data.counter >= 1)
print("ALL OK")
