//! Volumes, layers, snapshots, clones and resize.
