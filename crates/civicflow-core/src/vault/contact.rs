//! [`ContactDetails`] (validated and normalised once, when built) and their masked display
//! form, [`MaskedContact`].
//!
//! Text is handled by characters, never bytes, so a Chinese name is cut between characters
//! and counted as people count it. Nothing here ever puts a value into an error message.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::InvalidContact;

/// The most characters a name may have.
pub const NAME_MAX_CHARS: usize = 100;
/// The most characters an e-mail address may have (RFC 5321's path limit).
pub const EMAIL_MAX_CHARS: usize = 254;
/// The most characters a street address may have.
pub const ADDRESS_MAX_CHARS: usize = 300;
/// The fewest digits a phone number may have, country code included.
pub const PHONE_MIN_DIGITS: usize = 5;
/// The most digits a phone number may have, country code included (E.164).
pub const PHONE_MAX_DIGITS: usize = 15;

/// A requester's contact details. Every field is optional; each one present has been
/// validated and normalised:
///
/// - `name`: trimmed, 1 to 100 characters, no control or invisible formatting characters.
/// - `phone`: E.164, `+` and digits (`+8613812345678`). Spaces, `-`, `.`, `(`, `)` and
///   full-width digits are accepted on input; a number without a country code is taken as
///   Chinese (+86), with its trunk `0` dropped (`010 1234 5678` → `+861012345678`); `00`
///   is read as the international prefix.
/// - `email`: trimmed, `local@domain`, one `@`, a domain of dot-separated labels; the domain
///   is lower-cased.
/// - `address`: trimmed, 1 to 300 characters on one line.
///
/// `Debug` shows the masked form, so a stray `{:?}` never writes personal data to a log.
/// The strings are overwritten when the value is dropped (best effort: copies the
/// allocator made earlier are out of reach).
///
/// ```
/// use civicflow_core::vault::ContactDetails;
///
/// let details = ContactDetails::default()
///     .with_name("李伟")?
///     .with_phone("+86 138-1234-5678")?
///     .with_email("li.wei@Example.COM")?;
/// assert_eq!(details.phone(), Some("+8613812345678"));
/// assert_eq!(details.email(), Some("li.wei@example.com"));
/// assert_eq!(format!("{details:?}"),
///     r#"ContactDetails { name: Some("李*"), phone: Some("138****5678"), email: Some("l***@example.com"), address: None }"#);
/// # Ok::<(), civicflow_core::vault::InvalidContact>(())
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ContactDetails {
    name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
}

impl ContactDetails {
    /// Validates and builds contact details from optional raw values.
    ///
    /// # Errors
    /// [`InvalidContact`] naming the first field that is invalid and the rule it broke.
    pub fn new(
        name: Option<&str>,
        phone: Option<&str>,
        email: Option<&str>,
        address: Option<&str>,
    ) -> Result<Self, InvalidContact> {
        let mut details = Self::default();
        if let Some(name) = name {
            details = details.with_name(name)?;
        }
        if let Some(phone) = phone {
            details = details.with_phone(phone)?;
        }
        if let Some(email) = email {
            details = details.with_email(email)?;
        }
        if let Some(address) = address {
            details = details.with_address(address)?;
        }
        Ok(details)
    }

    /// These details with `name` set (validated).
    ///
    /// # Errors
    /// [`InvalidContact`] for field `name`.
    pub fn with_name(mut self, name: &str) -> Result<Self, InvalidContact> {
        let name = normalize_text(
            "name",
            name,
            NAME_MAX_CHARS,
            "must be at most 100 characters",
        )?;
        replace_wiped(&mut self.name, Some(name));
        Ok(self)
    }

    /// These details with `phone` set (validated and normalised to E.164).
    ///
    /// # Errors
    /// [`InvalidContact`] for field `phone`.
    pub fn with_phone(mut self, phone: &str) -> Result<Self, InvalidContact> {
        let phone = normalize_phone(phone)?;
        replace_wiped(&mut self.phone, Some(phone));
        Ok(self)
    }

