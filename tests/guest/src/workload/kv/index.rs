//! The key index: an open-addressing hash table (FNV-1a, linear probing,
//! backward-shift deletion) from each live key to its latest PUT record in the
//! log. Fixed size, kept in the guest's bss (the guest has no allocator).

use core::sync::atomic::{AtomicBool, Ordering};

use super::proto::MAX_KEY;

/// Slots in the table (a power of two).
pub const SLOTS: usize = 1024;
/// Most live keys (75% of the slots, so probe sequences stay short).
pub const MAX_KEYS: usize = SLOTS / 4 * 3;

/// One slot: a key and where its value lives.
#[derive(Clone, Copy)]
pub struct Entry {
    key: [u8; MAX_KEY],
    /// Key length; 0 marks an empty slot.
    klen: u8,
    /// FNV-1a hash of the key.
    hash: u32,
    /// Length of the value.
    pub vlen: u16,
    /// Byte offset of the key's latest PUT record in the active log half.
    pub offset: u32,
}

impl Entry {
    const EMPTY: Entry = Entry {
        key: [0; MAX_KEY],
        klen: 0,
        hash: 0,
        vlen: 0,
        offset: 0,
    };

    pub fn key(&self) -> &[u8] {
        &self.key[..usize::from(self.klen)]
    }

    fn is_empty(&self) -> bool {
        self.klen == 0
    }
}

static mut TABLE: [Entry; SLOTS] = [Entry::EMPTY; SLOTS];
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The index has no room for another key.
pub struct Full;

/// The key index.
pub struct Index {
    slots: &'static mut [Entry; SLOTS],
    len: usize,
}

impl Index {
    /// The (single) index, empty.
    pub fn take() -> Self {
        if TAKEN.swap(true, Ordering::AcqRel) {
            crate::fatal!("kv: the key index is already in use");
        }
        // SAFETY: TAKEN guarantees this is the only reference ever made to TABLE.
        let slots = unsafe { &mut *core::ptr::addr_of_mut!(TABLE) };
        slots.fill(Entry::EMPTY);
        Self { slots, len: 0 }
    }

    /// Live keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if `key` is absent and there is no room for another key.
    pub fn is_full_for(&self, key: &[u8]) -> bool {
        self.len >= MAX_KEYS && self.get(key).is_none()
    }

    /// The entry of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.find(key, fnv1a(key)).ok().map(|i| &self.slots[i])
    }

    /// Point `key` at the record at `offset` holding a `vlen`-byte value.
    pub fn insert(&mut self, key: &[u8], vlen: u16, offset: u32) -> Result<(), Full> {
        let hash = fnv1a(key);
        let i = match self.find(key, hash) {
            Ok(i) => i,
            Err(_) if self.len >= MAX_KEYS => return Err(Full),
            Err(empty) => {
                let e = &mut self.slots[empty];
                e.key[..key.len()].copy_from_slice(key);
                e.klen = key.len() as u8;
                e.hash = hash;
                self.len += 1;
                empty
            }
        };
        self.slots[i].vlen = vlen;
        self.slots[i].offset = offset;
        Ok(())
    }

    /// Forget `key`; false if it was not there.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let Ok(mut hole) = self.find(key, fnv1a(key)) else {
            return false;
        };
        // Backward shift: pull later members of the probe run into the hole when
        // the hole lies (cyclically) between their home slot and where they are.
        let mut j = hole;
        loop {
            j = (j + 1) % SLOTS;
            if self.slots[j].is_empty() {
                break;
            }
            let home = self.slots[j].hash as usize % SLOTS;
            if (j + SLOTS - home) % SLOTS >= (j + SLOTS - hole) % SLOTS {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
        }
        self.slots[hole] = Entry::EMPTY;
        self.len -= 1;
        true
    }

    /// Every live entry, in slot order.
    pub fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.slots.iter_mut().filter(|e| !e.is_empty())
    }

    /// Slot of `key`, or the empty slot ending its probe run.
    fn find(&self, key: &[u8], hash: u32) -> Result<usize, usize> {
        let mut i = hash as usize % SLOTS;
        loop {
            let e = &self.slots[i];
            if e.is_empty() {
                return Err(i);
            }
            if e.hash == hash && e.key() == key {
                return Ok(i);
            }
            i = (i + 1) % SLOTS;
        }
    }
}

/// 32-bit FNV-1a.
fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
