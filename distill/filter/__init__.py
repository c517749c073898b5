"""`distill filter`: the rejection filter between generate and train.

Wrong, mixed-language, overlong, truncated, malformed and looping traces go to
the rejects file with every reason; the rest, at most K per prompt, to the kept
file; a report (JSON + PNG plots) says what happened:

    from distill.filter import FilterConfig, filter_traces
    report = filter_traces(FilterConfig(traces="traces.jsonl", out="kept.jsonl", max_tokens=16384))
    print(report.format())

The checks themselves, their options and their report sections live in `distill.checks`
(registered in `distill.checks.CHECKS`: record in, verdict out: True, False or None = cannot
tell); this package streams the traces through them. `cfg.shape` (a `distill.shape.TraceShape`)
says where the traces keep their reasoning; answer extraction and grading live in
`distill.grading`, shared with `distill eval`.
"""

from distill.filter.config import FilterConfig
from distill.filter.report import FilterReport
from distill.filter.run import filter_traces

__all__ = ["FilterConfig", "FilterReport", "filter_traces"]
