"""Models: loading by name (an embedded model such as ``"tiny"``, a hub id or a folder), the image-only processors,
the locally built embedded models, and each model's box frame. Training and inference both load through here.

The package itself imports nothing: :mod:`.loading`, :mod:`.processors` and :mod:`.tiny` import transformers
(seconds), while :mod:`.special_tokens` and the command registration stay cheap.
"""
