"""distill: distill a long-chain-of-thought reasoning teacher into small dense students.

Each stage is one function taking its config dataclass, in the module of its name:

    from distill.generate import GenerateConfig, generate
    summary = generate(GenerateConfig(prompts="prompts.jsonl", teacher="path/to/teacher", out="traces.jsonl"))
"""

from distill.errors import BackendError, ConfigError, DistillError, InputError, ModelError, OutputError

__version__ = "0.1.0"

__all__ = ["BackendError", "ConfigError", "DistillError", "InputError", "ModelError", "OutputError"]
