"""python-fido2's side of benches/ctap_latency.rs: the same getInfo and
makeCredential round trips on the same virtual key, through pcscd.

usage: bench_python_fido2.py READER ROUNDS
Prints one JSON object: per-command sample lists in microseconds.
"""

import hashlib
import json
import sys
import time

from fido2.ctap2 import Ctap2
from fido2.pcsc import CtapPcscDevice

reader, rounds = sys.argv[1], int(sys.argv[2])
dev = next(d for d in CtapPcscDevice.list_devices(reader))
c = Ctap2(dev)
h = hashlib.sha256(b"bench").digest()


def timed(f):
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e6)
    return out


get_info = timed(c.get_info)
make_credential = timed(
    lambda: c.make_credential(
        h, {"id": "bench.example"}, {"id": b"u", "name": "u"}, [{"type": "public-key", "alg": -7}]
    )
)
print(json.dumps({"get_info": get_info, "make_credential": make_credential}))