    /// These details with `email` set (validated; the domain lower-cased).
    ///
    /// # Errors
    /// [`InvalidContact`] for field `email`.
    pub fn with_email(mut self, email: &str) -> Result<Self, InvalidContact> {
        let email = normalize_email(email)?;
        replace_wiped(&mut self.email, Some(email));
        Ok(self)
    }

    /// These details with `address` set (validated).
    ///
    /// # Errors
    /// [`InvalidContact`] for field `address`.
    pub fn with_address(mut self, address: &str) -> Result<Self, InvalidContact> {
        let address = normalize_text(
            "address",
            address,
            ADDRESS_MAX_CHARS,
            "must be at most 300 characters",
        )?;
        replace_wiped(&mut self.address, Some(address));
        Ok(self)
    }

    /// The name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The phone number in E.164 form (`+8613812345678`).
    pub fn phone(&self) -> Option<&str> {
        self.phone.as_deref()
    }

    /// The e-mail address.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// The street address.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.phone.is_none()
            && self.email.is_none()
            && self.address.is_none()
    }

    /// The masked form for display; see [`mask`].
    pub fn masked(&self) -> MaskedContact {
        mask(self)
    }

    pub(super) fn fields(&self) -> [&Option<String>; 4] {
        [&self.name, &self.phone, &self.email, &self.address]
    }
}

impl fmt::Debug for ContactDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = self.masked();
        f.debug_struct("ContactDetails")
            .field("name", &masked.name)
            .field("phone", &masked.phone)
            .field("email", &masked.email)
            .field("address", &masked.address)
            .finish()
    }
}

impl Drop for ContactDetails {
    fn drop(&mut self) {
        replace_wiped(&mut self.name, None);
        replace_wiped(&mut self.phone, None);
        replace_wiped(&mut self.email, None);
        replace_wiped(&mut self.address, None);
    }
}

/// Replaces `slot`, overwriting the old string's bytes first.
fn replace_wiped(slot: &mut Option<String>, value: Option<String>) {
    if let Some(old) = std::mem::replace(slot, value) {
        let mut bytes = old.into_bytes();
        super::crypto::wipe(&mut bytes);
    }
}

/// Contact details as a caller without the right to see them is shown them.
///
/// - name: Chinese names keep their first character (`李*`, `欧阳**` → `欧***`); Latin names
///   keep their first word and the initials of the others (`Li W***`); a one-word name
///   keeps its initial (`A***`); a single character shows as `*`.
/// - phone: `138****5678` (numbers with 11 or more digits keep the first 3 and last 4; +86
///   numbers are shown without the country code, others keep their `+`); shorter numbers
///   keep only their last 4 (8 to 10 digits) or last 2 digits.
/// - email: `l***@example.com` (a one-character local part shows as `***`).
/// - address: at most its first 6 characters and never more than half of it, then `…`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MaskedContact {
    /// The masked name.
    pub name: Option<String>,
    /// The masked phone number.
    pub phone: Option<String>,
    /// The masked e-mail address.
    pub email: Option<String>,
    /// The masked street address.
    pub address: Option<String>,
}

/// Masks contact details for display to a caller whose role may not see them.
pub fn mask(details: &ContactDetails) -> MaskedContact {
    MaskedContact {
        name: details.name.as_deref().map(mask_name),
        phone: details.phone.as_deref().map(mask_phone),
        email: details.email.as_deref().map(mask_email),
        address: details.address.as_deref().map(mask_address),
    }
}

/// Whether `c` is a CJK ideograph (the scripts where a name is a few characters without
/// spaces).
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}'
        | '\u{30000}'..='\u{3134F}')
}

fn mask_name(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    match words.as_slice() {
        [] => "*".to_owned(),
        [word] => {
            let mut chars = word.chars();
            let count = word.chars().count();
            match chars.next() {
                None => "*".to_owned(),
                Some(_) if count == 1 => "*".to_owned(),
                Some(first) if word.chars().any(is_cjk) => {
                    let mut out = String::from(first);
                    out.extend(std::iter::repeat_n('*', count - 1));
                    out
                }
                Some(first) => format!("{first}***"),
            }
        }
        [first, rest @ ..] => {
            let mut out = (*first).to_owned();
            for word in rest {
                out.push(' ');
                let mut chars = word.chars();
                match (chars.next(), chars.next()) {
                    (Some(initial), Some(_)) => {
                        out.push(initial);
                        out.push_str("***");
                    }
                    _ => out.push_str("***"),
                }
            }
            out
        }
    }
}

