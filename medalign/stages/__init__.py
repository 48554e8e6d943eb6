"""Stage kinds, one module per kind (sft, eval, reward, rl, ...): each registers its
`StageSpec` (spec.py: schema, start-up check, curriculum roles, runner) under
`stage.kind`; the registry imports every module here on the first stage lookup."""
