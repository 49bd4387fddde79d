"""python-fido2's CTAPHID stack (fido2.hid.CtapHidDevice) against the
simulator's in-memory report pipe: the test process relays 64-byte reports
between this script's stdin/stdout and keyward's HidPipe.

usage: fido2_hid.py (enroll ROOTS_PEM | cancel)
Reports travel on fds 0/1; the check lines go to stderr.
"""

import os
import sys
import threading

# Reports own fd 1; everything printed goes to stderr.
REPORTS_OUT = os.fdopen(os.dup(1), "wb", buffering=0)
REPORTS_IN = os.fdopen(os.dup(0), "rb", buffering=0)
os.dup2(2, 1)
sys.stdout = sys.stderr

from fido2.ctap import STATUS, CtapError  # noqa: E402
from fido2.ctap2 import Ctap2  # noqa: E402
from fido2.hid import CtapHidDevice  # noqa: E402
from fido2.hid.base import CtapHidConnection, HidDescriptor  # noqa: E402

from fido2_common import check, load_root  # noqa: E402


class PipeConnection(CtapHidConnection):
    def read_packet(self):
        buf = b""
        while len(buf) < 64:
            chunk = REPORTS_IN.read(64 - len(buf))
            if not chunk:
                raise OSError("device gone")
            buf += chunk
        return buf

    def write_packet(self, data):
        REPORTS_OUT.write(data)

    def close(self):
        pass


desc = HidDescriptor("keyward-sim", 0x1050, 0x0407, 64, 64, "keyward sim", None)
dev = CtapHidDevice(desc, PipeConnection())
check("ctaphid version 2", dev.version == 2)
check("device version is the firmware", dev.device_version == (5, 7, 1))
c = Ctap2(dev)
seen = []

if sys.argv[1] == "enroll":
    from fido2_enroll import enroll

    enroll(c, load_root(sys.argv[2]), 2)
    c.selection(on_keepalive=seen.append)
    check("keepalive UPNEEDED while waiting for touch", STATUS.UPNEEDED in seen, seen)
    check("ping", dev.ping(b"hello" * 30) == b"hello" * 30)
    dev.wink()
    check("wink", True)
else:
    ev = threading.Event()
    threading.Timer(0.5, ev.set).start()
    try:
        c.selection(event=ev, on_keepalive=seen.append)
        raise AssertionError("selection finished without a touch")
    except CtapError as e:
        check("cancel gives KEEPALIVE_CANCEL", e.code == CtapError.ERR.KEEPALIVE_CANCEL, e)
    check("keepalive UPNEEDED before the cancel", STATUS.UPNEEDED in seen, seen)
print("ALL OK")
