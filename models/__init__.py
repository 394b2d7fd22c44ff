"""Spike models: time-ordered split, baselines, training, MLflow tracking, scoring and reports.

Everything here reads the feature table that ``features.replay`` writes; nothing in this
package computes features.
"""