fn mask_phone(phone: &str) -> String {
    if let Some(national) = phone.strip_prefix("+86") {
        mask_digits(national)
    } else if let Some(digits) = phone.strip_prefix('+') {
        format!("+{}", mask_digits(digits))
    } else {
        mask_digits(phone)
    }
}

fn mask_digits(digits: &str) -> String {
    let chars: Vec<char> = digits.chars().collect();
    let n = chars.len();
    let (keep_front, keep_back) = match n {
        11.. => (3, 4),
        8..=10 => (0, 4),
        3..=7 => (0, 2),
        _ => (0, 0),
    };
    let mut out: String = chars.iter().take(keep_front).collect();
    out.extend(std::iter::repeat_n('*', n - keep_front - keep_back));
    out.extend(chars.iter().skip(n - keep_back));
    out
}

fn mask_email(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let mut chars = local.chars();
    let local = match (chars.next(), chars.next()) {
        (Some(first), Some(_)) => format!("{first}***"),
        _ => "***".to_owned(),
    };
    if domain.is_empty() {
        local
    } else {
        format!("{local}@{domain}")
    }
}

fn mask_address(address: &str) -> String {
    let count = address.chars().count();
    let keep = (count / 2).min(6);
    let prefix: String = address.chars().take(keep).collect();
    format!("{}…", prefix.trim_end())
}

/// Invisible formatting characters (zero-width, bidirectional overrides, the BOM) that can
/// make a displayed value lie about its content.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}')
}

