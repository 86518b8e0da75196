//! `sluice demo`: placeholder replaced below.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}
pub async fn run(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
