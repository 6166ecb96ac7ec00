//! The real hello-rs provider binary, for the tests that drive the gateway
//! with third-party clients.

use std::{
    fs::File,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Stdio},
    time::Duration,
};

use super::free_port;

/// `target/debug/hello-rs`, next to this test binary's `deps/` directory.
pub fn hello_rs_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap();
    }
    let bin = dir.join(format!("hello-rs{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "the hello-rs provider binary is missing ({}): build it with `cargo build -p hello-rs` \
         (or run `make test`)",
        bin.display()
    );
    bin
}

/// The real hello-rs binary on a free port; killed when dropped.
pub struct HelloRs {
    child: Child,
    pub addr: SocketAddr,
    log_file: tempfile::NamedTempFile,
}

impl HelloRs {
    pub async fn start() -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port().await).into();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = std::process::Command::new(hello_rs_bin())
            .arg("--listen")
            .arg(addr.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log.path()).unwrap())
            .spawn()
            .expect("spawn hello-rs");
        let mut hello = HelloRs {
            child,
            addr,
            log_file: log,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return hello;
            }
            if let Some(status) = hello.child.try_wait().unwrap() {
                panic!("hello-rs exited early ({status}): {}", hello.log());
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "hello-rs did not listen on {addr} within 15s: {}",
                    hello.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file.path()).unwrap_or_default()
    }
}

impl Drop for HelloRs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// hello-rs, and the gateway binary in front of it listening on the
/// returned port. Keep all of it alive as long as the gateway is used.
pub async fn gateway_in_front_of_hello()
-> (HelloRs, tokio::process::Child, tempfile::NamedTempFile, u16) {
    let hello = HelloRs::start().await;
    let port = free_port().await;
    let yaml = super::config_yaml(
        &[("hello-rs", hello.addr)],
        &format!("listen: 127.0.0.1:{port}\n"),
    );
    let (gateway, config, _) = super::gateway_process(&yaml, port, &[]).await;
    (hello, gateway, config, port)
}
