"""User presence through pcscd: nobody touches (makeCredential and selection
time out with CTAP2_ERR_USER_ACTION_TIMEOUT), or the touch comes late (the
command waits for it).

usage: fido2_touch.py READER (never|delayed MS)
"""

import sys
import time

from fido2.ctap import CtapError

from fido2_common import cdh, check, ctap

c = ctap(sys.argv[1])


def make_credential():
    return c.make_credential(
        cdh("t"), {"id": "example.com"}, {"id": b"u"}, [{"type": "public-key", "alg": -7}]
    )


if sys.argv[2] == "delayed":
    delay = int(sys.argv[3]) / 1000
    start = time.monotonic()
    att = make_credential()
    took = time.monotonic() - start
    check("waits for the late touch", att.fmt == "packed" and took >= delay, took)
else:
    try:
        make_credential()
        raise AssertionError("made a credential without a touch")
    except CtapError as e:
        check("makeCredential times out", e.code == CtapError.ERR.USER_ACTION_TIMEOUT, e)
    try:
        c.selection()
        raise AssertionError("selection without a touch")
    except CtapError as e:
        check("selection times out", e.code == CtapError.ERR.USER_ACTION_TIMEOUT, e)
print("ALL OK")
