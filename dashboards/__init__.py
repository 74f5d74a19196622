"""Experimenter and analyst pages, and Grafana dashboard JSON."""
