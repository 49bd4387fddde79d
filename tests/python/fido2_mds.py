"""python-fido2's own MDS3 verifier judges the simulated Vendor B key and
keyward's test BLOB: parse_blob checks the BLOB's signature chain to the
test MDS root, MdsAttestationVerifier finds the entry by the attested
AAGUID and chains the packed attestation to that entry's
attestationRootCertificates, and filters out a REVOKED entry.

usage: fido2_mds.py READER BLOB ROOT_DER accepted|refused
"""

import json
import sys
from base64 import b64decode

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fido2.attestation.base import verify_x509_chain
from fido2.utils import websafe_decode

from fido2.attestation import UntrustedAttestation
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap2 import ClientPin
from fido2.mds3 import MdsAttestationVerifier, parse_blob
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationConveyancePreference,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
)

from fido2_common import PIN, check, ctap, device

reader, blob_path, root_path, expect = sys.argv[1:5]
with open(blob_path, "rb") as f:
    blob = f.read()
with open(root_path, "rb") as f:
    root = f.read()

# python-fido2 2.2's parse_blob hands an ES256 JWS signature (raw r||s,
# RFC 7518 §3.4) to an ECDSA check that wants DER, so it refuses every
# ES256 BLOB (production BLOBs are RS256). The chain and signature are
# checked here with its own chain check and `cryptography`, then the
# payload is parsed by parse_blob.
message, sig_b64 = blob.rsplit(b".", 1)
header = json.loads(websafe_decode(message.split(b".")[0]))
chain = [b64decode(c) for c in header["x5c"]] + [root]
verify_x509_chain(chain)
sig = websafe_decode(sig_b64)
der_sig = encode_dss_signature(
    int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
)
leaf = x509.load_der_x509_certificate(chain[0])
leaf.public_key().verify(der_sig, message, ec.ECDSA(hashes.SHA256()))
check("BLOB ES256 signature chains to the test MDS root", header["alg"] == "ES256")
payload = parse_blob(blob, None)
check("BLOB parsed", payload.no > 0, payload.no)
verifier = MdsAttestationVerifier(payload)


class Person(UserInteraction):
    def request_pin(self, permissions, rp_id):
        return PIN


ClientPin(ctap(reader)).set_pin(PIN)
rp = PublicKeyCredentialRpEntity(name="Example", id="example.com")
server = Fido2Server(
    rp, attestation=AttestationConveyancePreference.DIRECT, verify_attestation=verifier
)
client = Fido2Client(
    device(reader), DefaultClientDataCollector("https://example.com"), Person()
)
user = PublicKeyCredentialUserEntity(id=b"mds-user", name="m", display_name="M")
opts, state = server.register_begin(user, user_verification="required")
reg = client.make_credential(opts.public_key)

if expect == "accepted":
    auth_data = server.register_complete(state, reg)
    entry = verifier.find_entry(
        reg.response.attestation_object, reg.response.client_data.hash
    )
    check("registration verified through the MDS entry", auth_data.is_user_verified())
    check(
        "entry found by the attested AAGUID",
        entry is not None and entry.metadata_statement.description == "Vendor B Test Key",
        entry,
    )
else:
    try:
        server.register_complete(state, reg)
        refused = False
    except UntrustedAttestation:
        refused = True
    check("a REVOKED entry is refused", refused)
print("ALL OK")
