"""User presence through pcscd: nobody touches (makeCredential and selection
time out with CTAP2_ERR_USER_ACTION_TIMEOUT), or the touch comes late (the
command waits for it).

usage: fido2_touch.py READER (never|delayed MS|cancel)
"""

import sys
import time

from fido2.ctap import STATUS, CtapError

from fido2_common import cdh, check, ctap

c = ctap(sys.argv[1])


seen = []


def make_credential():
    return c.make_credential(
        cdh("t"),
        {"id": "example.com"},
        {"id": b"u"},
        [{"type": "public-key", "alg": -7}],
        on_keepalive=seen.append,
    )


if sys.argv[2] == "delayed":
    delay = int(sys.argv[3]) / 1000
    start = time.monotonic()
    att = make_credential()
    took = time.monotonic() - start
    check("waits for the late touch", att.fmt == "packed" and took >= delay, took)
    # NFCCTAP_GETRESPONSE: 9100 polls carry the keepalive status.
    check("keepalive UPNEEDED over NFC", STATUS.UPNEEDED in seen, seen)
elif sys.argv[2] == "cancel":
    import threading

    ev = threading.Event()
    threading.Timer(0.5, ev.set).start()
    try:
        c.selection(event=ev)
        raise AssertionError("selection finished without a touch")
    except CtapError as e:
        check("cancel over NFC gives KEEPALIVE_CANCEL", e.code == CtapError.ERR.KEEPALIVE_CANCEL, e)
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
