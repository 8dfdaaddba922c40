//! Percent-decoding of what a URL carries: query values (where `+` is a space) and path
//! parameters (where it is itself), so `/v1/accounts/ann%40team/resume` names `ann@team` on
//! both runtimes.

/// `text` with `%XX` escapes decoded (and `+` as a space when `plus_is_space`); an escape that
/// is not two hex digits stays as it is.
pub fn decode(text: &str, plus_is_space: bool) -> String {
    fn hex_value(byte: u8) -> Option<u8> {
        (byte as char).to_digit(16).map(|digit| digit as u8)
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let decoded = match bytes[index] {
            b'+' if plus_is_space => Some((b' ', 1)),
            b'%' if index + 2 < bytes.len() => match (hex_value(bytes[index + 1]), hex_value(bytes[index + 2])) {
                (Some(high), Some(low)) => Some((high * 16 + low, 3)),
                _ => None,
            },
            _ => None,
        };
        let (byte, width) = decoded.unwrap_or((bytes[index], 1));
        out.push(byte);
        index += width;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn escapes_are_decoded_and_plus_only_in_queries() {
        assert_eq!(decode("ann%40team", false), "ann@team");
        assert_eq!(decode("a+b%2", true), "a b%2");
        assert_eq!(decode("a+b", false), "a+b");
        assert_eq!(decode("%zz%41", false), "%zzA");
    }
}
