//! The hash tables of the checks: std's, with foldhash's hasher (seeded per
//! process, so a file cannot be written to collide) instead of SipHash.

pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
