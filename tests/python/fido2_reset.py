"""authenticatorReset in and out of the 10 s power-up window, and as the
only way out of a blocked PIN.

usage: fido2_reset.py READER (now|late|blocked)
"""

import sys
import time

from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin

from fido2_common import PIN, check, ctap

reader, when = sys.argv[1], sys.argv[2]
c = ctap(reader)
ClientPin(c).set_pin(PIN)
check("pin set", c.get_info().options["clientPin"] is True)
if when == "late":
    time.sleep(10.5)
    try:
        c.reset()
        raise AssertionError("reset accepted after the window")
    except CtapError as e:
        check("late reset is NOT_ALLOWED", e.code == CtapError.ERR.NOT_ALLOWED, e)
elif when == "blocked":
    codes = []
    for attempt in range(8):
        if attempt % 3 == 0:
            # Re-tap: a power cycle lifts the three-in-a-row block.
            c.device.close()
            c = ctap(reader)
        try:
            ClientPin(c).get_pin_token("000000", ClientPin.PERMISSION.GET_ASSERTION)
        except CtapError as e:
            codes.append(e.code)
    check("eighth wrong PIN blocks it", codes[-1] == CtapError.ERR.PIN_BLOCKED, codes)
    c.device.close()
    c = ctap(reader)
    try:
        ClientPin(c).get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION)
        raise AssertionError("blocked PIN accepted")
    except CtapError as e:
        check("blocked survives a power cycle", e.code == CtapError.ERR.PIN_BLOCKED, e)
    check("retries 0", ClientPin(c).get_pin_retries()[0] == 0)
    c.reset()
    check("reset clears the blocked PIN", c.get_info().options["clientPin"] is False)
    ClientPin(c).set_pin("87654321")
    check("a new PIN can be set", ClientPin(c).get_pin_retries()[0] == 8)
else:
    c.reset()
    check("reset clears the PIN", c.get_info().options["clientPin"] is False)
print("ALL OK")
