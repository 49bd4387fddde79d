//! The registry's verifiable log (docs/sync.md, "Verifiable log"): every
//! event the registry accepts is a leaf of an append-only Merkle tree in the
//! Certificate Transparency structure (RFC 9162 §2.1, the tree of RFC 6962),
//! built with the `ct-merkle` crate. Pure: no database, no clock.
//!
//! * The leaf data is the 32-byte [`event_digest`] of the event as the
//!   registry stores it; the tree's leaf hash is `SHA-256(0x00 ‖ digest)`
//!   and an interior node `SHA-256(0x01 ‖ left ‖ right)` (RFC 9162 §2.1.1).
//! * [`LogTree`] holds the whole tree in memory (about 100 bytes a leaf:
//!   1M events take ~100 MB and rebuild in about a second), answers its
//!   root, inclusion proofs and consistency proofs.
//! * A [`TreeHead`] is signed with the registry's Ed25519 key over
//!   [`head_message`], the content of RFC 9162 §4.10's `TreeHeadDataV2`
//!   (size, root, timestamp) behind our own domain string.
//! * The station's side: [`parse_path`], [`verify_inclusion`],
//!   [`verify_consistency`], [`verify_head`]. A path from the wire is
//!   refused above [`MAX_PATH`] hashes before any is decoded, and a tree
//!   size above [`MAX_TREE_SIZE`]; nothing here panics on what a registry
//!   sends.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, HashableLeaf, InclusionProof, RootHash};
use sha2::{Digest, Sha256};

use crate::store::station_key::{self, StationKey};

/// A SHA-256 value: an event digest, a node or a root.
pub type Hash = [u8; 32];

/// Domain of the event digest.
pub const EVENT_DOMAIN: &[u8] = b"keyward-log-event-v1";
/// Domain of the signed tree head.
pub const HEAD_DOMAIN: &[u8] = b"keyward-tree-head-v1";
/// Most hashes in a proof path: a tree of 2^62 leaves needs 62.
pub const MAX_PATH: usize = 64;
/// Largest tree size a station accepts (keeps every index inside
/// `ct-merkle`'s range, `u64::MAX / 2`).
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// What an event digest covers: the event exactly as the registry stores
/// it (`payload` is the stored JSON text).
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    pub station: &'a str,
    pub event_id: &'a str,
    pub seq: i64,
    pub kind: &'a str,
    pub payload: &'a str,
    pub created_at: i64,
}

/// The leaf data: `SHA-256("keyward-log-event-v1" ‖ len ‖ station ‖ len ‖
/// event_id ‖ seq ‖ len ‖ kind ‖ len ‖ payload ‖ created_at)`, lengths u32
/// and integers i64, big-endian: no two events share an encoding.
pub fn event_digest(e: &EventFields<'_>) -> Hash {
    fn text(h: &mut Sha256, s: &str) {
        h.update((s.len() as u32).to_be_bytes());
        h.update(s.as_bytes());
    }
    let mut h = Sha256::new();
    h.update(EVENT_DOMAIN);
    text(&mut h, e.station);
    text(&mut h, e.event_id);
    h.update(e.seq.to_be_bytes());
    text(&mut h, e.kind);
    text(&mut h, e.payload);
    h.update(e.created_at.to_be_bytes());
    h.finalize().into()
}

/// The RFC 9162 §2.1.1 leaf hash of some leaf data.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new_with_prefix([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

/// The in-memory tree. `L` is the leaf data: event digests in the
/// registry, raw byte strings in the RFC 6962 vector tests.
pub struct LogTree<L: HashableLeaf = Hash> {
    tree: MemoryBackedTree<Sha256, L>,
    /// The same tree as a compact range, for append proofs.
    frontier: Frontier,
}

impl<L: HashableLeaf> Default for LogTree<L> {
    fn default() -> Self {
        LogTree {
            tree: MemoryBackedTree::new(),
            frontier: Frontier::default(),
        }
    }
}

impl<L: HashableLeaf> std::fmt::Debug for LogTree<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogTree(size {})", self.size())
    }
}

