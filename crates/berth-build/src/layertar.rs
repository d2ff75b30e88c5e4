//! layertar (in progress).
