//! Path of the test guest ELF.
