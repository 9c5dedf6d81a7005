//! `forgetlab bench` (under construction: replaced by its owner before landing).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`forgetlab bench` is not built yet")
}
