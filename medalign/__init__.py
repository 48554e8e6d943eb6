"""medalign: align a biomedical LLM to clinical question answering.

Kept import-free on purpose: `python -m medalign --help` must not pay for torch.
"""

__version__ = "0.1.0"
