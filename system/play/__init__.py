"""Play inside the world model: a person steers the learned world from a browser, frame by frame.

    python -m system.play runs/<name>                      # serves http://127.0.0.1:8765/ and prints the URL

The library half, usable without the web server: run_models (a run's tokenizer and dynamics from its
checkpoints), controls (keys and mouse -> the run's factored action), start_frames (held-out episodes and fresh
Crafter worlds as context), session (one connection's world: a KV-cache slot stepped by the cached sampler),
slots (the pool of KV-cache slots), frame_codec (frames -> PNG/JPEG WebSocket messages) and connection (the
message protocol and generation loop of one connection). server.py is the thin aiohttp layer, cli.py the
command; static/ holds the page (plain HTML, JavaScript and CSS, nothing fetched from elsewhere).
No Ray and no Redis here.
"""
