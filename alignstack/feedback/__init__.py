"""Feedback sources for alignment data (e.g. ``judges``: AI labelers giving pairwise soft labels and
1–10 scores from a local model or any OpenAI-compatible endpoint). Submodules are imported on
demand; nothing heavy is imported here."""
