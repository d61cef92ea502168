//! A fixed-size bitmap with one bit per page.

/// One bit per page for `pages` pages, stored in 64-bit words (bit `i % 64` of word `i / 64`,
/// the layout of KVM's dirty log). Bits past `pages` are always clear.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageBitmap {
    words: Vec<u64>,
    pages: u64,
}

/// Words needed for `pages` bits.
pub fn words_for(pages: u64) -> usize {
    pages.div_ceil(64) as usize
}

impl PageBitmap {
    /// A bitmap of `pages` clear bits.
    pub fn new(pages: u64) -> Self {
        PageBitmap {
            words: vec![0; words_for(pages)],
            pages,
        }
    }

    /// A bitmap from its words; `None` if there are not exactly enough words for `pages` or
    /// a bit past `pages` is set.
    pub fn from_words(words: Vec<u64>, pages: u64) -> Option<Self> {
        let b = PageBitmap { words, pages };
        (b.words.len() == words_for(pages) && b.tail_clear()).then_some(b)
    }

    fn tail_clear(&self) -> bool {
        let used = self.pages % 64;
        match self.words.last() {
            Some(&w) if used != 0 => w >> used == 0,
            _ => true,
        }
    }

    fn clear_tail(&mut self) {
        let used = self.pages % 64;
        if used != 0 {
            if let Some(w) = self.words.last_mut() {
                *w &= (1u64 << used) - 1;
            }
        }
    }

    /// The number of pages covered.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The words.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Sets the bit of `page`. Panics if `page` is out of range (a caller bug).
    pub fn set(&mut self, page: u64) {
        assert!(
            page < self.pages,
            "page {page} out of range ({} pages)",
            self.pages
        );
        self.words[(page / 64) as usize] |= 1 << (page % 64);
    }

    /// Clears the bit of `page`. Panics if `page` is out of range.
    pub fn unset(&mut self, page: u64) {
        assert!(
            page < self.pages,
            "page {page} out of range ({} pages)",
            self.pages
        );
        self.words[(page / 64) as usize] &= !(1 << (page % 64));
    }

    /// Whether the bit of `page` is set (`false` out of range).
    pub fn get(&self, page: u64) -> bool {
        page < self.pages && self.words[(page / 64) as usize] & (1 << (page % 64)) != 0
    }

    /// The number of set bits.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// The number of set bits among pages `start..end` (clamped to the bitmap).
    pub fn count_range(&self, start: u64, end: u64) -> u64 {
        let end = end.min(self.pages);
        let mut n = 0;
        let mut p = start;
        while p < end {
            let w = self.words[(p / 64) as usize] >> (p % 64);
            let take = (64 - p % 64).min(end - p);
            let mask = if take == 64 {
                u64::MAX
            } else {
                (1u64 << take) - 1
            };
            n += (w & mask).count_ones() as u64;
            p += take;
        }
        n
    }

    /// Whether any bit among pages `start..end` is set.
    pub fn any_in(&self, start: u64, end: u64) -> bool {
        self.count_range(start, end) != 0
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Clears every bit.
    pub fn clear(&mut self) {
        self.words.fill(0);
    }

    /// ORs `words` (in this bitmap's layout) into this bitmap. `words` must hold exactly as
    /// many words as this bitmap; bits past the last page are ignored.
    pub fn union_words(&mut self, words: &[u64]) -> Result<(), String> {
        if words.len() != self.words.len() {
            return Err(format!(
                "{} bitmap words given for {} pages, which need {}",
                words.len(),
                self.pages,
                self.words.len()
            ));
        }
        for (a, b) in self.words.iter_mut().zip(words) {
            *a |= *b;
        }
        self.clear_tail();
        Ok(())
    }

    /// Sets every bit set in `other`, which must cover as many pages.
    pub fn union(&mut self, other: &PageBitmap) -> Result<(), String> {
        if other.pages != self.pages {
            return Err(format!(
                "bitmaps of {} and {} pages",
                self.pages, other.pages
            ));
        }
        self.union_words(&other.words)
    }

    /// The set pages, in increasing order.
    pub fn iter_set(&self) -> SetPages<'_> {
        SetPages {
            words: &self.words,
            index: 0,
            current: self.words.first().copied().unwrap_or(0),
        }
    }

    /// The set pages among `start..end`, in increasing order.
    pub fn iter_set_in(&self, start: u64, end: u64) -> impl Iterator<Item = u64> + '_ {
        let end = end.min(self.pages);
        let first_word = (start / 64) as usize;
        let words = &self.words[first_word.min(self.words.len())..];
        let mut it = SetPages {
            words,
            index: 0,
            current: words.first().copied().unwrap_or(0),
        };
        // Drop the bits below `start` in the first word.
        if !words.is_empty() {
            it.current &= u64::MAX << (start % 64);
        }
        it.map(move |p| p + first_word as u64 * 64)
            .take_while(move |&p| p < end)
    }
}

/// Iterator over the set pages of a [`PageBitmap`].
pub struct SetPages<'a> {
    words: &'a [u64],
    index: usize,
    current: u64,
}

impl Iterator for SetPages<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        loop {
            if self.current != 0 {
                let bit = self.current.trailing_zeros() as u64;
                self.current &= self.current - 1;
                return Some(self.index as u64 * 64 + bit);
            }
            self.index += 1;
            self.current = *self.words.get(self.index)?;
        }
    }
}

impl PageBitmap {
    /// ORs `words` into this bitmap's words starting at word `first` (crate-internal: the
    /// caller copies between bitmaps of the same size).
    pub(crate) fn union_words_range(&mut self, first: usize, words: &[u64]) {
        for (a, b) in self.words[first..first + words.len()].iter_mut().zip(words) {
            *a |= *b;
        }
        self.clear_tail();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_count_iterate() {
        let mut b = PageBitmap::new(130);
        for p in [0, 1, 63, 64, 65, 127, 128, 129] {
            b.set(p);
        }
        assert_eq!(b.count(), 8);
        assert_eq!(
            b.iter_set().collect::<Vec<_>>(),
            [0, 1, 63, 64, 65, 127, 128, 129]
        );
        assert_eq!(
            b.iter_set_in(1, 128).collect::<Vec<_>>(),
            [1, 63, 64, 65, 127]
        );
        assert_eq!(b.iter_set_in(66, 127).count(), 0);
        assert_eq!(b.count_range(63, 66), 3);
        assert_eq!(b.count_range(0, 1000), 8);
        assert!(b.get(129) && !b.get(130) && !b.get(2));
        b.unset(64);
        assert!(!b.get(64));
        assert_eq!(b.count(), 7);
    }

    #[test]
    fn union_masks_bits_past_the_end() {
        let mut b = PageBitmap::new(70);
        b.union_words(&[1, u64::MAX]).unwrap();
        assert_eq!(b.count(), 7);
        assert!(b.union_words(&[1]).is_err());
        assert!(PageBitmap::from_words(vec![0, 1 << 6], 70).is_none());
        assert!(PageBitmap::from_words(vec![0, 1 << 5], 70).is_some());
        assert!(PageBitmap::from_words(vec![0], 70).is_none());
    }
}
