//! imageconfig (in progress).
