"""Training: validated run configs, the resolution-extension LightningModule, metrics, and the
train / evaluate / predict entry points used by the CLI."""

from xtalforge.train.config import ConfigError, RunConfig, load_run_config

__all__ = ["ConfigError", "RunConfig", "load_run_config"]
