"""Benchmarks: every `omni-agent bench ...` and the corpus generators they use.

Runtime packages (omni_agent, memory, sim, ros_nodes, serve) carry no benchmark; each
module here registers its subcommand through `register_bench(benches)`.
"""
