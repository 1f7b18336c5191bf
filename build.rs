// The migrations are embedded by `sqlx::migrate!` (src/store/sqlite.rs, src/store/postgres.rs);
// cargo does not see them as inputs, so an edited or added migration would not rebuild the
// binary without this.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
