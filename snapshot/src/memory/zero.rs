//! Finding zero pages cheaply.

use crate::limits::PAGE_SIZE;

static ZERO_PAGE: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];

/// Whether `page` (at most one page long) is all zeros. A `memcmp` against a zero page: the
/// C library's vectorised compare, stopping at the first non-zero byte.
pub fn is_zero_page(page: &[u8]) -> bool {
    page == &ZERO_PAGE[..page.len()]
}
