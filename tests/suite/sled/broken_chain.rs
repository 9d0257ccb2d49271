//! `civicflow verify` on an embedded store damaged below sled's checksums: it must name the
//! first broken position, not say "intact".

use crate::cli::{civicflow, fill};
use crate::common::TempDir;

#[test]
fn verify_names_the_first_broken_position() {
    let scratch = TempDir::new("cli-broken");
    fill(scratch.path());
    {
        // Flip the last payload byte of position 2 (its own chunk: each append above was a
        // group of one), below sled's checksums.
        let db = sled::Config::new()
            .path(scratch.path())
            .segment_size(8 * 1024 * 1024)
            .open()
            .expect("sled opens the stopped store");
        let tree = db.open_tree("civicflow-log").expect("tree");
        let mut key = vec![b'L'];
        key.extend_from_slice(&2u64.to_be_bytes());
        let mut chunk = tree.get(&key).expect("read").expect("chunk at 2").to_vec();
        let last = chunk.len() - 1;
        chunk[last] ^= 0x20;
        tree.insert(&key, chunk).expect("write");
        db.flush().expect("flush");
    }
    let (code, out, _) = civicflow(&["verify", "--data", scratch.path().to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN after 1 good events"), "{out}");
    assert!(out.contains("position 2"), "{out}");
}
