"""The training runtime `distill train` and `distill rl` share (neither imports the other):

    options.py      TrainingOptions, the option group both configs inherit (one resume policy a field)
    modeling.py     loading a model full / LoRA / QLoRA: dtype, attention kernel, NF4, LoRA config,
                    the hardware, the checks that refuse a model in one line, merging an adapter
    identity.py     inputs by content: a file's sha256, a model's identity
"""
