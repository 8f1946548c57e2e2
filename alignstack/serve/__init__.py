"""``alignstack serve``: an OpenAI-compatible HTTP server for a local checkpoint.

``engine`` holds the model side (tokenisation, generation through the rollout engine, stop strings,
top-k log-probs), ``app`` the FastAPI application (validation, concurrency limit, fault injection,
streaming), ``cli`` the command line. Heavy and web imports live only in this package.
"""
