//! Files keyward creates for the ledger get their modes explicitly, not
//! from the umask (issue 13 item 11). One test in its own binary: it sets
//! the process umask.

use std::os::unix::fs::PermissionsExt;

use keyward::store::{CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, TicketRecord};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn record() -> EnrollmentRecord {
    EnrollmentRecord {
        subject: "alice@example.org".into(),
        ticket: TicketRecord {
            jti: "t-1".into(),
            digest: "cd".repeat(32),
            issuer: "idp".into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some("1".into()),
            aaguid: None,
            model: None,
            firmware: None,
        },
        policy: None,
        credentials: vec![CredentialRecord {
            kind: "piv".into(),
            credential_id: None,
            rp_id: None,
            slot: Some("9a".into()),
            algorithm: "P-256".into(),
            public_key: vec![4; 65],
            attestation: None,
            attestation_format: None,
        }],
        actor: "kiosk".into(),
    }
}

#[test]
fn ledger_key_and_pin_get_their_modes_whatever_the_umask() {
    // 000: a unit without UMask= and a service manager that leaves it open
    // (the old ledger came out 0666, world-writable). 0277: one so tight it
    // would strip the owner's write bit and the pin's read bits.
    for umask in [0o000, 0o277] {
        // SAFETY: umask has no preconditions; this binary runs one test.
        unsafe { libc::umask(umask) };
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/ledger.db");
        let mut l = Ledger::open_default_key(&db).unwrap();
        l.commit_enrollment(&record(), 1_800_000_000).unwrap();
        let state = dir.path().join("state");
        for f in ["ledger.db", "ledger.db-wal", "ledger.db-shm", "station.key"] {
            assert_eq!(mode(&state.join(f)), 0o600, "{f} under umask {umask:o}");
        }
        assert_eq!(mode(&state.join("station.pub")), 0o644, "umask {umask:o}");
        assert_eq!(mode(&state), 0o750, "umask {umask:o}");
        drop(l);
    }
}
