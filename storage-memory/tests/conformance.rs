//! The `limiter-conformance` suite on [`MemoryStorage`]: every case, on the native
//! paths and on the generic compare-and-set path.

use limiter_memory::MemoryStorage;

limiter_conformance::suite!(MemoryStorage::new());