fn normalize_text(
    field: &'static str,
    text: &str,
    max_chars: usize,
    too_long: &'static str,
) -> Result<String, InvalidContact> {
    let text = text.trim();
    if text.is_empty() {
        return Err(InvalidContact::new(field, "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(InvalidContact::new(field, too_long));
    }
    if text.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(InvalidContact::new(
            field,
            "must be one line without control or invisible formatting characters",
        ));
    }
    Ok(text.to_owned())
}

/// Normalises a phone number to E.164 (`+` and 5 to 15 digits), reading a number without a
/// country code as Chinese (+86). Used for storing and for searching, so that every
/// spelling of one number finds the same people.
///
/// ```
/// use civicflow_core::vault::normalize_phone;
///
/// assert_eq!(normalize_phone("138 1234 5678").as_deref(), Ok("+8613812345678"));
/// assert_eq!(normalize_phone("+86 (138) 1234-5678").as_deref(), Ok("+8613812345678"));
/// assert_eq!(normalize_phone("0086 13812345678").as_deref(), Ok("+8613812345678"));
/// assert_eq!(normalize_phone("010-6512 3456").as_deref(), Ok("+861065123456"));
/// assert!(normalize_phone("call me").is_err());
/// ```
///
/// # Errors
/// [`InvalidContact`] for field `phone`.
pub fn normalize_phone(text: &str) -> Result<String, InvalidContact> {
    let mut digits = String::new();
    let mut plus = false;
    for c in text.trim().chars() {
        // Full-width forms, as Chinese input methods type them.
        let c = match c {
            '０'..='９' => char::from_u32(u32::from(c) - 0xFF10 + u32::from('0')).unwrap_or(c),
            '＋' => '+',
            '－' | '（' | '）' | '\u{3000}' => ' ',
            c => c,
        };
        match c {
            '0'..='9' => digits.push(c),
            '+' if digits.is_empty() && !plus => plus = true,
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => {
                return Err(InvalidContact::new(
                    "phone",
                    "may contain only digits, spaces, - . ( ) and one leading +",
                ))
            }
        }
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else if let Some(rest) = digits.strip_prefix('0') {
        format!("86{rest}")
    } else if digits.len() == 13 && digits.starts_with("861") {
        // "86 138…" without the +: a Chinese mobile written with its country code.
        digits
    } else {
        format!("86{digits}")
    };
    // "+86 010…": a trunk 0 written after the country code.
    let international = match international.strip_prefix("860") {
        Some(rest) => format!("86{rest}"),
        None => international,
    };
    if international.len() < PHONE_MIN_DIGITS || international.len() > PHONE_MAX_DIGITS {
        return Err(InvalidContact::new(
            "phone",
            "must have 5 to 15 digits with its country code (a number without one is taken as Chinese, +86)",
        ));
    }
    if international.starts_with('0') {
        return Err(InvalidContact::new(
            "phone",
            "a country code cannot start with 0",
        ));
    }
    if let Some(national) = international.strip_prefix("86") {
        if national.len() < 5 || national.len() > 11 {
            return Err(InvalidContact::new(
                "phone",
                "a Chinese (+86) number has 5 to 11 digits after the country code",
            ));
        }
    }
    Ok(format!("+{international}"))
}

fn normalize_email(text: &str) -> Result<String, InvalidContact> {
    let text = text.trim();
    let invalid = |rule| Err(InvalidContact::new("email", rule));
    if text.is_empty() {
        return invalid("must not be empty");
    }
    if text.chars().count() > EMAIL_MAX_CHARS {
        return invalid("must be at most 254 characters");
    }
    let Some((local, domain)) = text.split_once('@') else {
        return invalid("must look like name@example.com");
    };
    if domain.contains('@') {
        return invalid("must contain exactly one @");
    }
    if local.is_empty() || local.chars().count() > 64 {
        return invalid("the part before @ must be 1 to 64 characters");
    }
    if local.chars().any(|c| {
        c.is_whitespace() || c.is_control() || is_invisible(c) || "\"(),:;<>[\\]".contains(c)
    }) {
        return invalid(
            "the part before @ must not contain spaces, control characters or \"(),:;<>[\\]",
        );
    }
    let domain = domain.to_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return invalid("the domain must have a dot, as in example.com");
    }
    for label in &labels {
        let count = label.chars().count();
        if count == 0 || count > 63 {
            return invalid("each part of the domain must be 1 to 63 characters");
        }
        if !label.chars().all(|c| c.is_alphanumeric() || c == '-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return invalid("the domain may contain only letters, digits, - and dots");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return invalid("the domain must end in a name, not a number");
    }
    Ok(format!("{local}@{domain}"))
}

/// The stored form of contact details, before encryption:
///
/// ```text
/// fmt=1 | 4 × field (name, phone, email, address): 0 (absent) or 1 | len u16 LE | UTF-8
///       | zero padding to a multiple of 64 bytes (so a ciphertext's length says little)
/// ```
pub(super) const PLAINTEXT_FORMAT: u8 = 1;
const PAD_TO: usize = 64;

impl ContactDetails {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PAD_TO * 4);
        out.push(PLAINTEXT_FORMAT);
        for field in self.fields() {
            match field {
                None => out.push(0),
                Some(text) => {
                    out.push(1);
                    // Validated fields are far below 64 KiB (at most 300 characters).
                    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&text.as_bytes()[..usize::from(len)]);
                }
            }
        }
        let padded = out.len().div_ceil(PAD_TO) * PAD_TO;
        out.resize(padded, 0);
        out
    }

    /// Decodes [`ContactDetails::encode`]'s bytes and validates every field again.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, &'static str> {
        let (&format, mut rest) = bytes.split_first().ok_or("empty plaintext")?;
        if format != PLAINTEXT_FORMAT {
            return Err("unknown plaintext format");
        }
        let mut fields: [Option<String>; 4] = Default::default();
        for field in &mut fields {
            let (&present, after) = rest.split_first().ok_or("plaintext truncated")?;
            rest = after;
            match present {
                0 => {}
                1 => {
                    let (len, after) = rest.split_at_checked(2).ok_or("plaintext truncated")?;
                    let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
                    let (text, after) = after.split_at_checked(len).ok_or("plaintext truncated")?;
                    rest = after;
                    let text = std::str::from_utf8(text).map_err(|_| "a field is not UTF-8")?;
                    *field = Some(text.to_owned());
                }
                _ => return Err("bad field marker in plaintext"),
            }
        }
        if rest.iter().any(|&b| b != 0) {
            return Err("trailing bytes in plaintext");
        }
        let [name, phone, email, address] = &fields;
        let details = Self::new(
            name.as_deref(),
            phone.as_deref(),
            email.as_deref(),
            address.as_deref(),
        )
        .map_err(|_| "a decrypted field does not validate");
        for field in &mut fields {
            replace_wiped(field, None);
        }
        details
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(name: Option<&str>, phone: Option<&str>) -> ContactDetails {
        ContactDetails::new(name, phone, None, None).expect("valid test details")
    }

    #[test]
    fn chinese_names_are_masked_by_character() {
        assert_eq!(mask_name("李伟"), "李*");
        assert_eq!(mask_name("王小明"), "王**");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("李"), "*");
        assert_eq!(mask_name("迪丽热巴·迪力木拉提"), "迪*********");
        // By characters, never bytes: a multi-byte first character stays whole.
        assert_eq!(mask_name("𠀋一"), "𠀋*");
    }

    #[test]
    fn latin_names_keep_the_first_word_and_initials() {
        assert_eq!(mask_name("Li Wei"), "Li W***");
        assert_eq!(mask_name("Mary Ann Smith"), "Mary A*** S***");
        assert_eq!(mask_name("Alice"), "A***");
        assert_eq!(mask_name("Al"), "A***");
        assert_eq!(mask_name("X"), "*");
        // A one-letter second word is not shown as itself.
        assert_eq!(mask_name("Li W"), "Li ***");
    }

    #[test]
    fn phones_are_masked_and_plus_86_is_dropped_for_display() {
        let masked = |p: &str| details(None, Some(p)).masked().phone.expect("a phone");
        assert_eq!(masked("13812345678"), "138****5678");
        assert_eq!(masked("+86 138 1234 5678"), "138****5678");
        assert_eq!(masked("+8613812345678"), "138****5678");
        assert_eq!(masked("010-65123456"), "******3456"); // 10 digits: last 4 only
        assert_eq!(masked("+44 20 7946 0958"), "+442*****0958");
        assert_eq!(masked("+1 415 555 2671"), "+141****2671");
        assert_eq!(masked("12345"), "***45");
    }

    #[test]
    fn emails_and_addresses_are_masked() {
        let d = ContactDetails::new(
            None,
            None,
            Some("li.wei@example.com"),
            Some("北京市通州区通惠社区12号楼3单元501"),
        )
        .expect("valid");
        let m = d.masked();
        assert_eq!(m.email.as_deref(), Some("l***@example.com"));
        assert_eq!(m.address.as_deref(), Some("北京市通州区…"));
        assert_eq!(mask_email("a@example.com"), "***@example.com");
        assert_eq!(mask_address("通惠路"), "通…");
        assert_eq!(mask_address("甲"), "…");
        assert_eq!(mask_address("12 Baker Street"), "12 Bak…");
        assert_eq!(mask(&ContactDetails::default()), MaskedContact::default());
    }

    #[test]
    fn short_values_are_never_shown_whole() {
        for name in ["李", "X", "Li W", "李伟", "Al", "A B"] {
            let m = mask_name(name);
            assert_ne!(m, name);
            assert!(m.contains('*'), "{m}");
        }
        for address in ["甲", "通惠", "a b"] {
            assert!(!mask_address(address).contains(address));
        }
    }

    #[test]
    fn phone_spellings_normalise_to_one_form() {
        for spelling in [
            "13812345678",
            "138 1234 5678",
            "138-1234-5678",
            "+86 138 1234 5678",
            "+86-13812345678",
            "0086 138 1234 5678",
            "86 13812345678",
            "(+86) 138.1234.5678",
            "１３８１２３４５６７８",
            "＋８６　１３８１２３４５６７８",
        ] {
            assert_eq!(
                normalize_phone(spelling).as_deref(),
                Ok("+8613812345678"),
                "{spelling}"
            );
        }
        assert_eq!(
            normalize_phone("+86 010 6512 3456").as_deref(),
            Ok("+861065123456")
        );
        assert_eq!(
            normalize_phone("+1 (415) 555-2671").as_deref(),
            Ok("+14155552671")
        );
    }

    #[test]
    fn bad_phones_name_the_field_and_never_the_value() {
        for bad in [
            "",
            "abc",
            "138 1234 567a",
            "1+38",
            "+",
            "123",
            "+0123456",
            "1381234567890",
            "+1234567890123456",
        ] {
            let err = normalize_phone(bad).expect_err(bad);
            assert_eq!(err.field, "phone", "{bad}");
            if bad.len() > 2 {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
    }

    #[test]
    fn fields_are_validated_with_their_names() {
        let field = |r: Result<ContactDetails, InvalidContact>| r.expect_err("invalid").field;
        assert_eq!(field(ContactDetails::default().with_name("  ")), "name");
        assert_eq!(field(ContactDetails::default().with_name("李\n伟")), "name");
        assert_eq!(
            field(ContactDetails::default().with_name("李\u{202E}伟")),
            "name"
        );
        assert_eq!(
            field(ContactDetails::default().with_name(&"李".repeat(101))),
            "name"
        );
        assert!(ContactDetails::default()
            .with_name(&"李".repeat(100))
            .is_ok());
        assert_eq!(
            field(ContactDetails::default().with_address(&"路".repeat(301))),
            "address"
        );
        assert_eq!(
            field(ContactDetails::default().with_address("a\tb")),
            "address"
        );
        for bad in [
            "li.wei",
            "li@wei",
            "@example.com",
            "li@@example.com",
            "li wei@example.com",
            "li@-x.com",
            "li@example.123",
            "li@.com",
        ] {
            assert_eq!(
                field(ContactDetails::default().with_email(bad)),
                "email",
                "{bad}"
            );
        }
        let ok = ContactDetails::default()
            .with_email(" Li.Wei+tag@Mail.Example.CN ")
            .expect("valid");
        assert_eq!(ok.email(), Some("Li.Wei+tag@mail.example.cn"));
        assert!(ContactDetails::default()
            .with_email("张三@例子.中国")
            .is_ok());
    }

    #[test]
    fn debug_shows_only_masked_values() {
        let d = ContactDetails::new(
            Some("李伟"),
            Some("13812345678"),
            Some("li.wei@example.com"),
            Some("北京市通州区通惠社区12号楼"),
        )
        .expect("valid");
        let debug = format!("{d:?}");
        for secret in ["李伟", "13812345678", "li.wei", "通惠社区12号楼"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn plaintext_round_trips_is_padded_and_refuses_bad_bytes() {
        let d = ContactDetails::new(
            Some("李伟"),
            Some("+86 138 1234 5678"),
            None,
            Some("北京市通州区通惠社区12号楼"),
        )
        .expect("valid");
        let bytes = d.encode();
        assert_eq!(bytes.len() % PAD_TO, 0);
        assert_eq!(ContactDetails::decode(&bytes), Ok(d.clone()));
        assert_eq!(
            ContactDetails::decode(&ContactDetails::default().encode()),
            Ok(ContactDetails::default())
        );
        // Every truncation and every single-byte change is an error or another valid value,
        // never a panic.
        for len in 0..bytes.len() {
            let _ = ContactDetails::decode(&bytes[..len]);
        }
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut damaged = bytes.clone();
                damaged[i] ^= flip;
                let _ = ContactDetails::decode(&damaged);
            }
        }
        assert!(ContactDetails::decode(&[]).is_err());
        assert!(ContactDetails::decode(&[2, 0, 0, 0, 0]).is_err());
        assert!(ContactDetails::decode(&[1, 1, 0xFF, 0xFF]).is_err());
    }

    #[test]
    fn normalisation_is_idempotent() {
        let d = ContactDetails::new(
            Some(" 李伟 "),
            Some("0086 (10) 6512-3456"),
            Some("a@B.cn"),
            Some(" 通惠路 "),
        )
        .expect("valid");
        let again =
            ContactDetails::new(d.name(), d.phone(), d.email(), d.address()).expect("valid");
        assert_eq!(again, d);
    }
}
