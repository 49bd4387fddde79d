"""authenticatorReset in and out of the 10 s power-up window.

usage: fido2_reset.py READER (now|late)
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
else:
    c.reset()
    check("reset clears the PIN", c.get_info().options["clientPin"] is False)
print("ALL OK")
