"""verl's Karmarkar-Karp, restated in ``fastalign._verl_lines`` (so ``fastalign bench`` can time
it too); the tests and benches import it from here."""

from fastalign._verl_lines import verl_karmarkar_karp  # noqa: F401
