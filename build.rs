//! Compiles `proto/` with tonic. protoc comes from `protoc-bin-vendored`, so no system protoc is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/switchboard/v1/switchboard.proto", "proto/switchboard/crm/v1/crm.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("switchboard_descriptor.bin"))
        .compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
