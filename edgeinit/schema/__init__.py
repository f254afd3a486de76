"""The config schema: typed step models, their validation, and the JSON Schema.

The models are light records (edgeinit.model.Record, in each plugin's module) so that
`edgeinit run` never imports pydantic: a boot stage pays only for the lean coercer in
coerce.py. `edgeinit validate` and `edgeinit schema` build pydantic models from the
same records (pydantic_models.py), and a test keeps the two validators in agreement.
"""
