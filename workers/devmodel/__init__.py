"""A tiny Llama base model built locally (`build`) and sample tenant datasets (`samples`).

Nothing heavy is imported here: `samples` needs only the standard library, `build` needs torch.
"""
