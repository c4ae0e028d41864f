"""Semantic (phase) segmentation: thresholds, watershed, k-means, random forest, CNN."""
