//! Rebuild when a migration is added or changed: `sqlx::migrate!()` embeds the files at compile
//! time, and on stable Rust the macro cannot tell cargo to watch the directory itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
