"""The planner: will a run fit on a GPU, and how long will it take (stage=plan).

    python -m medalign stage=plan model=llama3_8b quant=nf4 plan.gpu=a100_40gb

formulas.py  bytes, quantized sizes, FLOPs, the GPU table (with sources)
meta.py      the configured model on the meta device: counts, traced activations
planner.py   memory by component, compute, verdict, knobs (make_plan)
generation.py  RL: decoding tokens/s, the KV cache, vLLM's share
colocate.py  the start-up refusal of a colocated vLLM plan that does not fit
"""
