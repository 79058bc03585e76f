//! `vigil-agent --check-config`: a valid file is described, each mistake is named with its key
//! and the exit status is 2; nothing starts.

use std::process::Command;

fn check(config: &str) -> (i32, String) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("agent.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

const VALID: &str = "[backend]\nurl = \"https://vigil.example.com\"\ntoken = \"vgl_x\"\n\n[[sources]]\nname = \"app\"\nservice = \"app\"\ninclude = [\"/var/log/app/*.log\"]\n";

#[test]
fn check_config_describes_a_valid_file_and_names_the_key_of_a_mistake() {
    let (status, text) = check(VALID);
    assert_eq!(status, 0, "{text}");
    assert!(text.contains("configuration is valid: 1 file source(s)"), "{text}");
    assert!(!text.contains("vgl_x"), "the token is printed: {text}");

    for (config, key) in [
        (VALID.replace("https://", "ftp://"), "backend.url"),
        (format!("{VALID}format = \"xml\""), "format"),
        (format!("{VALID}format = \"regex\""), "sources[0].pattern"),
        (format!("{VALID}[tail]\nlong_lines = \"wrap\""), "long_lines"),
        (format!("{VALID}[[scrape]]\nname = \"x\"\nurl = \"not a url\""), "scrape[0].url"),
        (format!("{VALID}[host_metrics]\ninterval_seconds = 0"), "host_metrics.interval_seconds"),
        (VALID.replace("[backend]", "[backend]\ncolour = \"red\""), "colour"),
    ] {
        let (status, text) = check(&config);
        assert_eq!(status, 2, "{config}: {text}");
        assert!(text.contains(key), "{text:?} does not name {key}");
    }
}
