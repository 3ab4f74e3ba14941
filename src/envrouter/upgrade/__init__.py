"""Upgrade an environment deployed without the virtual router onto it, live.

- `plan` (pure): the ordered steps from the documents before and after, the controllers, what
  is observed (schema revision, VIPs, settings) and the recorded progress; the node checks and
  the package check, as argv lists plus functions that judge their output.
- `progress` (state file): which steps are done and where each node stands, so a second run
  resumes.
- `runner` (effects): how a command reaches a node (the lab's `Lab.exec_in`, or ssh).
- `execute` (effects): the preview in a rolled-back transaction, and running the steps.
"""
