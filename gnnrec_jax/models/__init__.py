"""Recommendation models: the Linen embedding models and their layers, layer-0 node inputs,
and closed-form models."""
