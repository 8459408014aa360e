//! File names for user and session ids: any id maps to one safe name and
//! back. Letters, digits, `-` and `_` stay; every other byte is `%XX`.
//! So no name is empty, `.`, `..`, hidden, or holds a `/`.

/// Longest id that gets a file name.
const MAX_ID: usize = 128;
/// Longest file name made: with `.snap.corrupt` it stays under the 255
/// bytes of a file name.
const MAX_NAME: usize = 240;

/// The file name of an id, `None` when it is empty or too long.
pub(super) fn encode(id: &str) -> Option<String> {
    if id.is_empty() || id.len() > MAX_ID {
        return None;
    }
    let mut out = String::with_capacity(id.len());
    for &b in id.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    (out.len() <= MAX_NAME).then_some(out)
}

/// The id a file name stands for, `None` for a name [`encode`] never makes.
pub(super) fn decode(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                let b = u8::from_str_radix(hex, 16).ok()?;
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    return None;
                }
                out.push(b);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    let id = String::from_utf8(out).ok()?;
    (encode(&id)? == name).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_round_trips_to_a_safe_name() {
        for id in ["alice", "a/b", "..", ".", "x y", "ü", "%41", "a\0b", "-_"] {
            let name = encode(id).unwrap();
            assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
            assert_eq!(decode(&name).as_deref(), Some(id));
        }
        assert_eq!(encode(""), None);
        assert_eq!(encode(&"a".repeat(129)), None);
        // escaped bytes take three: a name that would pass 240 is refused
        assert_eq!(encode(&".".repeat(81)), None);
        assert!(encode(&".".repeat(80)).is_some());
        for foreign in ["a.b", "%4", "%41", "%zz", "", "%2f"] {
            assert_eq!(decode(foreign), None, "{foreign}");
        }
    }
}
