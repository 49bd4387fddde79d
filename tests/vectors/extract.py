#!/usr/bin/env python3
"""Rebuild tests/vectors/fido/*.json from the upstream test sources.

The FIDO vectors are not files upstream: they are literals inside test
functions of duo-labs/py_webauthn and Yubico/python-fido2. This script reads
those test files (at the commits in README.md) and writes the same values as
JSON, with a "source" object naming where they came from.

    extract.py PY_WEBAUTHN_GIT_DIR PYTHON_FIDO2_GIT_DIR OUT_DIR

Each GIT_DIR is a clone (bare is fine); nothing is fetched.
"""
import ast
import json
import subprocess
import sys

PY_WEBAUTHN = ("duo-labs/py_webauthn", "b4bf63ffe3332b70414cb7bf4a892ee6877e9f7f")
PYTHON_FIDO2 = ("Yubico/python-fido2", "d1fd71182a7b677a34e15b8b221f272c9e72d77f")


def show(git_dir, commit, path):
    return subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{commit}:{path}"],
        check=True, capture_output=True, text=True,
    ).stdout


def test_fn(source, name):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise SystemExit(f"no test {name}")


def assigned(fn):
    """name -> value node of the simple assignments in a function."""
    out = {}
    for stmt in fn.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
            out[stmt.targets[0].id] = stmt.value
    return out


def hex_arg(node):
    """bytes.fromhex("..."), possibly wrapped in a call such as AuthenticatorData(...)."""
    while isinstance(node, ast.Call) and not (
        isinstance(node.func, ast.Attribute) and node.func.attr == "fromhex"
    ):
        node = node.args[0]
    return node.args[0].value.lower()


def webauthn(git_dir, path, test):
    repo, commit = PY_WEBAUTHN
    a = assigned(test_fn(show(git_dir, commit, path), test))
    return {
        "source": {"repo": repo, "commit": commit, "path": path, "test": test},
        "credential": json.loads(a["credential"].value),
        "challenge_b64url": a["challenge"].args[0].value,
        "rp_id": a["rp_id"].value,
        "expected_origin": a["expected_origin"].value,
    }


def fido2(git_dir, test, fmt):
    repo, commit = PYTHON_FIDO2
    path = "tests/test_attestation.py"
    a = assigned(test_fn(show(git_dir, commit, path), test))
    stmt = {}
    for k, v in zip(a["statement"].keys, a["statement"].values):
        if k.value == "alg":
            stmt["alg"] = ast.literal_eval(v)
        elif k.value == "sig":
            stmt["sig"] = hex_arg(v)
        elif k.value == "x5c":
            stmt["x5c"] = [hex_arg(c) for c in v.elts]
    return {
        "source": {"repo": repo, "commit": commit, "path": path, "test": test},
        "fmt": fmt,
        "att_stmt": stmt,
        "auth_data_hex": hex_arg(a["auth_data"]),
        "client_data_hash_hex": hex_arg(a["client_param"]),
    }


def main():
    webauthn_dir, fido2_dir, out = sys.argv[1:4]
    vectors = {
        "py_webauthn-packed-yubikey-firefox.json": webauthn(
            webauthn_dir, "tests/test_verify_registration_response_packed.py",
            "test_verify_attestation_from_yubikey_firefox"),
        "py_webauthn-fido-u2f-yubikey-firefox.json": webauthn(
            webauthn_dir, "tests/test_verify_registration_response_fido_u2f.py",
            "test_verify_attestation_from_yubikey_firefox"),
        "python-fido2-fido-u2f-yubikey.json": fido2(
            fido2_dir, "test_fido_u2f_attestation", "fido-u2f"),
        "python-fido2-packed-yubico-preview.json": fido2(
            fido2_dir, "test_packed_attestation", "packed"),
    }
    for name, v in vectors.items():
        with open(f"{out}/{name}", "w") as f:
            f.write(json.dumps(v, indent=1))


if __name__ == "__main__":
    main()
