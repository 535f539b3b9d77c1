//! The wire contract: `settingssync.v1` messages, the `SettingsSync` service
//! client and server, and the descriptor set served by gRPC reflection.

pub mod v1 {
    tonic::include_proto!("settingssync.v1");
}

/// Encoded `FileDescriptorSet` of every `.proto` in this crate.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/settingssync_descriptor.bin"));

pub mod codec;
pub mod convert;
