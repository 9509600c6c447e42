"""Reference baselines packaged as avbench model plugins.

`sound2scene` and `avgas` (this package) are registered in the
`avbench.models` entry-point group; their building blocks live in
`avbench.baselines.common`.
"""
