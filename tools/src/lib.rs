//! Command-line tools for Reprise.
