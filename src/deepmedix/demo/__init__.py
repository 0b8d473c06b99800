"""``deepmedix demo``: the whole DeepMedix-R1 system on the embedded default, ending in one HTML report."""

from deepmedix.demo.pipeline import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
