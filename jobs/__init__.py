"""The front door: the `thresher` CLI, job specs, reports and the demo."""

__version__ = "0.1.0"
