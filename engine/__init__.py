"""The vLLM engine launcher, outside the core: the engine's own environment (`env.py`, made on first use) and
`engine serve`'s server processes (`server.py`, with the PRM's weights converted for vLLM's pooling runner).

It may import `reasoning` (the backends' weight conversion, the digests); nothing in `reasoning` imports it. The
backends reach a running server through `reasoning/http_client.py`.
"""
