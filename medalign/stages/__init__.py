"""Stage runners, one module per kind (sft, ...), registered under `stage.kind`."""
