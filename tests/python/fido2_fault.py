"""Show one fault knob on the wire: raw APDUs through pyscard (status word,
bytes) and what python-fido2 makes of it.

usage: fido2_fault.py READER FAULT [ROOTS_PEM]
Prints `wire: <hex data> <SW>` lines and `fido2: <outcome>`.
"""

import sys

from smartcard.System import readers

from fido2_common import cdh, chain_to_root, ctap, load_root

reader, fault = sys.argv[1], sys.argv[2]
AID = [0xA0, 0x00, 0x00, 0x06, 0x47, 0x2F, 0x00, 0x01]
GET_RETRIES = [0x06, 0xA2, 0x01, 0x02, 0x02, 0x01]


def raw():
    r = [x for x in readers() if str(x) == reader][0]
    conn = r.createConnection()
    conn.connect()
    data, sw1, sw2 = conn.transmit([0x00, 0xA4, 0x04, 0x00, len(AID)] + AID)
    print(f"wire: select {bytes(data).hex()} {sw1:02X}{sw2:02X}")
    data, sw1, sw2 = conn.transmit([0x80, 0x10, 0x00, 0x00, 1, 0x04, 0x00])
    print(f"wire: getinfo {bytes(data[:2]).hex()} {sw1:02X}{sw2:02X}")
    sys.stdout.flush()
    apdu = [0x80, 0x10, 0x00, 0x00, len(GET_RETRIES)] + GET_RETRIES + [0x00]
    data, sw1, sw2 = conn.transmit(apdu)
    print(f"wire: getretries {bytes(data).hex()} {sw1:02X}{sw2:02X}")
    sys.stdout.flush()
    conn.disconnect()


def make_credential():
    c = ctap(reader)
    h = cdh("fault")
    return c.make_credential(
        h, {"id": "example.com"}, {"id": b"u"}, [{"type": "public-key", "alg": -7}]
    ), h


if fault in ("untrusted-attestation", "aaguid-mismatch"):
    from fido2.attestation import PackedAttestation

    att, h = make_credential()
    try:
        PackedAttestation().verify(att.att_stmt, att.auth_data, h)
        print("fido2: packed signature ok")
    except Exception as e:
        print(f"fido2: packed verify failed: {type(e).__name__}: {e}")
    try:
        chain_to_root(att.att_stmt["x5c"], load_root(sys.argv[3]))
        print("fido2: chain ok")
    except Exception as e:
        print(f"fido2: chain failed: {type(e).__name__}")
else:
    try:
        raw()
    except Exception as e:
        print(f"wire: exception {type(e).__name__}")
    sys.stdout.flush()
    if fault not in ("stall", "disconnect-mid-command"):
        try:
            from fido2.ctap2 import ClientPin

            ClientPin(ctap(reader)).get_pin_retries()
            print("fido2: ok")
        except Exception as e:
            print(f"fido2: {type(e).__name__}: {e}".splitlines()[0])
