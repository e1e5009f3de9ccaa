"""The background worker process (`conectades worker`): webhook deliveries, and any
other job added to its loop (worker/loop.py says how)."""
