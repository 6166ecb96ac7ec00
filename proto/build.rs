//! Compiles the contract with protox (pure Rust), so no system `protoc` is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["provider.proto", "cloudevents.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // A handful of attributes per event: a B-tree skips SipHash and
        // the table's allocation and growth, on the gateway's event path.
        .btree_map(".io.cloudevents.v1.CloudEvent.attributes")
        .compile_fds(fds)?;
    Ok(())
}
