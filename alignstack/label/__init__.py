"""Human feedback labeling: a small web app where annotators compare (pairwise, Llama 2 style)
and rank (K-way, InstructGPT style) model responses, with labels exported as ``preference`` /
``ranking`` training rows. Entry point: ``alignstack.label.cli.main``.

The web stack (FastAPI, SQLAlchemy, Alembic, Jinja2) is imported only inside this package and only
when a command needs it, so training code never pays for it.
"""
