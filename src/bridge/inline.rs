//! Small buffers that live on the stack and spill to the heap only past their inline size, so
//! that a bridged record with a usual number of fields allocates nothing.

use crate::field::{Field, Value};

/// Up to `N` items inline, the rest in a `Vec` (which allocates only when used).
pub(crate) struct Inline<T, const N: usize> {
    items: [Option<T>; N],
    len: usize,
    spill: Vec<T>,
}

impl<T, const N: usize> Inline<T, N> {
    pub(crate) fn new() -> Self {
        Inline {
            items: std::array::from_fn(|_| None),
            len: 0,
            spill: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        if self.len < N {
            self.items[self.len] = Some(item);
            self.len += 1;
        } else {
            self.spill.push(item);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.items[..self.len].iter().flatten().chain(&self.spill)
    }
}

/// A record's fields, contiguous as [`Pipeline::log`](crate::Pipeline) takes them: `N` inline,
/// all of them moved to a `Vec` past that.
pub(crate) struct Fields<'a, const N: usize> {
    inline: [Field<'a>; N],
    len: usize,
    spill: Vec<Field<'a>>,
}

impl<'a, const N: usize> Fields<'a, N> {
    pub(crate) fn new() -> Self {
        Fields {
            inline: [Field::new("", Value::Null); N],
            len: 0,
            spill: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, field: Field<'a>) {
        if self.spill.is_empty() && self.len < N {
            self.inline[self.len] = field;
            self.len += 1;
        } else {
            if self.spill.is_empty() {
                self.spill.reserve(2 * N);
                self.spill.extend_from_slice(&self.inline[..self.len]);
            }
            self.spill.push(field);
        }
    }

    /// True if a field named `key` is in already.
    #[allow(dead_code)] // the `log` bridge keeps duplicate keys as `log` gave them
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.as_slice().iter().any(|f| f.key() == key)
    }

    pub(crate) fn as_slice(&self) -> &[Field<'a>] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_past_the_inline_size_and_keeps_order() {
        let mut items = Inline::<u32, 2>::new();
        let mut fields = Fields::<'_, 2>::new();
        let keys = ["a", "b", "c", "d"];
        for (i, key) in keys.iter().enumerate() {
            items.push(i as u32);
            fields.push(Field::new(key, Value::U64(i as u64)));
        }
        assert_eq!(items.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 3]);
        let got: Vec<&str> = fields.as_slice().iter().map(|f| f.key()).collect();
        assert_eq!(got, keys);
        assert!(fields.contains("c"));
        assert!(!fields.contains("e"));
    }
}
