"""envrouter: a highly available virtual router for the nodes of a cluster."""

__version__ = "0.1.0"
