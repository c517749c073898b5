"""`distill demo`: the whole pipeline offline on a CPU, on a tiny teacher trained on the spot.

    from distill.demo import DemoConfig, run_demo
    result = run_demo(DemoConfig(out="demo/"))
    print(result.format())
"""

from distill.demo.run import (
    DemoConfig,
    DemoModels,
    DemoResult,
    ModelRow,
    build_offline_models,
    read_summary,
    run_demo,
)

__all__ = ["DemoConfig", "DemoModels", "DemoResult", "ModelRow", "build_offline_models", "read_summary", "run_demo"]
