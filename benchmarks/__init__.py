"""``make bench``: speed and quality benchmarks of genmat (``python -m benchmarks.run --help``).

Speeds are reported as ratios against a baseline measured side by side in the same
process (batched vs one at a time, CG vs the basic fixed point), never as absolute
wall-time promises; results go to ``bench_results/`` as JSON, Markdown and PNG.
"""
