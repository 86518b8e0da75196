//! `mysql_native_password` on the server side. Users are configured with
//! MariaDB-style hashes (`*` + hex of SHA1(SHA1(password))), never clear text.
//! A client proves it knows the password without sending it:
//! token = SHA1(password) XOR SHA1(salt + SHA1(SHA1(password))).

use sha1::{Digest, Sha1};

/// The MariaDB-style hash of `password` (as `PASSWORD()` returns it).
pub fn native_hash(password: &str) -> String {
    let stage2 = Sha1::digest(Sha1::digest(password.as_bytes()));
    let hex: String = stage2.iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

/// Parse `*` + 40 hex digits.
pub fn parse_hash(s: &str) -> Option<[u8; 20]> {
    let hex = s.strip_prefix('*')?;
    if hex.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Check a client's scramble token against the stored hash.
pub fn verify(salt: &[u8], token: &[u8], stored: &[u8; 20]) -> bool {
    if token.len() != 20 {
        return false;
    }
    let mut h = Sha1::new();
    h.update(salt);
    h.update(stored);
    let mask = h.finalize();
    let stage1: Vec<u8> = token.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect();
    let check = Sha1::digest(&stage1);
    check
        .iter()
        .zip(stored.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// 20 random salt bytes, printable and never NUL (as MariaDB sends them).
pub fn new_salt() -> [u8; 20] {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut salt = [0u8; 20];
    for b in &mut salt {
        *b = rng.gen_range(0x21..0x7f);
    }
    salt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_client_scramble_verifies_and_a_wrong_one_does_not() {
        // The same hash MariaDB's PASSWORD('secret') returns.
        assert_eq!(
            native_hash("secret"),
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
        );
        let stored = parse_hash(&native_hash("secret")).unwrap();
        let salt = new_salt();
        let token = mysql_common::scramble::scramble_native(&salt, b"secret").unwrap();
        assert!(verify(&salt, &token, &stored));
        let wrong = mysql_common::scramble::scramble_native(&salt, b"Secret").unwrap();
        assert!(!verify(&salt, &wrong, &stored));
        assert!(!verify(&salt, &[], &stored));
        assert!(parse_hash("secret").is_none());
    }
}
