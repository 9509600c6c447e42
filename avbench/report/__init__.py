"""A static HTML report of one or more runs (`avbench report`)."""

from .build import build_report

__all__ = ["build_report"]
