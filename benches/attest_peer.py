"""Independent peer for benches/attest.rs: python-fido2's attestation
verification on the same real vectors.

FIDO: fido2.attestation.AttestationVerifier.verify_attestation (statement
signature, certificate requirements, then verify_x509_chain to the root that
ca_lookup returns). PIV: fido2.attestation.verify_x509_chain over
leaf, F9, root (signatures only; python-fido2 has no PIV verifier).

Usage: attest_peer.py VECTORS_DIR SECONDS  -> one JSON line.
The roots are the project's bundled ones (roots/, beside benches/).
"""
import base64
import hashlib
import json
import os
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fido2.attestation import AttestationVerifier, verify_x509_chain
from fido2.webauthn import AttestationObject

vectors, seconds = sys.argv[1], float(sys.argv[2])
roots = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "roots")


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def der(path):
    return x509.load_pem_x509_certificate(open(path, "rb").read()).public_bytes(Encoding.DER)


reg = json.load(open(f"{vectors}/fido/py_webauthn-packed-yubikey-firefox.json"))
resp = reg["credential"]["response"]
ao = AttestationObject(b64url(resp["attestationObject"]))
cdh = hashlib.sha256(b64url(resp["clientDataJSON"])).digest()
u2f_root = der(f"{roots}/yubico-u2f-root-ca-457200631.pem")
piv_root = der(f"{roots}/yubico-piv-root-ca-263751.pem")


class Verifier(AttestationVerifier):
    def ca_lookup(self, result, auth_data):
        return u2f_root


verifier = Verifier()
d = f"{vectors}/piv/docker-tuf/25515003"
piv = [der(f"{d}/Slot9CAttestation.pem"), der(f"{d}/SlotF9Intermediate.pem"), piv_root]


def rate(fn):
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            fn()
        n += 20
    return n / (time.perf_counter() - start)


print(json.dumps({
    "fido_packed_per_s": rate(lambda: verifier.verify_attestation(ao, cdh)),
    "piv_chain_per_s": rate(lambda: verify_x509_chain(piv)),
}))
