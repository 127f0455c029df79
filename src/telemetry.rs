//! Logging set-up shared by the binaries: JSON lines on Lambda, `RUST_LOG` filtering. Ids and
//! secrets are never logged raw; code logs `keys::fingerprint` of them.

/// Starts the tracing subscriber (once per process).
pub fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    if json {
        builder.json().without_time().init();
    } else {
        builder.init();
    }
}
