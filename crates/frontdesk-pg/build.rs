//! Embeds `migrations/NNNN_name.{up,down}.sql` into the binary as a sorted list.
use std::{env, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../migrations");
    let dir = dir.canonicalize().expect("migrations directory");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut ups: Vec<(u32, String)> = Vec::new();
    for entry in fs::read_dir(&dir).expect("read migrations") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        println!("cargo:rerun-if-changed={}", dir.join(&name).display());
        let Some(stem) = name.strip_suffix(".up.sql") else {
            continue;
        };
        let (version, label) = stem.split_once('_').expect("NNNN_name.up.sql");
        let version: u32 = version.parse().expect("numeric migration version");
        assert!(
            dir.join(format!("{stem}.down.sql")).exists(),
            "{stem}.down.sql is missing"
        );
        ups.push((version, label.to_owned()));
        let _ = stem;
    }
    ups.sort();
    for pair in ups.windows(2) {
        assert!(
            pair[0].0 != pair[1].0,
            "two migrations share version {}",
            pair[0].0
        );
    }
    let mut out = String::from(
        "/// Every migration, oldest first.\npub static MIGRATIONS: &[Migration] = &[\n",
    );
    for (version, label) in &ups {
        let base = dir.join(format!("{version:04}_{label}"));
        out.push_str(&format!(
            "    Migration {{ version: {version}, name: {label:?}, up: include_str!({up:?}), down: include_str!({down:?}) }},\n",
            up = format!("{}.up.sql", base.display()),
            down = format!("{}.down.sql", base.display()),
        ));
    }
    out.push_str("];\n");
    fs::write(
        PathBuf::from(env::var("OUT_DIR").unwrap()).join("migrations.rs"),
        out,
    )
    .unwrap();
}
