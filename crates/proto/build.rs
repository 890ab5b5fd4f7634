//! Compiles `proto/` (at the workspace root) with tonic. protoc comes from `protoc-bin-vendored`,
//! so no system protoc is needed. Each package gets its own descriptor set, so a server's
//! reflection lists only what it serves.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    for (proto, descriptor) in [
        ("../../proto/switchboard/v1/switchboard.proto", "switchboard_descriptor.bin"),
        ("../../proto/switchboard/crm/v1/crm.proto", "crm_descriptor.bin"),
        ("../../proto/switchboard/cti/v1/cti.proto", "cti_descriptor.bin"),
    ] {
        println!("cargo:rerun-if-changed={proto}");
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
        // Undecodable requests are INVALID_ARGUMENT, not INTERNAL (codec.rs).
        tonic_prost_build::configure()
            .codec_path("crate::codec::StrictCodec")
            .file_descriptor_set_path(out_dir.join(descriptor))
            .compile_with_config(config, &[proto], &["../../proto"])?;
    }
    Ok(())
}
