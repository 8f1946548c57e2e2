"""Feedback sources: AI judges (``judges``: pairwise soft labels and 1–10 scores from a local model
or any OpenAI-compatible endpoint). Submodules are imported on demand; nothing heavy here."""
