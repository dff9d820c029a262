"""What a team edits to make the template its own; the machinery reads these declarations.

- `source`: the upstream table the pipeline reads (`SourceContract`) and the example's
  declaration of it (`SOURCE`).
- `model_inputs`: which published tables and columns the model reads, joined how and as of
  which days, and the example's declaration (`MODEL_INPUTS`).
"""
