"""Reaction to reward mapping, reward ingestion, counterfactual estimators and log formats."""
