"""`distill eval`: sample benchmark problems from one or more models and grade them.

    from distill.eval import EvalConfig, evaluate
    result = evaluate(EvalConfig(model=["base=Qwen/Qwen2.5-1.5B", "student=runs/student"],
                                 data="HuggingFaceH4/MATH-500@test", n=4))
    print(result.table())
"""

from distill.eval.metrics import majority_vote, mean_pass_at_k, pass_at_k
from distill.eval.run import EvalConfig, EvalResult, ModelScores, evaluate

__all__ = ["EvalConfig", "EvalResult", "ModelScores", "evaluate", "majority_vote", "mean_pass_at_k", "pass_at_k"]
