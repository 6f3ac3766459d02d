"""Evaluation: top-K metrics, full-ranking evaluation, ranking, explanations, cold-start
blocks and social (friend) evaluation."""