impl<L: HashableLeaf> LogTree<L> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a leaf; its index is the size before.
    pub fn push(&mut self, leaf: L) {
        let mut h = Sha256::new_with_prefix([0u8]);
        leaf.hash(&mut h);
        self.frontier.push_node(h.finalize().into());
        self.tree.push(leaf);
    }

    /// The tree as it stands, as a compact range: what an append proof
    /// for the leaves pushed next starts from ([`verify_append`]).
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    pub fn size(&self) -> u64 {
        self.tree.len()
    }

    /// The Merkle Tree Hash of all leaves (`SHA-256("")` when empty).
    pub fn root(&self) -> Hash {
        self.tree
            .root()
            .as_bytes()
            .as_slice()
            .try_into()
            .unwrap_or([0; 32])
    }

    pub fn leaf(&self, index: u64) -> Option<&L> {
        self.tree.get(usize::try_from(index).ok()?)
    }

    /// The inclusion proof of leaf `index` in the current tree; `None` if
    /// there is no such leaf.
    pub fn inclusion(&self, index: u64) -> Option<Vec<Hash>> {
        if index >= self.size() {
            return None;
        }
        let p = self.tree.prove_inclusion(usize::try_from(index).ok()?);
        Some(split(p.as_bytes()))
    }

    /// The consistency proof from the tree's first `from` leaves to the
    /// current tree; `None` if `from` is beyond it. Empty for `from` 0 or
    /// the current size.
    pub fn consistency(&self, from: u64) -> Option<Vec<Hash>> {
        let size = self.size();
        if from > size {
            return None;
        }
        if from == 0 || from == size {
            return Some(Vec::new());
        }
        let p = self
            .tree
            .prove_consistency(usize::try_from(size - from).ok()?);
        Some(split(p.as_bytes()))
    }
}

