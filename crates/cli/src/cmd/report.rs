//! `forgetlab report` (under construction: replaced by its owner before landing).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`forgetlab report` is not built yet")
}
