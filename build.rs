//! Compiles proto/ with protox (pure Rust: no system protoc) into the prost/tonic code and
//! the encoded descriptor set that server reflection serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/erpsync/v1/integration_history.proto",
    "proto/erpsync/v1/erp_ingest.proto",
    "proto/erpsync/v1/crm_sink.proto",
    "proto/erpsync/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // Reflection lists only what this server serves: CrmSink is the host's service
    // (erpsync is its client), so its file stays out of the served descriptor set.
    let mut served = fds.clone();
    served
        .file
        .retain(|f| f.name() != "erpsync/v1/crm_sink.proto");
    fs::write(out.join("erpsync_descriptor.bin"), served.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
