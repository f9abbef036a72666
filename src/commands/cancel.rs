//! `orch cancel`: cancels a task on a running `orch serve`.

use std::path::PathBuf;

use orch_server::client;

use super::submit::{failed, server_of, token_of};
use super::{exit, runtime};

/// Arguments of `orch cancel`, as parsed.
pub struct CancelArgs {
    pub task: String,
    pub server: Option<String>,
    pub state_dir: PathBuf,
}

/// `orch cancel`.
pub fn command(a: CancelArgs) -> u8 {
    if let Err(e) = orch_engine::check_task_name(&a.task) {
        eprintln!("error: {e}");
        return exit::USAGE;
    }
    let server = server_of(a.server);
    let token = token_of(&a.state_dir);
    let rt = match runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let path = format!("/api/v1/tasks/{}/cancel", a.task);
    match rt.block_on(client::request(
        &server,
        "POST",
        &path,
        token.as_deref(),
        None,
    )) {
        Ok((202, _)) => {
            println!(
                "cancelling task {}: its producers are still stopping",
                a.task
            );
            exit::OK
        }
        Ok(_) => {
            println!("cancelled task {}", a.task);
            exit::OK
        }
        Err(e) => failed(&e),
    }
}
