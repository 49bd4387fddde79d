"""Nobody touches the key: makeCredential and selection time out with
CTAP2_ERR_USER_ACTION_TIMEOUT.

usage: fido2_touch.py READER
"""

import sys

from fido2.ctap import CtapError

from fido2_common import cdh, check, ctap

c = ctap(sys.argv[1])
try:
    c.make_credential(
        cdh("t"), {"id": "example.com"}, {"id": b"u"}, [{"type": "public-key", "alg": -7}]
    )
    raise AssertionError("made a credential without a touch")
except CtapError as e:
    check("makeCredential times out", e.code == CtapError.ERR.USER_ACTION_TIMEOUT, e)
try:
    c.selection()
    raise AssertionError("selection without a touch")
except CtapError as e:
    check("selection times out", e.code == CtapError.ERR.USER_ACTION_TIMEOUT, e)
print("ALL OK")
