tonic::include_proto!("erpsync.v1");

/// The encoded descriptor set of the contract, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/erpsync_descriptor.bin"));
