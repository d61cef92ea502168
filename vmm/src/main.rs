//! `reprise`: one VMM process per guest.

fn main() {}
