"""`make bench`: latency, end-to-end, concurrency, growth and rollback benchmarks.

Everything runs on a stack of its own (databases ``po_bench``/``po_bench_tenants``,
Redis database 15, ports 24xxx) beside the development stack and test slots, and is
removed at the end. Results are appended to ``benchmarks/RESULTS.md``.
"""
