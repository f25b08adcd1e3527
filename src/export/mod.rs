//! Artifact writers; each module owns one artifact.

pub mod items;
pub mod log;
pub mod metadata;
pub mod npy;
pub mod projector;
