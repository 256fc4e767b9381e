"""The restated TRL 1.16 lines live in the package (``fastalign._trl_lines``) so that the
``fastalign bench`` command can time them too; the tests import them from here."""

from fastalign._trl_lines import grpo_advantages, rloo_advantages  # noqa: F401
