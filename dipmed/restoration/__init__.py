"""The restoration engine: noise model, guide, deep prior, fit, risk estimate, selection.

Flow: `restore.restore` takes a Volume and a Task, estimates the noise (`noise`),
stabilises it (`vst`), computes the non-local guide (`collaborative`), fits the anchored
deep prior (`prior`, `networks`, `fit`, `losses`, `stopping`) through the task's operator
(`operators`), and returns the candidate the risk estimate (`sure`, `selection`) prefers.
"""
