//! One key per name: which of a record's fields a formatter writes.
//!
//! The rule (documented for users in the [module docs](super)):
//!
//! - call-site fields win over enriched fields, which win over context fields;
//! - within one source, the later field wins, and is written where it stands (the earlier ones
//!   are skipped); in a context, custom fields come after the standard ones, so a custom field
//!   named like a standard one wins;
//! - two keys are "the same" when the formatter would write them the same: the exact string for
//!   JSON, the sanitized key (`a b` and `a_b` are both `a_b`) for logfmt and the console.
//!
//! Renaming a field named like one of the formatter's own keys (`fields.<name>`) is the
//! formatters' business and is injective, so it never makes two keys the same or two same keys
//! different; see [`super::is_reserved_key`].
//!
//! Cost: nothing is allocated. A plain record (no enriched fields, no context, at most eight
//! call-site fields whose keys differ in their first or last byte, or for JSON in their length:
//! the common case) costs one pass over its keys that computes a small integer [`tag`] per key
//! and compares it with the earlier ones; the same pass tells whether any key may need renaming
//! (see [`super::may_be_reserved`]), so that the formatter skips that check too. Otherwise each
//! key is compared with the keys that could hide it, first by tag, then in full; a 64-bit mask
//! of the tags of call-site and enriched keys lets most context keys skip those comparisons.
//! The comparisons are quadratic in the number of fields, which is small.

use super::escape::logfmt_key_byte;
use super::may_be_reserved;
use super::redact::{redacted, Redaction};
use crate::field::{Field, Value};
use crate::record::LogRecord;

/// A record's call-site fields, when they are all it has and are plainly distinct.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plain<'a> {
    /// The fields, to write all and in order.
    pub(crate) fields: &'a [Field<'a>],
    /// False when no key is one that JSON and logfmt rename (see
    /// [`super::may_be_reserved`]); true when some key may be.
    pub(crate) may_rename: bool,
}

/// The record's fields when it is plain: no enriched fields, no context, and call-site keys
/// that are plainly distinct (see [`plainly_distinct`]); the formatter then writes them all, in
/// order. Otherwise `None`, and the formatter writes through [`for_each_field_checked`].
#[inline(always)]
pub(crate) fn plain_fields<'a, const SANITIZED: bool>(record: &LogRecord<'a>) -> Option<Plain<'a>> {
    let fields = record.fields();
    if !record.enriched().is_empty() || record.context().is_some() {
        return None;
    }
    let may_rename = plainly_distinct::<SANITIZED>(fields)?;
    Some(Plain { fields, may_rename })
}