fn split(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

/// A tree of `size` leaves as a compact range: the roots of its perfect
/// subtrees, largest (leftmost) first, one per bit set in `size` (the
/// "compact range" of Trillian's `merkle/compact`, RFC 9162 §2.1.1
/// hashing). Appending a leaf merges equal subtrees; folding the roots from
/// the right gives the Merkle Tree Hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new_with_prefix([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

impl Frontier {
    /// The compact range a registry sent for a tree of `size` leaves: one
    /// root per bit set in `size`.
    pub fn from_nodes(size: u64, nodes: Vec<Hash>) -> Result<Frontier, ProofError> {
        if size > MAX_TREE_SIZE {
            return Err(ProofError::TreeTooBig(size));
        }
        if nodes.len() != size.count_ones() as usize {
            return Err(ProofError::Mismatch);
        }
        Ok(Frontier { size, nodes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Append a leaf, given its leaf hash (`leaf_hash(data)`).
    fn push_node(&mut self, mut h: Hash) {
        let mut n = self.size;
        while n & 1 == 1 {
            let Some(left) = self.nodes.pop() else { break };
            h = node_hash(&left, &h);
            n >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// Append leaf data (an event digest).
    pub fn push(&mut self, data: &[u8]) {
        self.push_node(leaf_hash(data));
    }

    /// The Merkle Tree Hash of the range.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(last) = it.next() else {
            return Sha256::digest(b"").into();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// Check that `leaves` (leaf data, e.g. event digests, in order) are the
/// leaves `first ..` of the tree of `size` leaves with root `root`, and the
/// last of them: the tree of `first` leaves given by `frontier`, with
/// `leaves` appended, has that root. One proof for a push's new events,
/// however many; the frontier is at most 64 hashes. Sound because any
/// other leaves or order would give another root (collision resistance of
/// the RFC 9162 hashing); `frontier` itself needs no other check, since a
/// wrong one gives another root too.
pub fn verify_append(
    first: u64,
    frontier: Vec<Hash>,
    leaves: &[Hash],
    size: u64,
    root: &Hash,
) -> Result<(), ProofError> {
    root_of(size, root)?;
    let end = first.checked_add(leaves.len() as u64);
    if end != Some(size) {
        return Err(ProofError::IndexOutOfRange {
            index: end.unwrap_or(u64::MAX).saturating_sub(1),
            size,
        });
    }
    let mut f = Frontier::from_nodes(first, frontier)?;
    for l in leaves {
        f.push(l);
    }
    if f.root() == *root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// A tree head: what the registry signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
    /// Unix seconds when it was signed.
    pub at: i64,
}

/// The signed bytes: `"keyward-tree-head-v1" ‖ size (u64 BE) ‖ root ‖
/// timestamp (i64 BE)`: the fields of RFC 9162 §4.10 `TreeHeadDataV2`
/// (timestamp, tree_size, root_hash), with a domain string so no other
/// keyward signature with the same key can be taken for one.
pub fn head_message(h: &TreeHead) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEAD_DOMAIN.len() + 8 + 32 + 8);
    m.extend_from_slice(HEAD_DOMAIN);
    m.extend_from_slice(&h.size.to_be_bytes());
    m.extend_from_slice(&h.root);
    m.extend_from_slice(&h.at.to_be_bytes());
    m
}

/// Sign a tree head with the registry's key.
pub fn sign_head(key: &StationKey, h: &TreeHead) -> [u8; 64] {
    key.sign(&head_message(h))
}

/// Does `signature` sign `h` with the registry key `public`?
pub fn verify_head(public: &[u8; 32], h: &TreeHead, signature: &[u8]) -> bool {
    station_key::verify(public, &head_message(h), signature)
}

/// Why a proof or head from the registry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("a proof path of {0} hashes is over the {MAX_PATH}-hash limit")]
    PathTooLong(usize),
    #[error("a proof path element is not a 32-byte hex hash")]
    BadHash,
    #[error("tree size {0} is over the {MAX_TREE_SIZE} limit")]
    TreeTooBig(u64),
    #[error("leaf {index} is not in a tree of {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the tree shrank from {old} to {new} leaves")]
    Shrank { old: u64, new: u64 },
    #[error("the proof does not lead to the signed root")]
    Mismatch,
}

/// Decode a proof path from the wire: at most [`MAX_PATH`] elements, each
/// exactly 64 hex digits, checked before decoding.
pub fn parse_path(path: &[String]) -> Result<Vec<Hash>, ProofError> {
    if path.len() > MAX_PATH {
        return Err(ProofError::PathTooLong(path.len()));
    }
    path.iter()
        .map(|h| {
            if h.len() != 64 {
                return Err(ProofError::BadHash);
            }
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).map_err(|_| ProofError::BadHash)?;
            Ok(out)
        })
        .collect()
}

fn root_of(size: u64, root: &Hash) -> Result<RootHash<Sha256>, ProofError> {
    if size > MAX_TREE_SIZE {
        return Err(ProofError::TreeTooBig(size));
    }
    Ok(RootHash::new((*root).into(), size))
}

fn path_bytes(path: &[Hash]) -> Result<Vec<u8>, ProofError> {
    if path.len() > MAX_PATH {
        return Err(ProofError::PathTooLong(path.len()));
    }
    Ok(path.concat())
}

/// Check that `leaf` (leaf data, e.g. an event digest) is leaf `index` of
/// the tree of `size` leaves with root `root`.
pub fn verify_inclusion(
    size: u64,
    root: &Hash,
    leaf: &[u8],
    index: u64,
    path: &[Hash],
) -> Result<(), ProofError> {
    let r = root_of(size, root)?;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let proof = InclusionProof::<Sha256>::try_from_bytes(path_bytes(path)?)
        .map_err(|_| ProofError::Mismatch)?;
    r.verify_inclusion(&leaf, index, &proof)
        .map_err(|_| ProofError::Mismatch)
}

/// Check that the tree (`old_size`, `old_root`) is a prefix of the tree
/// (`new_size`, `new_root`). From an empty tree anything follows (with an
/// empty path); equal sizes need equal roots and an empty path.
pub fn verify_consistency(
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
    path: &[Hash],
) -> Result<(), ProofError> {
    let new = root_of(new_size, new_root)?;
    let old = root_of(old_size, old_root)?;
    if old_size > new_size {
        return Err(ProofError::Shrank {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return if path.is_empty() {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if old_size == new_size {
        return if path.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    let proof = ConsistencyProof::<Sha256>::try_from_bytes(path_bytes(path)?)
        .map_err(|_| ProofError::Mismatch)?;
    new.verify_consistency(&old, &proof)
        .map_err(|_| ProofError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    // The RFC 6962 reference tree: eight leaves and the root of each prefix,
    // with two inclusion and three consistency proofs, from
    // google/certificate-transparency-go merkletree/merkle_verifier_test.go
    // (commit 12f4d24b7136b19ce2b94f9ea50a6b71ef7d4001: getInputs, getRoots,
    // getInclusionTestVector, getConsistencyProofs), the vectors of the
    // RFC 6962 reference implementation's merkle_tree tests; the empty root is
    // SHA-256("") (sha256EmptyTreeHash there).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    /// (leaf index, tree size, path)
    const INCLUSION: [(u64, u64, &[&str]); 3] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
    ];
    /// (old size, new size, path)
    const CONSISTENCY: [(u64, u64, &[&str]); 3] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    fn reference(n: usize) -> LogTree<Vec<u8>> {
        let mut t = LogTree::new();
        for l in &LEAVES[..n] {
            t.push(hex::decode(l).unwrap());
        }
        t
    }

    fn path(p: &[&str]) -> Vec<Hash> {
        p.iter().map(|s| h(s)).collect()
    }

    #[test]
    fn roots_match_the_rfc6962_reference_tree() {
        assert_eq!(hex::encode(reference(0).root()), EMPTY_ROOT);
        for n in 1..=8 {
            assert_eq!(hex::encode(reference(n).root()), ROOTS[n - 1], "size {n}");
        }
        assert_eq!(hex::encode(leaf_hash(b"")), ROOTS[0]);
    }

    #[test]
    fn proofs_match_the_reference_vectors_and_verify() {
        for (index, size, p) in INCLUSION {
            let t = reference(size as usize);
            assert_eq!(
                t.inclusion(index).unwrap(),
                path(p),
                "leaf {index} of {size}"
            );
            let leaf = hex::decode(LEAVES[index as usize]).unwrap();
            verify_inclusion(size, &h(ROOTS[size as usize - 1]), &leaf, index, &path(p)).unwrap();
        }
        for (old, new, p) in CONSISTENCY {
            let t = reference(new as usize);
            assert_eq!(t.consistency(old).unwrap(), path(p), "{old} -> {new}");
            verify_consistency(
                old,
                &h(ROOTS[old as usize - 1]),
                new,
                &h(ROOTS[new as usize - 1]),
                &path(p),
            )
            .unwrap();
        }
    }

    #[test]
    fn an_inclusion_proof_for_another_leaf_or_a_bent_path_is_refused() {
        let t = reference(8);
        let root = t.root();
        let p = t.inclusion(5).unwrap();
        let leaf5 = hex::decode(LEAVES[5]).unwrap();
        let leaf4 = hex::decode(LEAVES[4]).unwrap();
        assert_eq!(verify_inclusion(8, &root, &leaf5, 5, &p), Ok(()));
        // Another leaf's data at that index, the same data at another index.
        assert!(verify_inclusion(8, &root, &leaf4, 5, &p).is_err());
        assert!(verify_inclusion(8, &root, &leaf5, 4, &p).is_err());
        // Truncated, extended, one hash changed, another tree size.
        assert!(verify_inclusion(8, &root, &leaf5, 5, &p[..2]).is_err());
        let mut longer = p.clone();
        longer.push(root);
        assert!(verify_inclusion(8, &root, &leaf5, 5, &longer).is_err());
        let mut bent = p.clone();
        bent[1][0] ^= 1;
        assert!(verify_inclusion(8, &root, &leaf5, 5, &bent).is_err());
        assert!(verify_inclusion(16, &root, &leaf5, 5, &p).is_err());
        assert!(verify_inclusion(8, &root, &leaf5, 8, &p).is_err());
        // Sizes beyond what an index can address are refused, not a panic.
        assert_eq!(
            verify_inclusion(u64::MAX, &root, &leaf5, u64::MAX - 1, &p),
            Err(ProofError::TreeTooBig(u64::MAX))
        );
    }

    #[test]
    fn a_consistency_proof_across_a_rewritten_prefix_is_refused() {
        let honest = reference(8);
        let old = reference(6);
        // The same eight leaves with leaf 3 altered: the first six differ.
        let mut rewritten = LogTree::<Vec<u8>>::new();
        for (i, l) in LEAVES.iter().enumerate() {
            let mut d = hex::decode(l).unwrap();
            if i == 3 {
                d[0] ^= 1;
            }
            rewritten.push(d);
        }
        let p = honest.consistency(6).unwrap();
        assert_eq!(
            verify_consistency(6, &old.root(), 8, &honest.root(), &p),
            Ok(())
        );
        let q = rewritten.consistency(6).unwrap();
        assert_eq!(
            verify_consistency(6, &old.root(), 8, &rewritten.root(), &q),
            Err(ProofError::Mismatch)
        );
        // One event removed: seven leaves, old head of six no longer a prefix.
        let mut cut = LogTree::<Vec<u8>>::new();
        for (i, l) in LEAVES.iter().enumerate() {
            if i != 2 {
                cut.push(hex::decode(l).unwrap());
            }
        }
        let q = cut.consistency(6).unwrap();
        assert!(verify_consistency(6, &old.root(), 7, &cut.root(), &q).is_err());
        // Truncated and extended honest proofs, a shrunk tree, equal sizes.
        assert!(verify_consistency(6, &old.root(), 8, &honest.root(), &p[..2]).is_err());
        let mut longer = p.clone();
        longer.push(p[0]);
        assert!(verify_consistency(6, &old.root(), 8, &honest.root(), &longer).is_err());
        assert_eq!(
            verify_consistency(8, &honest.root(), 6, &old.root(), &[]),
            Err(ProofError::Shrank { old: 8, new: 6 })
        );
        assert!(verify_consistency(6, &old.root(), 6, &honest.root(), &[]).is_err());
        assert_eq!(
            verify_consistency(6, &old.root(), 6, &old.root(), &[]),
            Ok(())
        );
        assert_eq!(
            verify_consistency(0, &[0; 32], 8, &honest.root(), &[]),
            Ok(())
        );
    }

    #[test]
    fn paths_from_the_wire_are_bounded_and_hex_checked() {
        let ok = vec!["ab".repeat(32); MAX_PATH];
        assert_eq!(parse_path(&ok).unwrap().len(), MAX_PATH);
        let long = vec!["ab".repeat(32); MAX_PATH + 1];
        assert_eq!(
            parse_path(&long),
            Err(ProofError::PathTooLong(MAX_PATH + 1))
        );
        for bad in [
            "ab".repeat(31),
            "ab".repeat(33),
            "zz".repeat(32),
            "é".repeat(32),
        ] {
            assert_eq!(parse_path(&[bad]), Err(ProofError::BadHash));
        }
    }

    #[test]
    fn signed_heads_verify_only_with_the_registry_key_and_exact_content() {
        let key = StationKey::generate();
        let head = TreeHead {
            size: 8,
            root: h(ROOTS[7]),
            at: 1_800_000_000,
        };
        let m = head_message(&head);
        assert_eq!(&m[..20], b"keyward-tree-head-v1");
        assert_eq!(&m[20..28], &8u64.to_be_bytes());
        assert_eq!(&m[28..60], &head.root);
        assert_eq!(&m[60..], &1_800_000_000i64.to_be_bytes());
        let sig = sign_head(&key, &head);
        assert!(verify_head(&key.public_key(), &head, &sig));
        let other = StationKey::generate();
        assert!(!verify_head(&other.public_key(), &head, &sig));
        assert!(!verify_head(
            &key.public_key(),
            &head,
            &sign_head(&other, &head)
        ));
        for changed in [
            TreeHead { size: 9, ..head },
            TreeHead {
                at: head.at + 1,
                ..head
            },
            TreeHead {
                root: [0; 32],
                ..head
            },
        ] {
            assert!(!verify_head(&key.public_key(), &changed, &sig));
        }
    }

    #[test]
    fn event_digest_is_length_prefixed_and_covers_every_field() {
        let e = EventFields {
            station: "kiosk-1",
            event_id: "00112233445566778899aabbccddeeff",
            seq: 7,
            kind: "binding.created",
            payload: r#"{"binding":"b1"}"#,
            created_at: 1_800_000_000,
        };
        let mut bytes = b"keyward-log-event-v1".to_vec();
        for (s, n) in [(e.station, None), (e.event_id, Some(e.seq))] {
            bytes.extend((s.len() as u32).to_be_bytes());
            bytes.extend(s.as_bytes());
            if let Some(n) = n {
                bytes.extend(n.to_be_bytes());
            }
        }
        for s in [e.kind, e.payload] {
            bytes.extend((s.len() as u32).to_be_bytes());
            bytes.extend(s.as_bytes());
        }
        bytes.extend(e.created_at.to_be_bytes());
        let want: Hash = Sha256::digest(&bytes).into();
        assert_eq!(event_digest(&e), want);
        let d = event_digest(&e);
        for changed in [
            EventFields {
                station: "kiosk-2",
                ..e
            },
            EventFields { seq: 8, ..e },
            EventFields {
                kind: "binding.revoked",
                ..e
            },
            EventFields {
                payload: r#"{"binding":"b2"}"#,
                ..e
            },
            EventFields { created_at: 1, ..e },
            // Moving a byte across a field boundary changes the digest.
            EventFields {
                station: "kiosk-1b",
                kind: "inding.created",
                ..e
            },
        ] {
            assert_ne!(event_digest(&changed), d);
        }
    }

    #[test]
    fn the_frontier_gives_the_trees_root_at_every_size() {
        // Against ct-merkle's tree (itself checked against the RFC 6962
        // reference above), sizes 0 to 70: every carry pattern up to 64.
        let mut t: LogTree = LogTree::new();
        for i in 0..=70u8 {
            assert_eq!(t.frontier().root(), t.root(), "size {i}");
            assert_eq!(t.frontier().nodes().len(), t.size().count_ones() as usize);
            t.push([i; 32]);
        }
        for n in 0..=LEAVES.len() {
            let r = reference(n);
            assert_eq!(r.frontier().root(), r.root(), "reference size {n}");
        }
    }

    #[test]
    fn an_append_proof_holds_only_for_the_leaves_in_their_places() {
        let leaf = |i: u8| [i; 32];
        let mut t: LogTree = LogTree::new();
        for i in 0..13 {
            t.push(leaf(i));
        }
        let before = t.frontier().clone();
        let mine: Vec<Hash> = (13..20).map(leaf).collect();
        for l in &mine {
            t.push(*l);
        }
        let (size, root) = (t.size(), t.root());
        let f = || before.nodes().to_vec();
        assert_eq!(verify_append(13, f(), &mine, size, &root), Ok(()));

        let mut swapped = mine.clone();
        swapped.swap(2, 3);
        let bad: [(u64, Vec<Hash>, Vec<Hash>, u64); 6] = [
            // Two of the leaves in each other's places.
            (13, f(), swapped, size),
            // One left out, or one more than were appended.
            (13, f(), mine[..6].to_vec(), size),
            (12, f(), [vec![leaf(99)], mine.clone()].concat(), size),
            // Another starting index with the same frontier.
            (14, f(), mine[1..].to_vec(), size),
            // The frontier of another tree, or cut short.
            (13, vec![[7; 32], [8; 32], [9; 32]], mine.clone(), size),
            (13, f()[1..].to_vec(), mine.clone(), size),
        ];
        for (i, (first, frontier, leaves, size)) in bad.into_iter().enumerate() {
            assert!(
                verify_append(first, frontier, &leaves, size, &root).is_err(),
                "case {i} passed"
            );
        }
        // The right proof against another root, or a size that is not its end.
        assert!(verify_append(13, f(), &mine, size, &[0; 32]).is_err());
        assert!(verify_append(13, f(), &mine, size + 1, &root).is_err());
        assert!(verify_append(u64::MAX, f(), &mine, size, &root).is_err());
    }
}
