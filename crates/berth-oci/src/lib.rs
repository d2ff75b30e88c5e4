//! berth-oci