/// The one walk every formatter makes over a record's fields: calls `write(key, value,
/// may_rename)` for each field the one-key-per-name rule keeps, in writing order, with the
/// value of a name `redaction` covers replaced by `[redacted]`. `may_rename` is false when the
/// key is known not to be one the formatter renames (see [`Plain::may_rename`]), so the
/// formatter can skip that check.
#[inline(always)]
pub(crate) fn for_each_written_field<const SANITIZED: bool>(
    record: &LogRecord<'_>,
    redaction: &Redaction,
    mut write: impl FnMut(&str, &Value<'_>, bool),
) {
    match plain_fields::<SANITIZED>(record) {
        // Two loops, so that the common one calls `write` with a constant `false`.
        Some(plain) if !plain.may_rename => {
            for field in plain.fields {
                let key = field.key();
                write(key, redacted(redaction, key, field.value()), false);
            }
        }
        Some(plain) => {
            for field in plain.fields {
                let key = field.key();
                write(key, redacted(redaction, key, field.value()), true);
            }
        }
        None => for_each_field_checked::<SANITIZED>(record, &mut |key, value| {
            write(key, redacted(redaction, key, value), true);
        }),
    }
}

/// Calls `write` with the key and value of each field of `record` that the one-key-per-name
/// rule keeps, in writing order: call-site fields, enriched fields, context fields.
/// `SANITIZED` selects the key identity: logfmt keys (true) or exact strings (false). For
/// records that [`plain_fields`] does not take.
#[inline(never)]
pub(crate) fn for_each_field_checked<const SANITIZED: bool>(
    record: &LogRecord<'_>,
    write: &mut dyn FnMut(&str, &Value<'_>),
) {
    let fields = record.fields();
    let enriched = record.enriched();
    // Call-site fields: the last of equal keys wins.
    if distinct::<SANITIZED>(fields) {
        for field in fields {
            write(field.key(), field.value());
        }
    } else {
        for (i, field) in fields.iter().enumerate() {
            let t = tag::<SANITIZED>(field.key());
            if !contains::<SANITIZED>(&fields[i + 1..], field.key(), t) {
                write(field.key(), field.value());
            }
        }
    }
    let mut mask = 0;
    for field in fields {
        mask |= bit(tag::<SANITIZED>(field.key()));
    }
    // Enriched fields: not when a call-site field has the key; the last of equal keys wins.
    let call_site_mask = mask;
    for (i, field) in enriched.iter().enumerate() {
        let key = field.key();
        let t = tag::<SANITIZED>(key);
        mask |= bit(t);
        let shadowed = (call_site_mask & bit(t) != 0 && contains::<SANITIZED>(fields, key, t))
            || contains::<SANITIZED>(&enriched[i + 1..], key, t);
        if !shadowed {
            write(key, field.value());
        }
    }
    // Context fields: not when a call-site or enriched field has the key; standard fields come
    // first and then custom fields, and the last of equal keys wins.
    let Some(ctx) = record.context() else {
        return;
    };
    let custom = ctx.custom();
    // How many standard fields are set: the custom fields are the last `custom.len()` visited.
    let mut standard = 0;
    if !custom.is_empty() {
        ctx.for_each_field(|_, _| standard += 1);
        standard -= custom.len().min(standard);
    }
    let mut index = 0;
    ctx.for_each_field(|key, value| {
        let later = if index < standard {
            custom
        } else {
            custom.get(index - standard + 1..).unwrap_or(&[])
        };
        index += 1;
        let t = tag::<SANITIZED>(key);
        if mask & bit(t) != 0
            && (contains::<SANITIZED>(fields, key, t) || contains::<SANITIZED>(enriched, key, t))
        {
            return;
        }
        if later
            .iter()
            .any(|(k, _)| tag::<SANITIZED>(k) == t && same::<SANITIZED>(k, key))
        {
            return;
        }
        write(key, &value);
    });
}

/// `Some` when `fields` are few (at most 8) and no two of their keys have the same [`tag`]:
/// then no two are the same key. `None` does not mean that two are (the caller checks in
/// full). The `Some` tells whether a key may be one that is renamed.
#[inline(always)]
fn plainly_distinct<const SANITIZED: bool>(fields: &[Field<'_>]) -> Option<bool> {
    const MAX: usize = 8;
    if fields.len() > MAX {
        return None;
    }
    let mut tags = [0u32; MAX];
    let mut may_rename = false;
    for (i, field) in fields.iter().enumerate() {
        // Truncating the tag keeps it a function of the key.
        let t = tag::<SANITIZED>(field.key()) as u32;
        if tags[..i].contains(&t) {
            return None;
        }
        tags[i & (MAX - 1)] = t;
        // The tag ends with the first and last byte (sanitized, which changes no byte of a
        // reserved key).
        may_rename |= may_be_reserved((t >> 8) as u8, t as u8);
    }
    Some(may_rename)
}

/// Whether no two of `fields` have the same key.
#[inline]
fn distinct<const SANITIZED: bool>(fields: &[Field<'_>]) -> bool {
    const MAX: usize = 16;
    if fields.len() > MAX {
        return distinct_many::<SANITIZED>(fields);
    }
    let mut tags = [0u64; MAX];
    for (i, field) in fields.iter().enumerate() {
        let t = tag::<SANITIZED>(field.key());
        for (j, &earlier) in tags[..i].iter().enumerate() {
            if earlier == t && same::<SANITIZED>(fields[j].key(), field.key()) {
                return false;
            }
        }
        tags[i] = t;
    }
    true
}

/// [`distinct`] for more fields than it keeps tags for.
#[cold]
fn distinct_many<const SANITIZED: bool>(fields: &[Field<'_>]) -> bool {
    fields.iter().enumerate().all(|(i, field)| {
        let key = field.key();
        !contains::<SANITIZED>(&fields[i + 1..], key, tag::<SANITIZED>(key))
    })
}

/// Whether one of `fields` has `key` (whose tag is `tag`).
#[inline]
fn contains<const SANITIZED: bool>(fields: &[Field<'_>], key: &str, key_tag: u64) -> bool {
    fields
        .iter()
        .any(|f| tag::<SANITIZED>(f.key()) == key_tag && same::<SANITIZED>(f.key(), key))
}

/// A summary of a key that equal keys share: the length, first and last byte for exact keys;
/// the first and last byte of the sanitized key for logfmt keys (sanitizing can change the
/// length, but maps a key's first and last character from its first and last byte alone).
#[inline]
fn tag<const SANITIZED: bool>(key: &str) -> u64 {
    let bytes = key.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) if SANITIZED => {
            u64::from(logfmt_key_byte(first)) << 8 | u64::from(logfmt_key_byte(last))
        }
        (Some(&first), Some(&last)) => {
            (bytes.len() as u64) << 16 | u64::from(first) << 8 | u64::from(last)
        }
        // The empty key: written as `_` in logfmt.
        _ if SANITIZED => u64::from(b'_') << 8 | u64::from(b'_'),
        _ => 0,
    }
}

/// The bit of `tag` in a 64-bit mask of tags.
#[inline]
fn bit(tag: u64) -> u64 {
    1 << (tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

/// Whether `a` and `b` are written as the same key.
#[inline]
fn same<const SANITIZED: bool>(a: &str, b: &str) -> bool {
    if SANITIZED {
        a == b || sanitized(a).eq(sanitized(b))
    } else {
        a == b
    }
}

/// The bytes of `key` as logfmt writes it: one byte per character, `_` for a character not
/// allowed in a bare key, and `_` for the empty key (see `escape::write_logfmt_key`).
fn sanitized(key: &str) -> impl Iterator<Item = u8> + '_ {
    let bytes = key.as_bytes();
    bytes
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .map(|&b| logfmt_key_byte(b))
        .chain(bytes.is_empty().then_some(b'_'))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn written(key: &str) -> Vec<u8> {
        let mut out = BytesMut::new();
        super::super::escape::write_logfmt_key(&mut out, key);
        out.to_vec()
    }

    #[test]
    fn sanitized_keys_and_tags_match_what_logfmt_writes() {
        let keys = [
            "",
            "_",
            "a",
            "a b",
            "a_b",
            "a\nb",
            "é",
            "_é",
            "日本",
            "__",
            "ab",
            "user_id",
            "a=b",
            "🚀x",
            "x🚀",
            "x\u{2028}",
            "fields.level",
        ];
        for a in keys {
            assert_eq!(sanitized(a).collect::<Vec<_>>(), written(a), "{a:?}");
            for b in keys {
                let same_written = written(a) == written(b);
                assert_eq!(same::<true>(a, b), same_written, "{a:?} {b:?}");
                if same_written {
                    assert_eq!(tag::<true>(a), tag::<true>(b), "{a:?} {b:?}");
                }
                assert_eq!(same::<false>(a, b), a == b);
                if a == b {
                    assert_eq!(tag::<false>(a), tag::<false>(b));
                }
            }
        }
    }

    #[test]
    fn distinct_finds_repeats_in_short_and_long_lists() {
        let names: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let mut fields: Vec<Field<'_>> = names.iter().map(|n| Field::new(n, Value::Null)).collect();
        for n in [0, 1, 2, 5, 16, 17, 40] {
            assert!(distinct::<false>(&fields[..n]));
            assert!(distinct::<true>(&fields[..n]));
        }
        fields[39] = Field::new("k3", Value::Null);
        assert!(!distinct::<false>(&fields));
        fields[10] = Field::new("k_3", Value::Null);
        fields[3] = Field::new("k 3", Value::Null);
        fields[39] = Field::new("k39", Value::Null);
        assert!(distinct::<false>(&fields[..16]));
        assert!(!distinct::<true>(&fields[..16]));
        assert!(!distinct::<true>(&fields));
    }
}
