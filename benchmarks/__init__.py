"""Speed and memory benchmarks of the product (results in docs/benchmarks.md); run each as a script from the repository root."""
