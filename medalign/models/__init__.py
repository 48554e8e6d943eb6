"""Model loading: builders (tiny, hub), quantization and LoRA configs."""
