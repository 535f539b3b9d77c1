//! Compiles `settingssync/v1/*.proto` with protox (pure Rust), so no system
//! `protoc` is needed, and keeps the descriptor set for gRPC reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["settingssync/v1/settings_sync.proto"];
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("settingssync_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // Undecodable requests are INVALID_ARGUMENT, not INTERNAL (src/codec.rs).
    tonic_prost_build::configure()
        .codec_path("crate::codec::WireCodec")
        // Set on few documents; boxed, it keeps every Document (and the
        // Watch event holding one) small.
        .boxed(".settingssync.v1.Document.fields")
        .compile_fds(descriptors)?;
    Ok(())
}
