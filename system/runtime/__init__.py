"""The Ray runtime of the main job: bringing Ray up in the driver and driving actors (env runners, learners).

The only `system/` package that imports Ray (with the driver system/main.py and the shells in actors/ and
learners/). Model and training code know nothing of it; see docs/architecture.md, "Runtime".
"""
