"""``alignstack serve --model PATH``: serve a checkpoint over an OpenAI-compatible HTTP API.

Also runnable as ``python -m alignstack.serve.cli``. See docs/serve.md.
"""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="alignstack serve",
                                 description="Serve a local Hugging Face checkpoint over an OpenAI-compatible API "
                                             "(/v1/chat/completions, /v1/completions, /v1/models, /health).")
    ap.add_argument("--model", required=True, help="checkpoint folder (Hugging Face format, safetensors)")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--served-model-name", default=None, help="model id reported to clients (default: folder name)")
    ap.add_argument("--max-concurrency", type=int, default=8,
                    help="requests admitted at once (compatible ones share a batch)")
    ap.add_argument("--max-queue", type=int, default=64, help="requests waiting for a slot before 429s")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice; 1 is often best for small models "
                         "on a busy machine)")
    ap.add_argument("--dtype", default=None, help="torch dtype to load the weights in (e.g. bfloat16)")
    ap.add_argument("--fault-rate", type=float, default=0.0,
                    help="testing: fraction of generation requests that fail with 503 (or are delayed)")
    ap.add_argument("--fault-delay", type=float, default=0.0,
                    help="testing: with --fault-rate, half the faulty requests sleep this many seconds instead")
    ap.add_argument("--fault-seed", type=int, default=0, help="seed of the fault sequence")
    ap.add_argument("--max-body-bytes", type=int, default=4 << 20,
                    help="larger request bodies get 413 before they are read in full (default 4 MiB)")
    ap.add_argument("--max-json-depth", type=int, default=64,
                    help="request JSON nested deeper gets 400 before it is parsed (default 64)")
    ap.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_concurrency < 1 or args.max_queue < 0:
        print("alignstack serve: --max-concurrency must be ≥ 1 and --max-queue ≥ 0", file=sys.stderr)
        return 2
    if args.max_body_bytes < 1024 or args.max_json_depth < 8:
        print("alignstack serve: --max-body-bytes must be ≥ 1024 and --max-json-depth ≥ 8", file=sys.stderr)
        return 2
    if not 0.0 <= args.fault_rate <= 1.0 or args.fault_delay < 0:
        print("alignstack serve: --fault-rate must be in [0, 1] and --fault-delay ≥ 0", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from alignstack.serve.app import create_app
        from alignstack.serve.engine import ServeEngine
    except ImportError as e:
        print(f"alignstack serve needs the serve extra: pip install 'alignstack[serve]' ({e})", file=sys.stderr)
        return 2
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    try:
        engine = ServeEngine.from_path(args.model, name=args.served_model_name, dtype=args.dtype)
    except (OSError, ValueError) as e:
        print(f"alignstack serve: cannot load {args.model}: {e}", file=sys.stderr)
        return 2
    app = create_app(engine, max_concurrency=args.max_concurrency, max_queue=args.max_queue,
                     fault_rate=args.fault_rate, fault_delay=args.fault_delay, fault_seed=args.fault_seed,
                     max_body_bytes=args.max_body_bytes, max_json_depth=args.max_json_depth)
    print(f"alignstack serve: {engine.name} (context {engine.context}) on http://{args.host}:{args.port}/v1",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
