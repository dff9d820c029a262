"""What a team edits to make the template its own; the machinery reads these declarations.

- `source`: the upstream table the pipeline reads (`SourceContract`), the example's
  declaration of it (`CLICK_STREAM`) and the project's choice (`SOURCE`).
- `model_inputs`: which published tables and columns the model reads, joined how and as of
  which days, the example's declaration (`CTR_MODEL_INPUTS`) and the project's choice
  (`MODEL_INPUTS`).
"""
