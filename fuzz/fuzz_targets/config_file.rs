//! The TOML configuration file (and the values it carries): a bad file is a
//! ConfigError naming the setting, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("lethe-fuzz-config-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("lethe.toml");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let env = [(
        "LETHE_SECRET_KEY".to_owned(),
        "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=".to_owned(),
    )]
    .into_iter()
    .collect();
    if let Ok(src) = lethe::config::Sources::from_parts(env, Some(&path)) {
        // File paths it may name (key files) are read, never written, when a
        // secret key is given.
        let _ = lethe::config::Settings::from_sources(&src);
    }
});
