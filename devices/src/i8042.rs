//! Intel 8042 controller: only the CPU reset line matters to a guest here.
