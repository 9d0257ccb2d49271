//! Open311 POST bodies: `application/x-www-form-urlencoded; charset=utf-8`, read strictly.
//!
//! The query-string decoder of `super::decode` is lenient (a read with an odd query still
//! answers); a write is not: a malformed percent-escape or a name or value that is not UTF-8
//! once decoded is refused with a 400 that says which, so a client never files something
//! other than what it meant. `+` is a space, as the format says. Pairs are kept in order;
//! what a repeated name means is the caller's to decide.

/// Why a body cannot be read as a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError(pub String);

/// Whether `content_type` (the header's value) is a form in UTF-8: the media type
/// `application/x-www-form-urlencoded` (any case) with no `charset`, or `charset=utf-8`
/// (any case, quoted or not). Other parameters are ignored.
///
/// # Errors
/// What is wrong with it, in words.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), FormError> {
    let Some(content_type) = content_type else {
        return Err(FormError(
            "no Content-Type; send application/x-www-form-urlencoded; charset=utf-8".into(),
        ));
    };
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(FormError(format!(
            "the body must be application/x-www-form-urlencoded; charset=utf-8, not {}",
            super::errors::echo(media)
        )));
    }
    for parameter in parts {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if name.trim().eq_ignore_ascii_case("charset") {
            let value = value.trim().trim_matches('"');
            if !value.eq_ignore_ascii_case("utf-8") {
                return Err(FormError(format!(
                    "the body's charset must be utf-8, not {}",
                    super::errors::echo(value)
                )));
            }
        }
    }
    Ok(())
}

/// The name and value pairs of a form body, in order. Empty pieces (`a=1&&b=2`, a trailing
/// `&`) are skipped; a piece without `=` is a name with an empty value.
///
/// # Errors
/// A malformed percent-escape (`%` not followed by two hex digits), or a name or value that
/// is not UTF-8 once decoded; the message says which pair (by its position).
pub fn parse(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut pairs = Vec::new();
    for (i, piece) in body.split(|b| *b == b'&').enumerate() {
        if piece.is_empty() {
            continue;
        }
        let (name, value) = match piece.iter().position(|b| *b == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &[][..]),
        };
        let decode = |bytes: &[u8], what: &str| {
            decode_strict(bytes).map_err(|reason| {
                FormError(format!(
                    "the body is not a valid form: the {what} of pair {} {reason}",
                    i + 1
                ))
            })
        };
        let name = decode(name, "name")?;
        let value = decode(value, &format!("value of {}", super::errors::echo(&name)))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Percent-decodes one name or value (`+` is a space), strictly.
fn decode_strict(bytes: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
                let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) else {
                    return Err("has a % that is not followed by two hex digits");
                };
                // Two hex digits are at most 255.
                out.push(u8::try_from(high * 16 + low).unwrap_or(u8::MAX));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(body: &str) -> Vec<(String, String)> {
        parse(body.as_bytes()).expect("a valid form")
    }

    #[test]
    fn decodes_pairs_in_order() {
        assert_eq!(
            pairs("a=1&b=x+y%20z&&c&attribute%5Bk%5D%5B%5D=%E4%B8%AD&d=&"),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x y z".to_owned()),
                ("c".to_owned(), String::new()),
                ("attribute[k][]".to_owned(), "中".to_owned()),
                ("d".to_owned(), String::new()),
            ]
        );
        assert_eq!(pairs("a=b=c"), vec![("a".to_owned(), "b=c".to_owned())]);
        assert_eq!(pairs("%2B=%2b"), vec![("+".to_owned(), "+".to_owned())]);
        assert_eq!(pairs("中=文"), vec![("中".to_owned(), "文".to_owned())]);
        assert!(pairs("").is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_form_in_utf_8() {
        for body in [
            &b"a=%"[..],
            b"a=%4",
            b"a=%zz",
            b"a=%FF",
            b"%C3=1",
            b"a=\xff\xfe",
            b"ok=1&bad=%E4%B8",
        ] {
            let error = parse(body).expect_err("refused");
            assert!(error.0.contains("pair"), "{error:?}");
        }
    }

    #[test]
    fn content_types() {
        for ok in [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=utf-8",
            "Application/X-WWW-Form-Urlencoded;charset=UTF-8",
            "application/x-www-form-urlencoded; charset=\"utf-8\"; foo=bar",
        ] {
            assert_eq!(check_content_type(Some(ok)), Ok(()), "{ok}");
        }
        for bad in [
            None,
            Some("application/json"),
            Some("multipart/form-data; boundary=x"),
            Some("application/x-www-form-urlencoded; charset=latin1"),
            Some(""),
        ] {
            assert!(check_content_type(bad).is_err(), "{bad:?}");
        }
    }
}
