"""Training: the tiny model, model loading, the three stages (SFT, cold start, GRPO), recipes and the pipeline.

Heavy imports (torch, transformers, TRL) live in the submodules, so importing this package stays cheap.
"""
