"""Training and evaluation core: rows -> token examples, LoRA attach/save, the loop, scoring.

Pure ML: no database, object store or queue here; a worker task wires those around it.
"""
