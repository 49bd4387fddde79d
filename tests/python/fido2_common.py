"""Shared helpers for the python-fido2 checks of the keyward simulator.

Each fido2_*.py script connects to one vpcd reader with python-fido2's
CtapPcscDevice (the NFC/PC-SC transport), does its checks and prints one
line per check; any failure raises, so the exit status says pass/fail.
"""

import hashlib
import os
import sys

from cryptography import x509
from fido2.ctap2 import Ctap2
from fido2.pcsc import CtapPcscDevice

PIN = "123456"


def device(reader):
    devs = [d for d in CtapPcscDevice.list_devices(reader)]
    if not devs:
        raise SystemExit(f"no FIDO device in reader {reader!r}")
    return devs[0]


def ctap(reader, extended=False):
    dev = device(reader)
    # Extended-length APDUs instead of short ones with chaining and 61xx.
    dev.use_ext_apdu = extended
    return Ctap2(dev)


def cdh(label):
    return hashlib.sha256(label.encode()).digest()


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"FAIL {name} {detail}")
    print(f"ok {name}")
    sys.stdout.flush()


def load_root(path):
    with open(path, "rb") as f:
        # `keyward sim roots` prints the FIDO root first.
        return x509.load_pem_x509_certificates(f.read())[0]


def chain_to_root(x5c, root):
    """Verify leaf <- intermediate <- root signatures and CA flags; raise
    on failure."""
    certs = [x509.load_der_x509_certificate(c) for c in x5c]
    leaf, inter = certs[0], certs[1]
    leaf.verify_directly_issued_by(inter)
    inter.verify_directly_issued_by(root)
    bc = inter.extensions.get_extension_for_class(x509.BasicConstraints).value
    if not bc.ca:
        raise ValueError("intermediate is not a CA")
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    if bc.ca:
        raise ValueError("leaf is a CA")
    return leaf


def env_roots():
    return os.environ.get("KEYWARD_FIDO_ROOTS")
