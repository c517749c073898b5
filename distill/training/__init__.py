"""The training runtime `distill train` and `distill rl` share (neither imports the other):

    options.py      TrainingOptions, the option group both configs inherit (one resume policy a field)
"""
