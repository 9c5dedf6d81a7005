//! `forgetlab dashboard` (under construction: replaced by its owner before landing).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`forgetlab dashboard` is not built yet")
}
