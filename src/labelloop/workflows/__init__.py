"""Multi-step work on a project (pre-labeling, calibration, learning) built on `Project`.

Each workflow reads what it needs from the store, hands arrays or texts to the pure modules
(labelers, calibration, active learning) and writes the results back, in batches, so that an
interrupted run can be started again without losing or repeating work.
"""
