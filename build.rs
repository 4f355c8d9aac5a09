//! `sqlx::migrate!` embeds `migrations/` at compile time, but on stable Rust Cargo does not know
//! the macro read those files: a new migration alone would leave an incremental build with the
//! old set (what `sqlx migrate build-script` generates).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
