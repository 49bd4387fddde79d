#!/usr/bin/env python3
"""Example keyward ticket issuer, built on a standard JOSE library.

An identity authority runs something like this after it has proofed a
person: it signs a keyward provisioning ticket (docs/ticket.md) for one
station. Requires `joserfc` (pip install joserfc).

    issue_ticket.py --key idp.key --kid idp-2026 --iss https://idp.example.com \
        --sub employee:40213 --aud kiosk-berlin-01 \
        --fido2 login.example.com --piv 9a:p256 > ticket.jwt

Dual control: give --cosign KEY:KID for each further approver and
--approvals N; the ticket then uses the JWS JSON general serialization.
Keys are PKCS#8 PEM files (`keyward ticket keygen` writes them), Ed25519
(EdDSA) or P-256 (ES256). ES256 signatures are put in low-S form, which
keyward requires (docs/ticket.md, "Protected header").
"""

import argparse
import base64
import json
import secrets
import sys
import time
import warnings

from joserfc import jws
from joserfc.jwk import ECKey, OKPKey

TYP = "keyward-ticket+jwt"
# joserfc marks "EdDSA" not recommended since RFC 9864 introduced "Ed25519";
# keyward's version-1 format uses "EdDSA", so allow it explicitly.
ALGORITHMS = ["EdDSA", "ES256"]
warnings.filterwarnings("ignore", message="EdDSA is deprecated")


# The order of the P-256 group (SEC 2 §2.4.2). ECDSA accepts (r, s) and
# (r, n - s) alike; keyward accepts only s <= n/2, so one signed ticket has
# one encoding. cryptography (under joserfc) does not normalise s.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def low_s(sig_b64):
    sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
    s = int.from_bytes(sig[32:], "big")
    if s > P256_N // 2:
        s = P256_N - s
    return base64.urlsafe_b64encode(sig[:32] + s.to_bytes(32, "big")).rstrip(b"=").decode()


def load_key(path):
    pem = open(path, "rb").read()
    try:
        return OKPKey.import_key(pem), "EdDSA"
    except Exception:
        return ECKey.import_key(pem), "ES256"


def claims(args):
    now = args.now if args.now is not None else int(time.time())
    ops = [{"type": "fido2", "rp_id": rp,
            "user": base64.urlsafe_b64encode(args.sub.encode()).rstrip(b"=").decode()}
           for rp in args.fido2]
    for spec in args.piv:
        slot, alg = spec.split(":", 1)
        ops.append({"type": "piv", "slot": slot, "alg": alg})
    c = {
        "ver": 1,
        "iss": args.iss,
        "sub": args.sub,
        "aud": args.aud[0] if len(args.aud) == 1 else args.aud,
        "iat": now,
        "nbf": now,
        "exp": now + args.ttl,
        "jti": args.jti or secrets.token_urlsafe(16),
        "ial": args.ial,
        "evidence": {"method": args.evidence_method, "verifier": args.evidence_verifier},
        "ops": ops,
        "policy": args.policy,
    }
    if args.replaces_serial is not None:
        c["replaces"] = {"serial": args.replaces_serial, "reason": args.replaces_reason}
    if args.approvals > 1:
        c["approvals"] = args.approvals
    return c


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--key", required=True, help="issuer private key (PKCS#8 PEM)")
    p.add_argument("--kid", required=True, help="key id the stations know the key by")
    p.add_argument("--cosign", action="append", default=[], metavar="KEY:KID",
                   help="a further approver's key and kid (dual control)")
    p.add_argument("--iss", required=True)
    p.add_argument("--sub", required=True)
    p.add_argument("--aud", action="append", required=True)
    p.add_argument("--ttl", type=int, default=900, help="lifetime in seconds")
    p.add_argument("--now", type=int, help="issue time (seconds since the epoch)")
    p.add_argument("--jti")
    p.add_argument("--ial", type=int, default=2)
    p.add_argument("--evidence-method", default="in_person_document")
    p.add_argument("--evidence-verifier", default="helpdesk")
    p.add_argument("--fido2", action="append", default=[], metavar="RP_ID")
    p.add_argument("--piv", action="append", default=[], metavar="SLOT:ALG")
    p.add_argument("--replaces-serial", type=int)
    p.add_argument("--replaces-reason", default="lost")
    p.add_argument("--policy", default="default")
    p.add_argument("--approvals", type=int, default=1)
    args = p.parse_args()

    payload = json.dumps(claims(args), separators=(",", ":")).encode()
    signers = [(args.key, args.kid)] + [tuple(s.rsplit(":", 1)) for s in args.cosign]
    keys = [(load_key(path), kid) for path, kid in signers]
    if len(keys) == 1 and args.approvals == 1:
        (key, alg), kid = keys[0]
        header = {"alg": alg, "kid": kid, "typ": TYP}
        compact = jws.serialize_compact(header, payload, key, algorithms=ALGORITHMS)
        if alg == "ES256":
            signing_input, sig = compact.rsplit(".", 1)
            compact = f"{signing_input}.{low_s(sig)}"
        print(compact)
        return
    members = [{"protected": {"alg": alg, "kid": kid, "typ": TYP}} for (_, alg), kid in keys]

    def pick(member):
        kid = member.headers()["kid"]
        return next(key for (key, _), k in keys if k == kid)

    ticket = jws.serialize_json(members, payload, pick, algorithms=ALGORITHMS)
    for sig in ticket["signatures"]:
        protected = json.loads(base64.urlsafe_b64decode(
            sig["protected"] + "=" * (-len(sig["protected"]) % 4)))
        if protected["alg"] == "ES256":
            sig["signature"] = low_s(sig["signature"])
    json.dump(ticket, sys.stdout, separators=(",", ":"))
    print()


if __name__ == "__main__":
    main()
