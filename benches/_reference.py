"""TRL 1.16.0 code the benchmarks time as the reference where TRL has no public function: the
restatements in ``fastalign._trl_lines`` (checked against the real trainers by the tests)."""

from fastalign._trl_lines import (  # noqa: F401
    trl_completion_mask,
    trl_completion_mask_and_truncation,
    trl_truncation_from_lists,
)
