//! The `orch` command line: parses arguments and calls the library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use orch::cli;
use orch::diagnostic::Format;

#[derive(Parser)]
#[command(
    name = "orch",
    version,
    about = "A declarative pipeline-as-config interpreter for LLM-agent delivery pipelines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check pipeline files and report every problem with its place in the file.
    Validate {
        /// Files or directories (every `*.kdl` below them); default: the `--pipeline` file.
        paths: Vec<PathBuf>,
        /// The pipeline file, when no paths are given.
        #[arg(short, long, default_value = "pipeline.kdl")]
        pipeline: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Print the JSON Schema of the pipeline language.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Validate {
            paths,
            pipeline,
            format,
            strict,
        } => {
            let paths = if paths.is_empty() {
                vec![pipeline]
            } else {
                paths
            };
            cli::validate(&paths, format, strict)
        }
        Command::Schema => cli::schema(),
    };
    ExitCode::from(code)
}
