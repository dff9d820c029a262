"""The model-input declaration: what the model reads, and how (`MODEL_INPUTS`).

The example's CTR model (`CTR_MODEL_INPUTS`) trains on `training_examples` (one row per
impression, labelled clicked or not) and reads each example's user and item history from
`user_daily_features` and `item_daily_features` as of the days before the example's day. A team
with other data declares its own (beside the feature logic that publishes those tables) and
points `MODEL_INPUTS` at it; the trainer, the evaluation, the guard and the benchmarks follow
it. The types and their rules live in training/model_inputs.py, which the trainer image carries
without contract/.
"""

from __future__ import annotations

from training.model_inputs import (
    ID_HASH,
    INTEGER_RANGE,
    LOG1P,
    STRING_HASH,
    CategoricalInput,
    ExamplesTable,
    Factorized,
    HistoryTable,
    ModelInputs,
    NumericInput,
)

CTR_MODEL_INPUTS = ModelInputs(
    examples=ExamplesTable(
        table="training_examples", key="event_id", day_column="feature_date", label="label"
    ),
    # The embedding order: user and item (the factorised pair), then the context the MLP reads.
    categorical=(
        CategoricalInput("user_id", ID_HASH, salt=1),
        CategoricalInput("item_id", ID_HASH, salt=2),
        # Low-cardinality strings get small hash spaces; bucket 0 is reserved for null.
        CategoricalInput("device", STRING_HASH, buckets=16),
        CategoricalInput("country", STRING_HASH, buckets=64),
        CategoricalInput("item_category", STRING_HASH, buckets=64),
        CategoricalInput("hour_of_day", INTEGER_RANGE, minimum=0, maximum=23),
    ),
    # log1p(price) and a missing-price indicator.
    numeric=(NumericInput("price", transform=LOG1P, missing_indicator=True),),
    factorized=Factorized(user="user_id", item="item_id"),
    history=tuple(
        HistoryTable(
            table=f"{side}_daily_features",
            example_key=f"{side}_id",
            history_key=f"{side}_id",
            day_column="feature_date",
            exposures="impressions",
            positives="clicks",
            prefix=side,
            # Beta(1, 5): mean 1/6, about the example's click-through rate.
            prior_positives=1.0,
            prior_exposures=6.0,
        )
        for side in ("user", "item")
    ),
    segments=("device", "country"),
)

# The project's model inputs: point it at your own declaration; the example's stays beside it
# as the machinery's test fixture (tests/support/example.py) until you delete it.
MODEL_INPUTS = CTR_MODEL_INPUTS
