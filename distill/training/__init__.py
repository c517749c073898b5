"""The training runtime `distill train` and `distill rl` share (neither imports the other):

    options.py      TrainingOptions, the option group both configs inherit (one resume policy a field)
    modeling.py     loading a model full / LoRA / QLoRA: dtype, attention kernel, NF4, LoRA config,
                    the hardware, the checks that refuse a model in one line, a model's identity,
                    merging an adapter
    checkpoints.py  atomic checkpoints with checksums (a kill never leaves a torn one)
    guards.py       the non-finite guard: a nan or inf stops the run in one line, and is never saved
    trainer.py      RunTrainer, the mixin every distill trainer puts before its transformers/TRL base
    rundir.py       the run directory: claim, resume check, prepare, rank barrier, full disk, summary
"""
