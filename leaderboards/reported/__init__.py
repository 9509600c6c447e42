"""Numbers reported in papers; installed as the package `avbench.reported`."""
