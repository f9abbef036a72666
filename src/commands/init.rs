//! `orch init`: a starter pipeline and its prompts.

use std::path::Path;

use super::exit;

/// `orch init`.
pub fn command(dir: &Path) -> u8 {
    match orch_lang::init::init(dir) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            println!(
                "next: orch validate -p {}",
                dir.join("pipeline.kdl").display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}
