"""The NCA token generator: config, the CPU and CUDA backends, the numpy reference, pictures."""
