//! In-memory storage (being written).
