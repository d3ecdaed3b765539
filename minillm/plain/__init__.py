"""The plain layer: every idea of the model on one screen. Start reading here.

Each module holds one idea as one function a learner reads top to bottom (about 60 lines at most): NumPy
only, a shape on every line that makes an array, nothing clever. Each is tested equal to the engine (the
real modules in minillm/model, minillm/generation, minillm/backward, minillm/training) on the bundled
checkpoints, so the two can never drift. The engine adds what real use needs: batches, caches, validation,
speed.
"""
