"""A whole WebAuthn ceremony: python-fido2's Fido2Client (the browser's
part) talks to the key, python-fido2's Fido2Server (the relying party)
verifies registration (direct attestation chained to the simulator root)
and authentication, with UV by PIN and a discoverable credential with
credProtect.

usage: fido2_webauthn.py READER ROOTS_PEM
"""

import sys

from cryptography.hazmat.primitives.serialization import Encoding
from fido2.attestation import AttestationVerifier
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap2 import ClientPin
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationConveyancePreference,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
)

from fido2_common import PIN, check, ctap, device, load_root

reader, roots = sys.argv[1], sys.argv[2]
root_der = load_root(roots).public_bytes(Encoding.DER)


class SimRoots(AttestationVerifier):
    def ca_lookup(self, result, auth_data):
        return root_der


class Person(UserInteraction):
    def request_pin(self, permissions, rp_id):
        return PIN


ClientPin(ctap(reader)).set_pin(PIN)
rp = PublicKeyCredentialRpEntity(name="Example", id="example.com")
server = Fido2Server(
    rp, attestation=AttestationConveyancePreference.DIRECT, verify_attestation=SimRoots()
)
client = Fido2Client(
    device(reader), DefaultClientDataCollector("https://example.com"), Person()
)
user = PublicKeyCredentialUserEntity(id=b"web-user", name="wa", display_name="Web A")
opts, state = server.register_begin(
    user,
    resident_key_requirement="required",
    user_verification="required",
    extensions={"credentialProtectionPolicy": "userVerificationRequired"},
)
reg = client.make_credential(opts.public_key)
auth_data = server.register_complete(state, reg)
check("registration verified by the RP (direct attestation)", auth_data.is_user_verified())
ext = auth_data.extensions or {}
check("credProtect applied", ext.get("credProtect") == 3, ext)

opts, state = server.authenticate_begin(user_verification="required")
sel = client.get_assertion(opts.public_key)
resp = sel.get_response(0)
server.authenticate_complete(state, [auth_data.credential_data], resp)
check("discoverable authentication verified by the RP", True)
print("ALL OK")
