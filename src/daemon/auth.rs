//! Who may use the local API: root, and members of one configured group.
//!
//! Only the kernel vouches for the peer: SO_PEERCRED (uid, gid, pid at
//! connect time) and SO_PEERGROUPS (its supplementary groups). The group
//! database is never consulted for a peer: a process that dropped the
//! group (`setpriv --clear-groups`, a sandbox, a service with
//! `SupplementaryGroups=` unset) does not hold it, whatever /etc/group
//! says, and a user just added to the group needs a new login first.

use std::ffi::CString;
use std::os::fd::AsRawFd;

use serde::Serialize;

/// The peer of an accepted connection, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// Supplementary groups of the peer process (SO_PEERGROUPS).
    pub groups: Vec<u32>,
}

/// Read the peer credentials of a connected Unix stream socket.
pub fn peer(sock: &impl AsRawFd) -> std::io::Result<Peer> {
    let fd = sock.as_raw_fd();
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a valid, writable ucred and `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Peer {
        uid: cred.uid,
        gid: cred.gid,
        pid: (cred.pid > 0).then_some(cred.pid),
        groups: peer_groups(fd).unwrap_or_default(),
    })
}

/// SO_PEERGROUPS (Linux 4.13+): the peer's supplementary group list.
fn peer_groups(fd: i32) -> std::io::Result<Vec<u32>> {
    let mut groups = vec![0 as libc::gid_t; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the buffer holds `len` bytes of gid_t.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && n > groups.len() && n <= 65536 {
            groups.resize(n, 0);
            continue;
        }
        return Err(err);
    }
}

/// The access rule: root, plus members of `group` when one is configured.
#[derive(Debug, Clone)]
pub struct Access {
    pub group: Option<Group>,
}

/// A resolved group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

/// Why a peer was turned away (no secrets: ids and names only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

impl Access {
    /// Decide for `peer`.
    pub fn check(&self, peer: &Peer) -> Result<(), Denied> {
        if peer.uid == 0 {
            return Ok(());
        }
        let Some(g) = &self.group else {
            return Err(Denied(format!(
                "uid {} is not root, and no group is configured for the keyward API",
                peer.uid
            )));
        };
        if peer.gid == g.gid || peer.groups.contains(&g.gid) {
            return Ok(());
        }
        Err(Denied(format!(
            "uid {} is neither root nor a member of group {} (gid {})",
            peer.uid, g.name, g.gid
        )))
    }
}

/// Resolve a group name (or a numeric gid) through the group database.
pub fn resolve_group(name: &str) -> Result<Group, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Group {
            name: name.to_string(),
            gid,
        });
    }
    let c = CString::new(name).map_err(|_| format!("group name {name:?} has a NUL byte"))?;
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: all-zero is a valid `group` (null pointers, gid 0).
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: pointers are valid for the call; buf outlives its use.
    let rc =
        unsafe { libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return Err(format!(
            "no group {name:?} on this system; create it (groupadd {name}) or set another with --group"
        ));
    }
    Ok(Group {
        name: name.to_string(),
        gid: grp.gr_gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            pid: None,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn root_always_members_by_gid_others_denied() {
        let open = Access { group: None };
        assert!(open.check(&peer(0, 0, &[])).is_ok());
        let e = open.check(&peer(1000, 1000, &[])).unwrap_err();
        assert!(e.0.contains("uid 1000") && e.0.contains("no group"), "{e}");
        let a = Access {
            group: Some(Group {
                name: "kw".into(),
                gid: 4242,
            }),
        };
        assert!(a.check(&peer(1000, 4242, &[])).is_ok());
        assert!(a.check(&peer(1000, 1000, &[7, 4242])).is_ok());
        let e = a.check(&peer(4000123, 1000, &[7])).unwrap_err();
        assert!(e.0.contains("group kw (gid 4242)"), "{e}");
    }

    #[test]
    fn membership_comes_from_the_peer_credentials_only() {
        // uid 1 (daemon on Debian) has primary group 1 in the user
        // database; a peer of that uid whose credentials do not carry the
        // group is refused all the same.
        let a = Access {
            group: Some(Group {
                name: "daemon".into(),
                gid: 1,
            }),
        };
        let e = a.check(&peer(1, 65534, &[])).unwrap_err();
        assert!(e.0.contains("uid 1 is neither root"), "{e}");
        assert!(a.check(&peer(1, 65534, &[1])).is_ok());
    }

    #[test]
    fn groups_resolve_by_name_or_number_and_unknown_names_are_named() {
        assert_eq!(resolve_group("root").unwrap().gid, 0);
        assert_eq!(resolve_group("123").unwrap().gid, 123);
        let e = resolve_group("no-such-group-kw").unwrap_err();
        assert!(e.contains("\"no-such-group-kw\""), "{e}");
    }

    #[test]
    fn peer_credentials_of_a_socketpair_are_ours() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let p = super::peer(&a).unwrap();
        // SAFETY: no preconditions.
        assert_eq!(p.uid, unsafe { libc::geteuid() });
        assert_eq!(p.pid, Some(std::process::id() as i32));
    }
}
