"""Stand-ins with the upstream interfaces of models that are not on PyPI (Ovi's engine, UniVerse-1's and
MM-Diffusion's sample scripts, HunyuanVideo-Foley's package). They are not those models: they make deterministic clips so the adapters'
request building, process handling and output pickup can be tested on CPU."""
