"""Spike forecasters: walk-forward across days, the served models, MLflow tracking, scoring, reports.

Everything here reads the feature table that ``features.replay`` writes; nothing in this
package computes features.
"""
