"""avbench: a benchmark and evaluation suite for sound-to-image models.

The public API (`evaluate`, `load_record`, `leaderboard`, `register_model`,
`Model`)
is imported lazily, so `import avbench` stays light.
"""

__version__ = "0.1.0"
__all__ = ["Model", "evaluate", "leaderboard", "load_record", "register_model"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'avbench' has no attribute {name!r}")
