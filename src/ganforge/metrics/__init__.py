"""Metrics that make the theory measurable: the JSD estimates, mode coverage on the toys, FID with named extractors."""
